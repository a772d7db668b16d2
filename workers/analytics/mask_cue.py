"""The lower-face cue: a third, explainable mask vote beside the two classifiers.

A bare face's lower half (below the nose, between the mouth corners) is skin of the same hue
as the skin between the eyes, and it holds detail: the lips' edges. A mask over it is another
colour (blue, white, black, pink, a print) and smoother than lips. The cue reads both on the
112x112 face aligned on the detector's five keypoints (the face ArcFace reads, so the regions
sit at fixed places: insightface's template puts the eyes at y 51.6, the nose tip at 71.7 and
the mouth corners at x 41.5 / 70.7, y 92.3):

- ``colour``: the distance between the two regions' median chroma (a*, b* of OpenCV's 8-bit
  Lab), over 10;
- ``detail``: log of the lower region's mean absolute Laplacian (of the lightly blurred grey
  face) over the upper region's, each plus 1.

P(mask) is a logistic function of the two, its three numbers fitted on the tuning split of
``make eval`` (docs/accuracy.md, "Candidates tried"; leave one photo out, the cue alone was
right on 87 of 88 judged tuning clips). No model file, no training at install; under a
millisecond per face (half of it the alignment). Its weak spots, and why it is one vote of three
and never the label alone: the lower region holds the mouth, so a wide smile showing teeth or
red lips move its hue (two of the six bare faces of insightface's t1.jpg read 0.78 and 0.58);
a skin-coloured mask or a beard would move it the other way. A colourless face (a greyscale
photo, a camera's infrared night picture) reads colour 0, so the cue votes bare on it, masked or
not: alone it called 745 of 1040 greyscale drawn masks bare (review, 2026-12-05); in the mean of
three the two classifiers mostly outvote it (13 of 1040 called bare, against 6 with the two alone).
"""

from __future__ import annotations

import cv2
import numpy as np

# (rows, columns) of the aligned 112x112 face.
LOWER = (slice(76, 100), slice(44, 69))     # below the nose tip, between the mouth corners
UPPER = (slice(42, 58), slice(48, 64))      # between the eyes, above where a mask's top edge sits
WEIGHTS = (2.488, -2.342)                   # colour, detail (tuning split, docs/accuracy.md)
BIAS = -3.388


def cue_features(aligned_bgr: np.ndarray) -> tuple[float, float]:
    """(colour, detail) of an aligned 112x112 BGR face (see the module's docstring)."""
    lab = cv2.cvtColor(aligned_bgr, cv2.COLOR_BGR2LAB)
    lower, upper = lab[LOWER].reshape(-1, 3), lab[UPPER].reshape(-1, 3)
    chroma = np.median(lower[:, 1:], axis=0) - np.median(upper[:, 1:], axis=0)
    colour = float(np.hypot(*chroma)) / 10
    grey = cv2.GaussianBlur(cv2.cvtColor(aligned_bgr, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), 1.0)
    laplacian = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    detail = float(np.log((laplacian[LOWER].mean() + 1) / (laplacian[UPPER].mean() + 1)))
    return colour, detail


def cue_probability(aligned_bgr: np.ndarray) -> float:
    """P(mask) from the lower-face cue alone."""
    return probability_of_features(*cue_features(aligned_bgr))


def probability_of_features(colour: float, detail: float) -> float:
    """P(mask) from the cue's two features (``bench.eval_mask_votes`` re-scores recorded ones)."""
    return float(1.0 / (1.0 + np.exp(-(WEIGHTS[0] * colour + WEIGHTS[1] * detail + BIAS))))
