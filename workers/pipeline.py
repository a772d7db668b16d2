"""One segment end to end: decode, run the analyzer chain, draw, encode.

Importable without Celery: the segment task, the benchmarks and the tests all call
``process_segment`` the same way.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from workers import media
from workers.analytics import detector, mask, recognizer, thermal, tracker  # noqa: F401  (register them)
from workers.analytics.faces import Faces
from workers.analytics.gallery import Gallery
from workers.analytics.registry import build_chain, load_plugins
from workers.analytics.picture import Picture
from workers.analytics.tracks import SegmentState
from workers.annotate import draw_faces_i420


@dataclass(frozen=True)
class PipelineConfig:
    analyzers: tuple[str, ...] = ("detect", "track", "recognize", "mask", "thermal")
    # analyzer name -> its config, as a JSON string so the config is hashable for caching
    analyzer_configs: str = "{}"
    plugins: tuple[str, ...] = ()          # modules that register more analyzers
    threads: int = 1
    x264_preset: str = "veryfast"
    x264_crf: int = 23
    x264_params: str = "subme=1"
    fever_c: float = thermal.DEFAULT_FEVER_C
    # Radiometric (16-bit) recordings: raw value -> degrees C; ignored for ordinary video.
    thermal_gain: float = 0.01
    thermal_offset: float = -273.15


@dataclass
class SegmentResult:
    frames: list[list[dict]]                       # per frame (segment order): the faces
    tracks: list[dict] = field(default_factory=list)  # per track: what the analyzers learnt
    thumbnails: dict = field(default_factory=dict)    # first/last frame thumbnails (cut detection)
    stages: dict[str, float] = field(default_factory=dict)
    repaired_frames: int = 0                       # frames the decoder lost, filled by repeats
    # Per frame (segment order): why it is damaged (media.SegmentFrame.damage), None if intact.
    damage: list[str | None] = field(default_factory=list)


@lru_cache(maxsize=2)
def analyzer_chain(names: tuple[str, ...], configs_json: str, plugins: tuple[str, ...] = ()):
    """Models load once per worker process and stay loaded for later segments."""
    load_plugins(list(plugins))
    return build_chain(list(names), json.loads(configs_json))


def _encodable(writer: media.H264Writer, frame, picture: Picture, faces: Faces, fever_c: float):
    """What goes to the encoder: the decoded frame itself when it fits and has nothing to
    draw (most frames of most recordings), else an I420 canvas with the faces drawn on it."""
    if writer.fits(frame) and not len(faces):
        return frame
    source = frame if writer.fits(frame) else picture.bgr()[0]
    return draw_faces_i420(writer.canvas(source), faces, fever_c)


def process_segment(src: Path, out_video: Path, pts: list[int], time_base: Fraction, fps: float,
                    width: int, height: int, config: PipelineConfig,
                    gallery: Gallery | None = None, pts_offset: int = 0, timed: bool = True) -> SegmentResult:
    chain = analyzer_chain(config.analyzers, config.analyzer_configs, config.plugins)
    state = SegmentState(fps, gallery)
    calibration = thermal.Calibration(config.thermal_gain, config.thermal_offset)
    for analyzer in chain:
        if hasattr(analyzer, "begin"):
            analyzer.begin(state)
    cv2.setNumThreads(config.threads)  # OpenCV's pool would otherwise claim every core per worker
    stages = {"decode": 0.0, "analyze": 0.0, "draw": 0.0, "encode": 0.0}
    damage: list[str | None] = []
    repaired = 0
    with media.H264Writer(out_video, width, height, time_base, fps, preset=config.x264_preset,
                          crf=config.x264_crf, threads=config.threads,
                          params=config.x264_params) as writer:
        # One item per timestamp, damage or not: a lost picture comes as a stand-in, marked.
        decoded = media.segment_frames(src, pts, time_base, threads=config.threads, pts_offset=pts_offset,
                                       timed=timed)
        for timestamp in pts:
            state.frame_index += 1
            t0 = time.perf_counter()
            item = next(decoded)
            t1 = time.perf_counter()
            frame, faces = item.frame, Faces.empty()
            picture = thermal.picture_of_frame(frame, calibration)
            if item.damage is None:     # a damaged frame carries no faces: none can be trusted
                for analyzer in chain:
                    faces = analyzer(picture, faces)
            t2 = time.perf_counter()
            damage.append(item.damage)
            repaired += item.repeated
            state.faces.append(faces)
            output = _encodable(writer, frame, picture, faces, config.fever_c)
            t3 = time.perf_counter()
            writer.write(output, timestamp)
            t4 = time.perf_counter()
            for stage, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                stages[stage] += seconds
        decoded.close()
    # Built after the last frame: the tracker may still have given a frame's face its track
    # on the frame after (drawn before it knew, so that frame's box shows the score).
    frames = [faces.to_json() for faces in state.faces]
    thumbnails = {"first": state.first_thumbnail, "last": state.last_thumbnail}
    return SegmentResult(frames=frames, tracks=[r.to_json() for r in state.tracks.values()],
                         thumbnails={k: None if v is None else np.round(v).astype(int).tolist()
                                     for k, v in thumbnails.items()},
                         stages={k: round(v, 4) for k, v in stages.items()},
                         repaired_frames=repaired, damage=damage)
