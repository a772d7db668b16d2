"""Draws a frame's faces: box colour by state, a label with what is known about the face.

The farm draws straight onto the decoded frame's YUV 4:2:0 planes (luma at full size,
chroma at half), so a frame is never converted to BGR and back just to draw a few boxes;
``draw_faces`` does the same on a BGR image for callers that hold one.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from workers.analytics.faces import Faces
from workers.analytics.thermal import DEFAULT_FEVER_C, fever

# BGR colours by state.
COLOURS = {"fever": (0, 0, 255), "no_mask": (0, 140, 255), "known": (80, 200, 0), "unknown": (255, 200, 0)}
TEXT_BGR = (0, 0, 0)


def face_state(identity, mask, temperature_c, fever_c: float) -> str:
    if fever(temperature_c, fever_c):
        return "fever"
    if mask == "no_mask":
        return "no_mask"
    return "known" if identity else "unknown"


def face_label(score: float, track, identity, temperature_c) -> str:
    parts = [identity or (f"#{track}" if track is not None else f"{score:.2f}")]
    if temperature_c is not None:
        parts.append(f"{temperature_c:.1f}C")
    return " ".join(parts)


@lru_cache(maxsize=64)    # a handful of colours, asked for per face and plane of every frame
def bgr_to_yuv(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited range, the matrix H.264 assumes when a stream says nothing else."""
    b, g, r = (c / 255 for c in bgr)
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return round(y), round(u), round(v)


def _draw(planes: list[tuple[np.ndarray, float, int | None]], frame_size: tuple[int, int],
          faces: Faces, fever_c: float) -> None:
    """planes: (array, scale, channel) where channel picks the component of a colour
    (None = all three, for a BGR image). Text goes on the first plane only."""
    width, height = frame_size
    thickness = max(1, round(min(width, height) / 360))
    font_scale = 0.4 * thickness
    for face in faces.to_json():
        x1, y1, x2, y2 = (int(round(v)) for v in face["box"])
        colour = COLOURS[face_state(face["identity"], face["mask"], face["temperature_c"], fever_c)]
        label = face_label(face["score"], face["track"], face["identity"], face["temperature_c"])
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = max(0, y1 - th - base - 2)
        for index, (plane, scale, channel) in enumerate(planes):
            value = colour if channel is None else bgr_to_yuv(colour)[channel]
            text = TEXT_BGR if channel is None else bgr_to_yuv(TEXT_BGR)[channel]

            def at(x, y, s=scale):
                return int(x * s), int(y * s)

            cv2.rectangle(plane, at(x1, y1), at(x2, y2), value, max(1, int(thickness * scale)))
            cv2.rectangle(plane, at(x1, top), at(x1 + tw + 4, top + th + base + 2), value, -1)
            if index == 0:
                cv2.putText(plane, label, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX,
                            font_scale, text, 1, cv2.LINE_AA)


def draw_faces(image: np.ndarray, faces: Faces, fever_c: float = DEFAULT_FEVER_C) -> np.ndarray:
    """Draw on a BGR image in place and return it."""
    _draw([(image, 1.0, None)], (image.shape[1], image.shape[0]), faces, fever_c)
    return image


def draw_faces_i420(i420: np.ndarray, faces: Faces, fever_c: float = DEFAULT_FEVER_C) -> np.ndarray:
    """Draw in place on a planar YUV 4:2:0 image laid out as PyAV's ``to_ndarray`` gives it:
    shape (H * 3/2, W): the luma plane, then the U and V planes, each plane contiguous."""
    height, width = i420.shape[0] * 2 // 3, i420.shape[1]
    flat = i420.reshape(-1)  # a view: the array is C-contiguous
    luma_size, chroma_size = width * height, (width // 2) * (height // 2)
    luma = flat[:luma_size].reshape(height, width)
    chroma_u = flat[luma_size:luma_size + chroma_size].reshape(height // 2, width // 2)
    chroma_v = flat[luma_size + chroma_size:].reshape(height // 2, width // 2)
    _draw([(luma, 1.0, 0), (chroma_u, 0.5, 1), (chroma_v, 0.5, 2)], (width, height), faces, fever_c)
    return i420
