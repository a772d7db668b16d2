"""SCRFD's input and output, done in a few whole-array numpy steps.

insightface's ``SCRFD.detect`` resizes and pads into a fresh image, then decodes a box and
five keypoints for every one of the ~10,000 anchors of a 640x384 input before it drops those
under the threshold: much Python per frame around the model (docs/design-notes.md). Here the padded
input buffer is reused, only anchors over the threshold are decoded, and the results are
the same boxes (same model outputs, same greedy NMS).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MEAN, STD = 127.5, 128.0        # SCRFD's input normalisation: (pixel - 127.5) / 128, RGB
NMS_THRESHOLD = 0.4             # insightface's SCRFD (its nms_thresh)


@dataclass(frozen=True)
class Layout:
    """How a SCRFD export arranges its outputs: [scores..., boxes..., keypoints...] per stride."""
    strides: tuple[int, ...]
    anchors_per_cell: int
    has_keypoints: bool

    @classmethod
    def of_outputs(cls, count: int) -> "Layout":
        layouts = {6: ((8, 16, 32), 2, False), 9: ((8, 16, 32), 2, True),
                   10: ((8, 16, 32, 64, 128), 1, False), 15: ((8, 16, 32, 64, 128), 1, True)}
        if count not in layouts:
            raise ValueError(f"not a SCRFD detector: {count} outputs (expected 6, 9, 10 or 15)")
        return cls(*layouts[count])


class InputBuffer:
    """The model's input tensor for one input size, padded like insightface pads (black, at
    the right and bottom), reused from frame to frame."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.tensor = np.full((1, 3, height, width), (0 - MEAN) / STD, np.float32)
        self._filled = (0, 0)

    def fill(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        if w > self.width or h > self.height:
            raise ValueError(f"a {w}x{h} picture does not fit a {self.width}x{self.height} input")
        if (w, h) != self._filled:      # a smaller picture than last time: re-pad what it leaves
            self.tensor.fill((0 - MEAN) / STD)
            self._filled = (w, h)
        planes = self.tensor[0, :, :h, :w]
        for plane, channel in zip(planes, cv2.split(bgr)[::-1]):   # RGB planes; cv2.split is
            plane[...] = channel                                   # twice as fast as a transpose
        planes -= MEAN
        planes *= 1.0 / STD
        return self.tensor


def anchor_centres(width: int, height: int, layout: Layout) -> list[np.ndarray]:
    """Per stride, the (x, y) centre of each anchor in the order the model emits them."""
    centres = []
    for stride in layout.strides:
        ys, xs = np.mgrid[: height // stride, : width // stride]
        grid = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
        centres.append(np.repeat(grid, layout.anchors_per_cell, axis=0))
    return centres


def decode(outputs: list[np.ndarray], centres: list[np.ndarray], layout: Layout,
           threshold: float, nms_threshold: float = NMS_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [x1, y1, x2, y2, score] (best first) and their keypoints (N, 5, 2), in input pixels."""
    levels = len(layout.strides)
    outputs = [o[0] if o.ndim == 3 else o for o in outputs]     # batched exports: first image
    boxes, keypoints = [], []
    for level, stride in enumerate(layout.strides):
        hits = np.flatnonzero(outputs[level][:, 0] >= threshold)
        if not len(hits):
            continue
        centre = centres[level][hits]
        distance = outputs[levels + level][hits] * stride
        box = np.empty((len(hits), 5), np.float32)
        box[:, :2] = centre - distance[:, :2]
        box[:, 2:4] = centre + distance[:, 2:4]
        box[:, 4] = outputs[level][hits, 0]
        boxes.append(box)
        if layout.has_keypoints:
            points = outputs[2 * levels + level][hits].reshape(-1, 5, 2) * stride
            keypoints.append(points + centre[:, None, :])
    if not boxes:
        return np.empty((0, 5), np.float32), np.empty((0, 5, 2), np.float32)
    boxes = np.concatenate(boxes)
    keypoints = np.concatenate(keypoints) if keypoints else np.zeros((len(boxes), 5, 2), np.float32)
    order = np.argsort(-boxes[:, 4], kind="stable")
    keep = nms(boxes[order], nms_threshold)
    return boxes[order][keep], keypoints[order][keep].astype(np.float32)


def nms(boxes: np.ndarray, threshold: float) -> list[int]:
    """Greedy non-maximum suppression over boxes sorted best first (insightface's convention:
    areas count the +1 pixel; a box goes when it overlaps a kept one by more than threshold)."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    remaining = np.arange(len(boxes))
    keep = []
    while len(remaining):
        best, rest = remaining[0], remaining[1:]
        keep.append(int(best))
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = w * h / (areas[best] + areas[rest] - w * h)
        remaining = rest[overlap <= threshold]
    return keep
