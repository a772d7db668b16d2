"""A live camera's detect pace (Frigate's ``detect.fps``): the detector looks at most
``detect_fps`` frames a second, the frames between carry its last look's faces.

A 720p15 camera whose scene moves everywhere (an audience) has the motion gate pass nearly
every frame to the detector; a camera's worker then spends most of a frame's time there
(docs/benchmarks.md, "Live frame cost"). With a pace the detector looks at a segment's first
frame, then at the first frame of each following 1/detect_fps of the stream's time, and at
any frame that is a scene cut (the faces carried would be another shot's). The frames
between get the last look's faces as they were (``Faces.carried``); the tracker follows them,
so every frame keeps its entries (box, track, name, mask). Once the segment is analysed,
:func:`fill_between_looks` moves each carried face along the line between the looks before
and after it, so a walking person's box follows them instead of jumping. The two looks' faces
are paired by track, or, where the tracker lost a small, fast face across the skipped frames
(its boxes no longer overlap), by the nearest face of its size.
"""

from __future__ import annotations

import math

import numpy as np

from workers.analytics.faces import Faces
from workers.analytics.motion_gate import thumbnail
from workers.analytics.picture import Picture
from workers.analytics.tracks import is_scene_cut


class DetectPace:
    """Which frames of one segment the detector looks at. Counted in frames, not clock time,
    so a segment analysed late or twice is looked at on the same frames."""

    def __init__(self, fps: float, detect_fps: float):
        self.ratio = detect_fps / fps
        self.frame = -1
        self.thumbnail: np.ndarray | None = None

    @classmethod
    def of(cls, fps: float, detect_fps: float) -> "DetectPace | None":
        """None where every frame is looked at (no pace, or a stream no faster than it)."""
        return cls(fps, detect_fps) if detect_fps > 0 and fps > detect_fps else None

    def due(self, picture: Picture | None = None) -> bool:
        """The next frame (``picture``, when there is one to test for a scene cut): is it
        looked at?"""
        self.frame += 1
        # The epsilon: 3 * (5 / 15) must count as 1, whatever the float rounding.
        slot = lambda frame: math.floor(frame * self.ratio + 1e-9)
        cut = False
        if picture is not None:
            # The tracker's own test on the same thumbnail (made once per picture, shared).
            previous, self.thumbnail = self.thumbnail, thumbnail(picture)
            cut = is_scene_cut(previous, self.thumbnail)
        return self.frame == 0 or cut or slot(self.frame) != slot(self.frame - 1)


def fill_between_looks(frames: list[Faces]) -> None:
    """In place: each carried face, found by the looks before and after it, moved (box and
    keypoints) to where the line between the two looks puts it on its frame. Faces the next
    look did not find stay where the last look left them."""
    looks = [i for i, faces in enumerate(frames) if not faces.carried]
    for before, after in zip(looks, looks[1:]):
        first, last = frames[before], frames[after]
        if after - before < 2 or not len(first) or not len(last):
            continue
        ends = _same_faces(first, last, after - before)
        for i in range(before + 1, after):
            faces, w = frames[i], (i - before) / (after - before)
            for row in range(len(faces)):
                a = _copied_from(first, faces, row)
                b = ends.get(a)
                if b is None:
                    continue
                faces.boxes[row] = (1 - w) * first.boxes[a] + w * last.boxes[b]
                if faces.keypoints is not None and first.keypoints is not None and last.keypoints is not None:
                    faces.keypoints[row] = (1 - w) * first.keypoints[a] + w * last.keypoints[b]


def _copied_from(look: Faces, carried: Faces, row: int) -> int | None:
    """The row of ``look`` that face ``row`` of a carried frame is a copy of: the same box
    (carried faces are copied unchanged), else the same track."""
    for a, box in enumerate(look.boxes):
        if np.array_equal(box, carried.boxes[row]):
            return a
    if carried.track_ids is not None and look.track_ids is not None and carried.track_ids[row] >= 0:
        rows = np.flatnonzero(look.track_ids == carried.track_ids[row])
        return int(rows[0]) if len(rows) else None
    return None


def _same_faces(first: Faces, last: Faces, frames_apart: int) -> dict[int, int]:
    """Which face of ``last`` is each face of ``first``: the same track; else (the tracker lost
    it across the skipped frames: a small face moving more than its size between looks) the
    nearest face of about the same size that no track continues, at most one face height a
    frame away."""
    pairs: dict[int, int] = {}
    if first.track_ids is not None and last.track_ids is not None:
        for a, track in enumerate(first.track_ids):
            rows = np.flatnonzero(last.track_ids == track) if track >= 0 else ()
            if len(rows):
                pairs[a] = int(rows[0])
    centre = lambda box: np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    height = lambda box: float(box[3] - box[1])
    candidates = sorted(
        (float(np.linalg.norm(centre(first.boxes[a]) - centre(last.boxes[b]))), a, b)
        for a in range(len(first)) if a not in pairs for b in range(len(last)) if b not in pairs.values()
        if 0.5 <= height(last.boxes[b]) / max(height(first.boxes[a]), 1e-6) <= 2)
    for distance, a, b in candidates:
        if a not in pairs and b not in pairs.values() and distance <= frames_apart * height(first.boxes[a]):
            pairs[a] = b
    return pairs
