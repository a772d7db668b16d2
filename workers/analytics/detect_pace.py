"""A live camera's detect pace (Frigate's ``detect.fps``): the detector looks at most
``detect_fps`` frames a second, the frames between carry its last look's faces.

A 720p15 camera whose scene moves everywhere (an audience) has the motion gate pass nearly
every frame to the detector; a camera's worker then spends most of a frame's time there
(docs/benchmarks.md, "Live frame cost"). With a pace the detector looks at a segment's first
frame, then at the first frame of each following 1/detect_fps of the stream's time, and at
any frame that is a scene cut (the faces carried would be another shot's). The frames
between get the last look's faces as they were (``Faces.carried``); the tracker follows them,
so every frame keeps its entries (box, track, name, mask). Once the segment is analysed,
:func:`fill_between_looks` moves each carried face of a track along the line between the
looks before and after it, so a walking person's box follows them instead of jumping.
"""

from __future__ import annotations

import math

import numpy as np

from workers.analytics.faces import Faces, on_line
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
    """In place: each carried face with a track, found by the looks before and after it on
    that track, moved (box and keypoints) to where the line between the two looks puts it on
    its frame. Faces of a track the next look did not find stay where the last look left them."""
    looks = [i for i, faces in enumerate(frames) if not faces.carried]
    for before, after in zip(looks, looks[1:]):
        first, last = frames[before], frames[after]
        if after - before < 2 or first.track_ids is None or last.track_ids is None:
            continue
        rows_after = {int(t): row for row, t in enumerate(last.track_ids) if t >= 0}
        for i in range(before + 1, after):
            faces = frames[i]
            if faces.track_ids is None:
                continue
            rows_before = {int(t): row for row, t in enumerate(first.track_ids) if t >= 0}
            w = (i - before) / (after - before)
            for row, track in enumerate(faces.track_ids):
                a, b = rows_before.get(int(track)), rows_after.get(int(track))
                if track < 0 or a is None or b is None:
                    continue
                faces.boxes[row], keypoints = on_line(first, a, last, b, w)
                if faces.keypoints is not None and keypoints is not None:
                    faces.keypoints[row] = keypoints
