"""Per-track memory of one segment: where each track was and what the analyzers learnt.

Recognition, mask and other per-person analyzers work per track, not per frame: they sample a
few good frames of each track and aggregate. A ``SegmentState`` is created per segment; the
stitch step joins tracks across segment borders (``workers.results``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core import defaults
from workers.analytics.faces import Faces
from workers.analytics.gallery import Gallery, normalise


def _box_json(box) -> list[float]:
    return [round(float(v), 1) for v in box]


@dataclass
class TrackRecord:
    track: int
    first_frame: int                # the face's first frame, even the one before the tracker confirmed it
    last_frame: int
    first_box: list[float]
    last_box: list[float]
    frames: int = 0                 # frames the tracker followed the face on
    embedding_sum: np.ndarray | None = None
    embeddings: int = 0
    identity: str | None = None
    similarity: float | None = None
    mask_votes: list[tuple[str, float]] = field(default_factory=list)
    max_temperature_c: float | None = None
    max_temperature_frame: int | None = None
    sampled: dict[str, list[int]] = field(default_factory=dict)   # analyzer -> frames sampled
    # The last embedding the recogniser made, and its frame: the mask classifier reads the same
    # face on the same frame from it instead of running ArcFace again.
    last_embedding: tuple[int, np.ndarray] | None = None

    def embedding(self) -> np.ndarray | None:
        """The track's face: its embeddings' sum, L2-normalised (None before any, or if they cancel out)."""
        if self.embedding_sum is None or not np.any(self.embedding_sum):
            return None
        return normalise(self.embedding_sum)

    def add_embedding(self, vector: np.ndarray, frame: int | None = None) -> None:
        self.embedding_sum = vector.copy() if self.embedding_sum is None else self.embedding_sum + vector
        self.embeddings += 1
        if frame is not None:
            self.last_embedding = (frame, vector)

    def embedding_on(self, frame: int) -> np.ndarray | None:
        """The recogniser's embedding of this track's face on ``frame``, if it made one."""
        return self.last_embedding[1] if self.last_embedding and self.last_embedding[0] == frame else None

    def add_temperature(self, frame: int, celsius: float) -> None:
        if self.max_temperature_c is None or celsius > self.max_temperature_c:
            self.max_temperature_c, self.max_temperature_frame = celsius, frame

    def to_json(self) -> dict:
        embedding = self.embedding()
        return {"track": self.track, "first_frame": self.first_frame, "last_frame": self.last_frame,
                "first_box": self.first_box, "last_box": self.last_box, "frames": self.frames,
                "embedding_sum": None if self.embedding_sum is None else [round(float(v), 6) for v in self.embedding_sum],
                "embeddings": self.embeddings, "identity": self.identity, "similarity": self.similarity,
                "mask_votes": self.mask_votes, "max_temperature_c": self.max_temperature_c,
                "max_temperature_frame": self.max_temperature_frame,
                "has_embedding": embedding is not None}


class SegmentState:
    """What the analyzers share while one segment is processed."""

    def __init__(self, fps: float, gallery: Gallery | None = None, detect_fps: float = 0.0):
        self.fps = fps
        # The detector's pace (live cameras): at most this many looks a second; 0: every frame.
        self.detect_fps = detect_fps
        self.gallery = gallery or Gallery.empty()
        self.frame_index = -1
        self.tracks: dict[int, TrackRecord] = {}
        # Each frame's faces as the whole analyzer chain left them (whoever runs the chain
        # appends them): the results' per-frame entries, and where the tracker gives the
        # previous frame's face the id it confirmed one frame late.
        self.faces: list[Faces] = []
        # 32x18 grayscale thumbnails of the first and last frames: the stitch compares them
        # across a segment border to see whether the border is also a cut between shots.
        self.first_thumbnail: np.ndarray | None = None
        self.last_thumbnail = None
        # Frames that are a scene cut (the tracker's test) and damaged frames (no faces, none
        # trusted): the end-of-segment gap filling neither crosses the one nor fills the other.
        self.cuts: set[int] = set()
        self.damaged: set[int] = set()

    @property
    def last_thumbnail(self) -> np.ndarray | None:
        if callable(self._last_thumbnail):     # made when asked for (FaceTracker._untracked)
            self._last_thumbnail = self._last_thumbnail()
        return self._last_thumbnail

    @last_thumbnail.setter
    def last_thumbnail(self, value) -> None:
        self._last_thumbnail = value

    def observe(self, track_ids: np.ndarray, boxes: np.ndarray) -> None:
        """Called by the tracker on each frame with the faces' track ids (-1 = untracked)."""
        for track_id, box in zip(track_ids, boxes):
            track_id = int(track_id)
            if track_id < 0:
                continue
            box_list = _box_json(box)
            record = self.tracks.get(track_id)
            if record is None:
                record = self.tracks[track_id] = TrackRecord(track_id, self.frame_index, self.frame_index,
                                                             box_list, box_list)
            record.last_frame, record.last_box = self.frame_index, box_list
            record.frames += 1

    def backdate(self, track_id: int, box) -> None:
        """The previous frame's face ``box`` was already this track's: a new track's true
        first frame (the tracker confirms a track one frame after it first sees the face)."""
        record = self.tracks.get(int(track_id))
        if record is not None and self.frame_index - 1 < record.first_frame:
            record.first_frame, record.first_box = self.frame_index - 1, _box_json(box)

    def place(self, track_id: int, frame: int, box) -> None:
        """A face of the track on ``frame`` that the tracker did not give it (a filled gap, a
        detection the end-of-segment linking joined to the track): the track spans it."""
        box_list = _box_json(box)
        record = self.tracks.get(int(track_id))
        if record is None:
            record = self.tracks[int(track_id)] = TrackRecord(int(track_id), frame, frame, box_list, box_list)
        elif frame < record.first_frame:
            record.first_frame, record.first_box = frame, box_list
        elif frame > record.last_frame:
            record.last_frame, record.last_box = frame, box_list
        record.frames += 1

    def should_sample(self, track_id: int, analyzer: str, every: int, limit: int) -> bool:
        """Sample a track's first usable frame, then keep sampling with a gap that starts at
        ``every`` frames and doubles after each three samples: early answers, yet samples
        spread over a long track (a person who turns to the camera later still gets seen)."""
        record = self.tracks.get(int(track_id))
        if record is None:
            return False
        taken = record.sampled.setdefault(analyzer, [])
        gap = every * 2 ** (len(taken) // 3)
        if len(taken) >= limit or (taken and self.frame_index - taken[-1] < gap):
            return False
        taken.append(self.frame_index)
        return True


SCENE_CUT = defaults.SCENE_CUT


def is_scene_cut(a, b, threshold: float = SCENE_CUT) -> bool:
    """Whether two frames' thumbnails (arrays or nested lists) differ like two shots: the
    tracker's test between consecutive frames, and the stitch's across a segment border.
    False when either is missing."""
    if a is None or b is None:
        return False
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean()) > threshold


def box_centre(box) -> np.ndarray:
    """A box's centre [x, y] (boxes as [x1, y1, x2, y2])."""
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float64)


def box_height(box) -> float:
    """A box's height, at least 1 pixel (a ratio's denominator)."""
    return max(float(box[3] - box[1]), 1.0)


def box_iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def continuations(earlier_boxes, earlier_ids, boxes, ids, min_iou: float = 0.5) -> list[tuple[int, int]]:
    """(row, track id) for each untracked face of one frame whose best-overlapping face on the
    next frame is tracked, overlapping it by more than ``min_iou``: the same face, seen before
    the tracker confirmed its track (or a detection that missed the track's prediction).
    A track already on the earlier frame claims nothing more there, and a track claims one
    face at most (the best-overlapping): two faces of one frame never share an id."""
    taken = {int(t) for t in earlier_ids if t >= 0}
    best_claim: dict[int, tuple[float, int]] = {}     # track id -> (overlap, row)
    for row, (box, track_id) in enumerate(zip(earlier_boxes, earlier_ids)):
        if track_id >= 0 or not len(boxes):
            continue
        overlaps = [box_iou(box, other) for other in boxes]
        best = int(np.argmax(overlaps))
        claimed = int(ids[best])
        if claimed >= 0 and claimed not in taken and overlaps[best] > min_iou:
            best_claim[claimed] = max(best_claim.get(claimed, (0.0, -1)), (overlaps[best], row))
    return sorted((row, track_id) for track_id, (_, row) in best_claim.items())
