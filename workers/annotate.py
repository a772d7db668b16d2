"""Draws a frame's faces: box colour by state, a label with what is known about the face."""

from __future__ import annotations

import cv2
import numpy as np

from workers.analytics.faces import Faces

# BGR colours by state, most urgent first.
COLOURS = {"fever": (0, 0, 255), "no_mask": (0, 140, 255), "known": (80, 200, 0), "unknown": (255, 200, 0)}


def face_state(identity, mask, temperature_c, fever_c: float) -> str:
    if temperature_c is not None and temperature_c >= fever_c:
        return "fever"
    if mask == "no_mask":
        return "no_mask"
    return "known" if identity else "unknown"


def face_label(score: float, track, identity, temperature_c) -> str:
    parts = [identity or (f"#{track}" if track is not None else f"{score:.2f}")]
    if temperature_c is not None:
        parts.append(f"{temperature_c:.1f}C")
    return " ".join(parts)


def draw_faces(frame: np.ndarray, faces: Faces, fever_c: float = 37.5) -> np.ndarray:
    """Draw in place (the frame is ours: it was just decoded) and return it."""
    thickness = max(1, round(min(frame.shape[:2]) / 360))
    for face in faces.to_json():
        x1, y1, x2, y2 = (int(round(v)) for v in face["box"])
        colour = COLOURS[face_state(face["identity"], face["mask"], face["temperature_c"], fever_c)]
        cv2.rectangle(frame, (x1, y1), (x2, y2), colour, thickness)
        label = face_label(face["score"], face["track"], face["identity"], face["temperature_c"])
        scale = 0.4 * thickness
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(0, y1 - th - base - 2)
        cv2.rectangle(frame, (x1, top), (x1 + tw + 4, top + th + base + 2), colour, -1)
        cv2.putText(frame, label, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return frame
