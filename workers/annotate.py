"""Draws a frame's faces: box colour by state, a label with what is known about the face.

What is drawn comes from results entries (``Label.of``), so the annotated video says what
results.json says. The farm draws straight onto the decoded frame's YUV 4:2:0 planes (luma at
full size, chroma at half), so a frame is never converted to BGR and back just to draw a few
boxes; ``draw_labels`` does the same on a BGR image for callers that hold one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from workers.analytics.faces import Faces
from workers.analytics.thermal import DEFAULT_FEVER_C, fever

# BGR colours by state.
COLOURS = {"fever": (0, 0, 255), "no_mask": (0, 140, 255), "known": (80, 200, 0), "unknown": (255, 200, 0)}
TEXT_BGR = (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def face_state(identity, mask, temperature_c, fever_c: float) -> str:
    if fever(temperature_c, fever_c):
        return "fever"
    if mask == "no_mask":
        return "no_mask"
    return "known" if identity else "unknown"


def label_text(score: float, track, identity, temperature_c) -> str:
    parts = [identity or (f"#{track}" if track is not None else f"{score:.2f}")]
    if temperature_c is not None:
        parts.append(f"{temperature_c:.1f}C")
    return " ".join(parts)


@dataclass(frozen=True)
class Label:
    """What is drawn for one face: its box (whole source pixels), text and state (colour)."""
    box: tuple[int, int, int, int]
    text: str
    state: str

    @classmethod
    def of(cls, face: dict, fever_c: float = DEFAULT_FEVER_C) -> "Label":
        """The label of a face entry of results.json (GUIDE.md contract 3)."""
        return cls(tuple(int(round(v)) for v in face["box"]),
                   label_text(face["score"], face["track"], face["identity"], face["temperature_c"]),
                   face_state(face["identity"], face["mask"], face["temperature_c"], fever_c))

    def to_json(self) -> list:
        return [*self.box, self.text, self.state]

    @classmethod
    def from_json(cls, data: list) -> "Label":
        return cls(tuple(data[:4]), data[4], data[5])


def _thickness(frame_size: tuple[int, int]) -> int:
    return max(1, round(min(frame_size) / 360))


def label_area(label: Label, frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The filled rectangle the label's text sits on (x1, y1, x2, y2; x2 and y2 included),
    in a frame of ``frame_size`` (width, height)."""
    thickness = _thickness(frame_size)
    (tw, th), base = cv2.getTextSize(label.text, FONT, 0.4 * thickness, 1)
    x1, y1 = label.box[:2]
    top = max(0, y1 - th - base - 2)
    return x1, top, x1 + tw + 4, top + th + base + 2


@lru_cache(maxsize=64)    # a handful of colours, asked for per face and plane of every frame
def bgr_to_yuv(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited range, the matrix H.264 assumes when a stream says nothing else."""
    b, g, r = (c / 255 for c in bgr)
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return round(y), round(u), round(v)


def _draw(planes: list[tuple[np.ndarray, float, int | None]], frame_size: tuple[int, int],
          labels: list[Label]) -> None:
    """planes: (array, scale, channel) where channel picks the component of a colour
    (None = all three, for a BGR image). Text goes on the first plane only."""
    thickness = _thickness(frame_size)
    for label in labels:
        x1, y1, x2, y2 = label.box
        colour = COLOURS[label.state]
        ax1, atop, ax2, abottom = label_area(label, frame_size)
        (_, th), _ = cv2.getTextSize(label.text, FONT, 0.4 * thickness, 1)
        for index, (plane, scale, channel) in enumerate(planes):
            value = colour if channel is None else bgr_to_yuv(colour)[channel]
            text = TEXT_BGR if channel is None else bgr_to_yuv(TEXT_BGR)[channel]

            def at(x, y, s=scale):
                return int(x * s), int(y * s)

            cv2.rectangle(plane, at(x1, y1), at(x2, y2), value, max(1, int(thickness * scale)))
            cv2.rectangle(plane, at(ax1, atop), at(ax2, abottom), value, -1)
            if index == 0:
                cv2.putText(plane, label.text, (x1 + 2, atop + th + 1), FONT, 0.4 * thickness, text, 1, cv2.LINE_AA)


def draw_labels(image: np.ndarray, labels: list[Label]) -> np.ndarray:
    """Draw on a BGR image in place and return it."""
    _draw([(image, 1.0, None)], (image.shape[1], image.shape[0]), labels)
    return image


def i420_planes(i420: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of a planar YUV 4:2:0 image laid out as PyAV's
    ``to_ndarray`` gives it: shape (H * 3/2, W), each plane contiguous."""
    height, width = i420.shape[0] * 2 // 3, i420.shape[1]
    flat = i420.reshape(-1)  # a view: the array is C-contiguous
    luma_size, chroma_size = width * height, (width // 2) * (height // 2)
    return (flat[:luma_size].reshape(height, width),
            flat[luma_size:luma_size + chroma_size].reshape(height // 2, width // 2),
            flat[luma_size + chroma_size:].reshape(height // 2, width // 2))


def draw_labels_i420(i420: np.ndarray, labels: list[Label]) -> np.ndarray:
    """Draw in place on a planar YUV 4:2:0 image (``i420_planes``) and return it."""
    draw_labels_yuv(i420_planes(i420), labels)
    return i420


def draw_labels_yuv(planes: tuple[np.ndarray, np.ndarray, np.ndarray], labels: list[Label]) -> None:
    """Draw in place on the Y, U and V planes of a 4:2:0 picture (chroma at half size)."""
    luma, chroma_u, chroma_v = planes
    _draw([(luma, 1.0, 0), (chroma_u, 0.5, 1), (chroma_v, 0.5, 2)], (luma.shape[1], luma.shape[0]), labels)


def labels_of(faces: Faces, fever_c: float = DEFAULT_FEVER_C) -> list[Label]:
    return [Label.of(face, fever_c) for face in faces.to_json()]


def draw_faces(image: np.ndarray, faces: Faces, fever_c: float = DEFAULT_FEVER_C) -> np.ndarray:
    """Draw a ``Faces`` record on a BGR image in place (the benchmarks' naive loop)."""
    return draw_labels(image, labels_of(faces, fever_c))


def draw_faces_i420(i420: np.ndarray, faces: Faces, fever_c: float = DEFAULT_FEVER_C) -> np.ndarray:
    return draw_labels_i420(i420, labels_of(faces, fever_c))
