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
            quality = _quality(face["box"], face.get("score"))
            if track not in best or quality > best[track][0]:
                best[track] = (quality, frame["index"], face["box"])
    return {track: (index, box) for track, (_, index, box) in best.items()}


def _quality(box: list[float], score: float | None) -> float:
    x1, y1, x2, y2 = box
    return float(score or 0.0) * max(0.0, min(x2 - x1, y2 - y1))


def face_region(bgr: np.ndarray, box: list[float]) -> np.ndarray:
    """The pixels a crop of ``box`` is made of (widened by MARGIN, made square, kept inside
    the picture): a view of ``bgr``."""
    height, width = bgr.shape[:2]
    x1, y1, x2, y2 = box
    size = max(x2 - x1, y2 - y1) * (1 + 2 * MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = max(0, int(cx - size / 2)), max(0, int(cy - size / 2))
    right, bottom = min(width, int(cx + size / 2)), min(height, int(cy + size / 2))
    if right <= left or bottom <= top:
        raise ValueError(f"box {box} lies outside the {width}x{height} picture")
    return bgr[top:bottom, left:right]


def crop_jpeg(bgr: np.ndarray, box: list[float], side: int = THUMBNAIL_SIDE) -> bytes:
    """The box (widened by MARGIN, made square, kept inside the picture) as a JPEG whose long
    side is at most ``side``."""
    return jpeg_of(shrunk(face_region(bgr, box), side))


def shrunk(crop: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """A face region (``face_region``) with its long side at most ``side``: a copy."""
    scale = side / max(crop.shape[:2])
    if scale < 1:
        return cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    return crop.copy()


def jpeg_of(crop: np.ndarray) -> bytes:
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


class SegmentFaceCrops:
    """Each track's best face, cut while the segment task has the frames decoded for its
    analysis: the stitch then needs to decode nothing for them (it decoded the segments again,
    one after another on one worker, while the others waited for the results: on busy footage
    most of the stitch's time; docs/benchmarks.md, "A busy job's timeline").

    A frame's faces are read one frame late (the tracker gives a new face its track on the
    frame after). A face is cut (shrunk to the thumbnail's size at once: a few kB) when it
    beats its track's best so far; a face still without a track then (the gap filling may give
    it one at the segment's end) is cut too, up to ``MAX_UNTRACKED`` of them. ``crops`` gives
    the cuts of the faces that are their track's best in the finished segment (``best_faces``),
    as the stitch's decode would make them; a best face without one is decoded by the stitch as
    before."""

    MAX_UNTRACKED = 512     # cuts of faces without a track, at most 27 kB each

    def __init__(self):
        self._best: dict[int, tuple[float, int, list[float], np.ndarray]] = {}   # track -> quality, frame, box, cut
        self._untracked: dict[tuple[int, tuple], np.ndarray] = {}                # (frame, box) -> cut
        self._held = None      # (frame, picture) whose faces are read at the next frame

    def frame(self, index: int, picture, faces: list) -> None:
        """Frame ``index`` of the segment was analysed (``faces``: the segment's ``Faces`` so
        far, one per frame); ``picture``: its picture, None for a damaged frame."""
        self._settle(faces)
        self._held = None if picture is None else (index, picture)

    def _settle(self, faces: list) -> None:
        if self._held is None:
            return
        index, picture = self._held
        self._held = None
        found = faces[index]
        if not len(found):
            return
        # Rounded as results.json has them (Faces.to_json), which the stitch's choice reads.
        boxes = np.round(found.boxes.astype(np.float64), 1).tolist()
        scores = np.round(found.scores.astype(np.float64), 4).tolist()
        tracks = [-1] * len(boxes) if found.track_ids is None else found.track_ids.tolist()
        for box, score, track in zip(boxes, scores, tracks):
            quality = _quality(box, score)
            if track >= 0 and track in self._best and quality <= self._best[track][0]:
                continue
            if track < 0 and len(self._untracked) >= self.MAX_UNTRACKED:
                continue
            try:
                cut = shrunk(face_region(picture.bgr()[0], box))
            except ValueError:      # a box outside the picture has no crop, here or at the stitch
                continue
            if track >= 0:
                self._best[track] = (quality, index, box, cut)
            else:
                self._untracked[index, tuple(box)] = cut

    def crops(self, faces: list, frames: list[list[dict]]) -> list[list]:
        """Once the segment is finished (``faces``: its Faces, ``frames``: their results.json
        entries): ``[frame in the segment, box, JPEG]`` per track whose best face was cut."""
        self._settle(faces)
        cut = self._untracked | {(index, tuple(box)): pixels for _, index, box, pixels in self._best.values()}
        best = best_faces({"frames": [{"index": i, "faces": f} for i, f in enumerate(frames)]})
        return [[index, box, jpeg_of(cut[index, tuple(box)])] for index, box in best.values()
                if (index, tuple(box)) in cut]
