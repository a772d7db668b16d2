"""``Faces``: the one record that carries a frame's faces through every analyzer.

Like supervision's ``Detections``: parallel arrays, one row per face. The detector fills
boxes, scores and keypoints; later analyzers add columns (track ids, identities, mask labels,
temperatures) and the annotator and the results writer read whatever is there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Per-face columns an analyzer may add, with the value a face has when the column is absent.
OPTIONAL_COLUMNS = {"identity": None, "similarity": None, "mask": None, "mask_score": None,
                    "temperature_c": None}


@dataclass
class Faces:
    boxes: np.ndarray                      # (N, 4) float32, x1 y1 x2 y2 in source pixels
    scores: np.ndarray                     # (N,) float32
    keypoints: np.ndarray | None = None    # (N, 5, 2) float32: eyes, nose, mouth corners
    track_ids: np.ndarray | None = None    # (N,) int64; -1 = not yet tracked
    columns: dict[str, list] = field(default_factory=dict)
    # The detector did not look at this frame (a live camera's detect pace): these are its last
    # look's faces, carried. Not part of the results; per-track analyzers do not sample such a
    # face (its keypoints lag by whatever moved since the look).
    carried: bool = False

    @classmethod
    def empty(cls) -> "Faces":
        return cls(boxes=np.zeros((0, 4), np.float32), scores=np.zeros((0,), np.float32),
                   keypoints=np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, keep) -> "Faces":
        """The faces where ``keep`` (one bool per face) is true, every column kept."""
        keep = np.asarray(keep, bool).reshape(-1)
        rows = np.flatnonzero(keep)
        return Faces(boxes=self.boxes[keep], scores=self.scores[keep],
                     keypoints=None if self.keypoints is None else self.keypoints[keep],
                     track_ids=None if self.track_ids is None else self.track_ids[keep],
                     columns={name: [values[i] for i in rows] for name, values in self.columns.items()},
                     carried=self.carried)

    def added(self, box, score: float, keypoints, track_id: int, labels: dict) -> "Faces":
        """These faces and one more (a filled gap, ``workers.analytics.gaps``): its columns'
        values from ``labels``, the default where a column has none."""
        if keypoints is None:   # no landmarks to draw from: the box's centre, as the detector never gives
            keypoints = np.tile([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], (5, 1))
        track_ids = np.full(len(self), -1, np.int64) if self.track_ids is None else self.track_ids
        names = list(self.columns) + [name for name in labels if name not in self.columns]
        return Faces(boxes=np.vstack([self.boxes, np.asarray(box, np.float32)[None]]).astype(np.float32),
                     scores=np.append(self.scores, np.float32(score)).astype(np.float32),
                     keypoints=None if self.keypoints is None else
                     np.concatenate([self.keypoints, np.asarray(keypoints, np.float32)[None]]),
                     track_ids=np.append(track_ids, track_id).astype(np.int64),
                     columns={name: list(self.column(name)) + [labels.get(name, OPTIONAL_COLUMNS.get(name))]
                              for name in names},
                     carried=self.carried)

    def column(self, name: str) -> list:
        return self.columns.get(name, [OPTIONAL_COLUMNS.get(name)] * len(self))

    def to_json(self) -> list[dict]:
        """The per-face entries of results.json (GUIDE.md contract 3)."""
        if not len(self):
            return []
        # Whole columns at once (this runs for every frame): one numpy round and tolist per
        # column instead of a float() and round() per value.
        boxes = np.round(self.boxes.astype(np.float64), 1).tolist()
        scores = np.round(self.scores.astype(np.float64), 4).tolist()
        tracks = [None] * len(self) if self.track_ids is None else [
            None if t < 0 else t for t in self.track_ids.tolist()]
        optional = {name: self.column(name) for name in OPTIONAL_COLUMNS}
        return [{"box": box, "score": score, "track": track, **{name: values[i] for name, values in optional.items()}}
                for i, (box, score, track) in enumerate(zip(boxes, scores, tracks))]


def on_line(first: Faces, a: int, last: Faces, b: int, w: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The box and keypoints a fraction ``w`` of the way from row ``a`` of ``first`` to row ``b``
    of ``last`` (a face between two frames that found it); keypoints None if either has none."""
    box = (1 - w) * first.boxes[a] + w * last.boxes[b]
    if first.keypoints is None or last.keypoints is None:
        return box, None
    return box, (1 - w) * first.keypoints[a] + w * last.keypoints[b]
