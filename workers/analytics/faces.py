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

    @classmethod
    def empty(cls) -> "Faces":
        return cls(boxes=np.zeros((0, 4), np.float32), scores=np.zeros((0,), np.float32),
                   keypoints=np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.boxes)

    def column(self, name: str) -> list:
        return self.columns.get(name, [OPTIONAL_COLUMNS.get(name)] * len(self))

    def to_json(self) -> list[dict]:
        """The per-face entries of results.json (GUIDE.md contract 3)."""
        faces = []
        for i in range(len(self)):
            face = {
                "box": [round(float(v), 1) for v in self.boxes[i]],
                "score": round(float(self.scores[i]), 4),
                "track": None if self.track_ids is None or self.track_ids[i] < 0 else int(self.track_ids[i]),
            }
            for name in OPTIONAL_COLUMNS:
                face[name] = self.column(name)[i]
            faces.append(face)
        return faces
