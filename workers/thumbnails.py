"""A face crop per track, for people search and the job page (no Celery, no Flask).

Each track's best face is the one whose box is largest among its confident detections (score
times the box's shorter side: a big sharp face beats a tiny one scored a little higher). Its
frame is decoded from the segment file that holds it (the source's own pixels; never the
annotated video, which has boxes and labels drawn on it), and the box, widened a little, is
cut out and shrunk to a small JPEG.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from workers import media
from workers.analytics import thermal

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 96      # pixels: enough to recognise someone on a page, small in the database
MARGIN = 0.25            # of the box's size, added on every side (hair, chin)


@dataclass(frozen=True)
class SegmentFile:
    path: Path
    start_frame: int
    pts: list[int]


def best_faces(results: dict) -> dict[int, tuple[int, list[float]]]:
    """Per track: (frame index, box) of its best face."""
    best: dict[int, tuple[float, int, list[float]]] = {}
    for frame in results.get("frames") or []:
        for face in frame.get("faces") or []:
            track = face.get("track")
            if track is None:
                continue
            x1, y1, x2, y2 = face["box"]
            quality = float(face.get("score") or 0.0) * max(0.0, min(x2 - x1, y2 - y1))
            if track not in best or quality > best[track][0]:
                best[track] = (quality, frame["index"], face["box"])
    return {track: (index, box) for track, (_, index, box) in best.items()}


def crop_jpeg(bgr: np.ndarray, box: list[float], side: int = THUMBNAIL_SIDE) -> bytes:
    """The box (widened by MARGIN, made square, kept inside the picture) as a JPEG whose long
    side is at most ``side``."""
    height, width = bgr.shape[:2]
    x1, y1, x2, y2 = box
    size = max(x2 - x1, y2 - y1) * (1 + 2 * MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = max(0, int(cx - size / 2)), max(0, int(cy - size / 2))
    right, bottom = min(width, int(cx + size / 2)), min(height, int(cy + size / 2))
    if right <= left or bottom <= top:
        raise ValueError(f"box {box} lies outside the {width}x{height} picture")
    crop = bgr[top:bottom, left:right]
    scale = side / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("the face crop could not be encoded")
    return jpeg.tobytes()


def face_crops(wanted: dict[int, tuple[int, list[float]]], segments: list[SegmentFile], time_base: Fraction,
               pts_offset: int = 0, calibration: thermal.Calibration | None = None,
               timed: bool = True) -> dict[int, bytes]:
    """JPEG face crops for ``wanted`` (track -> (frame index, box)), decoding only the
    segments that hold those frames, each only as far as its last wanted frame. A segment
    that cannot be read (gone, damaged) leaves its tracks without a crop. ``pts_offset`` and
    ``timed``: as ``media.segment_frames`` takes them (from the probe)."""
    by_segment: dict[int, dict[int, list[tuple[int, list[float]]]]] = {}
    for track, (index, box) in wanted.items():
        for k, segment in enumerate(segments):
            if segment.start_frame <= index < segment.start_frame + len(segment.pts):
                by_segment.setdefault(k, {}).setdefault(index - segment.start_frame, []).append((track, box))
                break
    crops: dict[int, bytes] = {}
    for k, by_local in sorted(by_segment.items()):
        segment = segments[k]
        try:
            frames = media.segment_frames(segment.path, segment.pts, time_base, threads=1, pts_offset=pts_offset,
                                          timed=timed)
            try:
                for local, item in enumerate(frames):
                    for track, box in by_local.get(local, []):
                        bgr = thermal.picture_of_frame(item.frame, calibration).bgr()[0]
                        crops[track] = crop_jpeg(bgr, box)
                    if local >= max(by_local):
                        break
            finally:
                frames.close()
        except (OSError, ValueError, av.error.FFmpegError) as exc:   # MediaError is a ValueError
            log.warning("no face crops from segment %s: %s", segment.path.name, exc)
    return crops
