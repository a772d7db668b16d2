"""Draws the annotated video of one segment from the published results.

The labels come from results.json (final track numbers, names, mask and fever states), so the
video says what the results say. Each segment's labels are hashed with everything else that
shapes its pixels (``segment_key``): a new results version re-draws only the segments whose
key changed, and segments drawn from equal keys are equal files, so they join by remux.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import cv2

from core import defaults
from workers import media, remux
from workers.analytics import thermal
from workers.annotate import Label, draw_labels_yuv

# Bump when drawing changes: every segment's key changes, so every segment is drawn again.
DRAWING_VERSION = 1


@dataclass(frozen=True)
class RenderConfig:
    threads: int = 1
    x264_preset: str = defaults.X264_PRESET
    x264_crf: int = defaults.X264_CRF
    x264_params: str = defaults.X264_PARAMS
    fever_c: float = thermal.DEFAULT_FEVER_C
    # Radiometric (16-bit) recordings are drawn on their false-colour picture, which these shape.
    thermal_gain: float = defaults.THERMAL_GAIN
    thermal_offset: float = defaults.THERMAL_OFFSET
    # GOPs with nothing to draw are copied from the source (workers.remux), not re-encoded.
    stream_copy: bool = defaults.STREAM_COPY


def segment_labels(results: dict, start_frame: int, frames: int, fever_c: float) -> list[list[list]]:
    """Per frame of a segment (global frames ``start_frame`` on): the labels to draw, as JSON."""
    return [[Label.of(face, fever_c).to_json() for face in frame["faces"]]
            for frame in results["frames"][start_frame:start_frame + frames]]


def segment_key(labels: list[list[list]], config: RenderConfig, intact: bool) -> str:
    """What a drawn segment's pixels depend on, hashed: its labels, the encoder settings (every
    segment of one video must share them to join by remux), whether its recording is intact
    (GOPs copied with their own parameter sets, or every frame re-encoded: one video's segments
    must all be drawn one way to join) and the drawing code's version."""
    shaping = {k: v for k, v in asdict(config).items() if k not in ("threads", "fever_c")}
    payload = json.dumps([DRAWING_VERSION, shaping, intact, labels], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _drawn(writer: media.H264Writer, picture, labels: list[list]):
    """A copy of ``picture`` (a decoded frame that fits the encoder, or a BGR image) at the
    encoder's size, with ``labels`` (JSON) drawn on it."""
    canvas = writer.canvas(picture)
    draw_labels_yuv(media.yuv_planes(canvas), [Label.from_json(x) for x in labels])
    return canvas


def render_segment(src: Path, out: Path, pts: list[int], time_base: Fraction, fps: float, width: int,
                   height: int, labels: list[list[list]], config: RenderConfig,
                   pts_offset: int = 0, timed: bool = True, intact: bool = False,
                   pictures: list | None = None) -> dict[str, float]:
    """Decode a segment's own frames as its analysis did (``media.segment_frames``: the same
    pictures, the same stand-ins for damaged ones), draw each frame's labels and encode H.264
    with the source's timestamps. Returns seconds per stage. Frames with nothing to draw go to
    the encoder as decoded (most frames of most recordings). ``intact``: the recording has no
    damage; then, with ``config.stream_copy``, GOPs with nothing to draw are copied from the
    source where its stream allows (``workers.remux``). ``pictures``: the segment's frames as its
    analysis decoded them (``SegmentResult.pictures``), drawn on instead of decoding the file
    again where its GOPs are copied (otherwise it is decoded as before)."""
    if len(labels) != len(pts):
        raise ValueError(f"{len(labels)} frames of labels for {len(pts)} timestamps")
    calibration = thermal.Calibration(config.thermal_gain, config.thermal_offset)
    cv2.setNumThreads(config.threads)
    if config.stream_copy and intact and timed and remux.stream_copyable(src, width, height):
        writer = media.H264Writer(out, width, height, time_base, fps, preset=config.x264_preset,
                                  crf=config.x264_crf, threads=config.threads, params=config.x264_params)
        try:
            return remux.render_copying(
                src, writer, pts, time_base, lambda slot: bool(labels[slot]),
                lambda frame, slot: _drawn(writer, frame, labels[slot]) if labels[slot] else frame,
                config.threads, pts_offset, pictures)
        except BaseException:
            writer.container.close()
            raise
    stages = {"render_decode": 0.0, "draw": 0.0, "encode": 0.0}
    with media.H264Writer(out, width, height, time_base, fps, preset=config.x264_preset, crf=config.x264_crf,
                          threads=config.threads, params=config.x264_params) as writer:
        decoded = media.segment_frames(src, pts, time_base, threads=config.threads, pts_offset=pts_offset,
                                       timed=timed)
        try:
            previous = time.perf_counter()
            for item, timestamp, drawn in zip(decoded, pts, labels):
                decoded_at = time.perf_counter()
                frame = output = item.frame
                if drawn or not writer.fits(frame):
                    source = frame if writer.fits(frame) else thermal.picture_of_frame(frame, calibration).bgr()[0]
                    output = _drawn(writer, source, drawn)
                drawn_at = time.perf_counter()
                writer.write(output, timestamp)
                written_at = time.perf_counter()
                stages["render_decode"] += decoded_at - previous
                stages["draw"] += drawn_at - decoded_at
                stages["encode"] += written_at - drawn_at
                previous = written_at
        finally:
            decoded.close()
    return {k: round(v, 4) for k, v in stages.items()}
