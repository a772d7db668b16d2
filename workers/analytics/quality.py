"""Whether one detected face is good enough to judge: to name, or to call masked or not.

A track is named, and labelled mask / no mask, from a few sampled frames. A frame where the
face is tiny, turned away, tilted up or down, or smeared by motion gives an embedding that
matches strangers and a crop the mask classifier guesses on; such a frame must not vote.
The gate reads what the detector already gives (box, score, five keypoints) plus one
Laplacian over the 112x112 aligned face the embedder makes anyway (and, for the mask label, the
spread of that face's grey levels: a face too dark to judge gets no label).
"""

from __future__ import annotations

import cv2
import numpy as np
from core.analyzer_configs import QualityGate


def geometry_ok(gate: QualityGate, box, score: float, keypoints) -> bool:
    """Size, score and pose from the detector's output alone (no pixels read)."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    if min(x2 - x1, y2 - y1) < gate.min_face_px or score < gate.min_score:
        return False
    low, high = gate.pitch_range
    return frontal_offset(keypoints) <= gate.max_yaw and low <= pitch_position(keypoints) <= high


def sharp_enough(gate: QualityGate, aligned_bgr: np.ndarray) -> bool:
    return sharpness(aligned_bgr) >= gate.min_sharpness


def contrast_enough(gate: QualityGate, aligned_bgr: np.ndarray) -> bool:
    return gate.min_contrast <= 0 or contrast(aligned_bgr) >= gate.min_contrast


def frontal_offset(keypoints) -> float:
    """How far the nose sits from the eyes' midpoint, in eye distances (0 = facing us)."""
    points = np.asarray(keypoints, np.float64)
    left_eye, right_eye, nose = points[0], points[1], points[2]
    eye_distance = float(np.linalg.norm(right_eye - left_eye))
    if eye_distance < 1e-6:
        return float("inf")
    return abs(float(nose[0] - (left_eye[0] + right_eye[0]) / 2)) / eye_distance


def pitch_position(keypoints) -> float:
    """Where the nose tip sits between the eye line (0) and the mouth line (1): about 0.5
    facing the camera, lower looking down at it from above, higher looking up."""
    points = np.asarray(keypoints, np.float64)
    eyes_y, mouth_y = (points[0, 1] + points[1, 1]) / 2, (points[3, 1] + points[4, 1]) / 2
    span = mouth_y - eyes_y
    if span <= 1e-6:
        return float("inf")
    return float((points[2, 1] - eyes_y) / span)


def _centre(aligned_bgr: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(aligned_bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    h, w = grey.shape
    return grey[h // 8: h - h // 8, w // 8: w - w // 8]


def contrast(aligned_bgr: np.ndarray) -> float:
    """Standard deviation of the aligned face's grey levels (its centre, 0-255). An under-exposed
    face (a dark stage, an unlit corner) reads a fraction of a lit one's: its few grey levels,
    squeezed further by the codec, are what the mask classifiers call masked (docs/accuracy.md)."""
    return float(_centre(aligned_bgr).std())


def sharpness(aligned_bgr: np.ndarray) -> float:
    """Mean squared Laplacian of the aligned face's centre over its grey-level variance: how
    much of its contrast is fine detail. Scale-free in brightness and contrast; a motion- or
    focus-blurred face reads several times lower than a sharp one of the same size."""
    centre = _centre(aligned_bgr)
    variance = float(centre.var())
    if variance < 1e-6:
        return 0.0
    return float((cv2.Laplacian(centre, cv2.CV_32F) ** 2).mean()) / variance
