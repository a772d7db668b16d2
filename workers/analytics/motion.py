"""Where a video frame moves, and the square regions a second detector pass looks at.

SCRFD sees the whole frame at 640 pixels: a face 80 pixels tall in a 1280x720 frame is 40
pixels in the model's input, and a masked one (half the face hidden) then scores below the
threshold; a face filling the frame (someone close to a door camera) is larger than the
model's largest anchors and has no surroundings. Looking again at a moving region, scaled so
that its content is large but not too large in the model's input, finds both (measured in
docs/accuracy.md). Motion is what tells where someone is: frame differencing on a small grey
copy costs a fraction of a millisecond, and a still or empty frame costs nothing more.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from av.video.reformatter import ColorRange

from workers.analytics.picture import Picture

DILATE_5 = np.ones((5, 5), np.uint8)
LUMA_FORMATS = ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "gray")


def luma_plane(frame) -> np.ndarray | None:
    """A decoded frame's luma plane as a grey image (a view of the frame, no copy: do not write
    into it); None for a frame without one."""
    if frame is None or frame.format.name not in LUMA_FORMATS:
        return None
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:frame.height, :frame.width]


def full_range(frame) -> bool:
    """Whether a decoded frame's luma spans 0-255 (JPEG levels) rather than video's 16-235, read
    as swscale reads it when it makes the frame's BGR picture (workers.analytics.picture), so
    that a grey copy from the luma plane and one from the BGR picture agree. The frame's
    ``color_range`` decides: the decoder sets it from what the stream says (a VP9 or AV1 camera
    stream tagged full range decodes to plain yuv420p, tagged ``pc``; H.264 and HEVC ones to
    yuvj420p here), and where neither says, a YUV picture is limited range (FFmpeg's default).
    The yuvj formats, and grey, are full range whatever the tag (swscale reads them so)."""
    name = frame.format.name
    return name.startswith("yuvj") or name == "gray" or frame.color_range == ColorRange.JPEG


class MotionMap:
    """Frame differencing on a small grey copy of consecutive frames of one video."""

    def __init__(self, long_side: int = 256, threshold: int = 12, min_side_px: int = 3):
        self.long_side, self.threshold, self.min_side_px = long_side, threshold, min_side_px
        # The frame kept for the next to compare with (the picture, and the size its grey copy is
        # shrunk from): its grey copy is made only when a frame is compared with it.
        self.previous: tuple[Picture, tuple[int, int] | None] | None = None
        # The last frame's changed pixels (before the blobs are grown from them) on the small
        # copy, and its pixels per source pixel; None where the frame was not compared.
        self.moved: np.ndarray | None = None
        self.scale = 1.0

    def reset(self) -> None:
        self.previous = self.moved = None

    def skip(self) -> None:
        """This frame is not read: the next one has nothing to compare with (no blobs)."""
        self.previous = self.moved = None

    def regions(self, picture: Picture, base_size: tuple[int, int] | None = None, compare: bool = True,
                elapsed: int = 1) -> list[tuple[float, float, float, float]]:
        """Boxes (source pixels) around the parts of the frame that changed since the last
        frame, largest first; none on the first frame or after a change of frame size:
        :meth:`read`, then :meth:`blobs`."""
        return self.blobs() if self.read(picture, base_size, compare, elapsed) else []

    def read(self, picture: Picture, base_size: tuple[int, int] | None = None, compare: bool = True,
             elapsed: int = 1) -> bool:
        """Keep this frame for the next to compare with and, with ``compare``, mark what changed
        since the frame kept before (:attr:`moved`); whether it was compared (False on the first
        frame or after a change of frame size). Its blobs are :meth:`blobs`, worked out only where
        someone needs them. A frame's grey copy is made only when a frame is compared (with it, or
        it with the one before): kept but never compared with, it costs nothing.
        ``base_size``: a size the picture was already converted to (the detector's input): the
        small copy is shrunk from it rather than converted from the frame again.
        ``compare=False``: only keep this frame for the next one to compare with.
        ``elapsed``: frames since the one kept; beyond one (the motion gate looked at none
        between), the frame is first brought to that one's mean level: the light scales every
        pixel, and over a quiet minute it drifts enough to make the whole frame one blob, whose
        look in vain then barred every blob in it for the second look's ``retry_frames`` (issue 15)."""
        kept, self.previous = self.previous, (picture, base_size)
        self.moved = None
        if not compare or kept is None:
            return False
        (grey, scale), (previous, _) = self.grey(picture, base_size), self.grey(*kept)
        if previous.shape != grey.shape:
            return False
        if elapsed > 1:
            level = cv2.mean(previous)[0] / max(cv2.mean(grey)[0], 1.0)
            moved = (np.abs(grey.astype(np.float32) * level - previous) > self.threshold).astype(np.uint8)
        else:       # 1 where the difference is over the threshold, as (difference > threshold) in uint8
            moved = cv2.threshold(cv2.absdiff(grey, previous), self.threshold, 1, cv2.THRESH_BINARY)[1]
        self.moved, self.scale = moved, scale
        return True

    def grey(self, picture: Picture, base_size: tuple[int, int] | None = None) -> tuple[np.ndarray, float]:
        """The picture's small grey copy, blurred, and its pixels per source pixel; made once a
        picture (kept in its cache: a frame is compared with the one before and the one after)."""
        return picture.derived(("motion grey", self.long_side, base_size), lambda p: self._grey(p, base_size))

    def _grey(self, picture: Picture, base_size: tuple[int, int] | None) -> tuple[np.ndarray, float]:
        size, scale = self._size(picture, base_size)
        if base_size is None:
            grey = cv2.cvtColor(picture.bgr_at(size), cv2.COLOR_BGR2GRAY)
        else:
            # Grey first, then a bilinear shrink: a fraction of an area-averaged colour one.
            grey = cv2.resize(cv2.cvtColor(picture.bgr_at(base_size), cv2.COLOR_BGR2GRAY), size,
                              interpolation=cv2.INTER_LINEAR)
        return cv2.GaussianBlur(grey, (5, 5), 0), scale

    def _size(self, picture: Picture, base_size: tuple[int, int] | None) -> tuple[tuple[int, int], float]:
        """The grey copy's size, and its pixels per source pixel: from the picture's BGR copy of
        ``long_side`` (as ``Picture.bgr`` sizes it), or shrunk from ``base_size``."""
        if base_size is None:
            scale = min(1.0, self.long_side / max(picture.width, picture.height))
            return (max(1, round(picture.width * scale)), max(1, round(picture.height * scale))), scale
        factor = min(1.0, self.long_side / max(base_size))
        size = (max(1, round(base_size[0] * factor)), max(1, round(base_size[1] * factor)))
        return size, size[0] / picture.width

    def covered(self, picture: Picture, base_size: tuple[int, int] | None = None) -> tuple[float, float, float, float]:
        """The box (source pixels) the picture's grey copy spans, made or not: every blob of it
        lies inside (the frame, give or take a grey pixel's rounding)."""
        (width, height), scale = self._size(picture, base_size)
        return 0.0, 0.0, width / scale, height / scale

    def blobs(self) -> list[tuple[float, float, float, float]]:
        """Boxes (source pixels) around the blobs of what :meth:`read` marked, largest first;
        none where it compared nothing."""
        if self.moved is None:
            return []
        scale = self.scale
        moved = cv2.dilate(self.moved, DILATE_5)   # one blob per moving thing
        boxes = [(x, y, x + w, y + h) for x, y, w, h in blob_boxes(moved)
                 if w >= self.min_side_px and h >= self.min_side_px]
        return [(x1 / scale, y1 / scale, x2 / scale, y2 / scale) for x1, y1, x2, y2 in boxes]

    def extent(self) -> tuple[float, float, float, float] | None:
        """A box (source pixels) that holds every blob :meth:`blobs` would give, at a fraction of
        its cost (the changed pixels' bounding box, grown as the dilation grows them); None where
        nothing changed, or nothing was compared."""
        if self.moved is None:
            return None
        x, y, w, h = cv2.boundingRect(self.moved)
        if not w:
            return None
        grow, (height, width) = DILATE_5.shape[0] // 2, self.moved.shape
        x1, y1 = max(0, x - grow), max(0, y - grow)
        x2, y2 = min(width, x + w + grow), min(height, y + h + grow)
        return x1 / self.scale, y1 / self.scale, x2 / self.scale, y2 / self.scale

    def moving_share(self, boxes) -> np.ndarray:
        """Per box ([x1, y1, x2, y2, ...] rows, source pixels): the share of its pixels that changed
        since the last frame (on the small copy, the box grown to whole pixels); 0 where this
        frame was not compared."""
        boxes = np.asarray(boxes, np.float64).reshape(len(boxes), -1) if len(boxes) else np.empty((0, 4))
        shares = np.zeros(len(boxes))
        if self.moved is None:
            return shares
        h, w = self.moved.shape
        for row, box in enumerate(boxes):
            x1, y1 = max(0, math.floor(box[0] * self.scale)), max(0, math.floor(box[1] * self.scale))
            x2, y2 = min(w, max(x1 + 1, math.ceil(box[2] * self.scale))), min(h, max(y1 + 1, math.ceil(box[3] * self.scale)))
            if x2 > x1 and y2 > y1:
                shares[row] = float(self.moved[y1:y2, x1:x2].mean())
        return shares


def blob_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of each 8-connected blob of a binary mask, largest box first (equal ones
    top-left first): the boxes connectedComponentsWithStats gives, from the blobs' outer
    contours (RETR_CCOMP keeps a blob inside another's hole at the top level) in about a fifth
    of its time (it labels and measures every pixel; hamilton: 0.03 vs 0.14 ms a frame)."""
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    boxes = [cv2.boundingRect(c) for c, h in zip(contours, hierarchy[0]) if h[3] < 0]
    return sorted(boxes, key=lambda b: (-b[2] * b[3], b[1], b[0]))


def person_areas(face_boxes: np.ndarray, widths: float = 1.0, heights: float = 4.0) -> np.ndarray:
    """Where the rest of each found face's person moves: ``widths`` of the face's width either
    side (hands), half its height above and ``heights`` below (body). A moving blob there is that
    person, whose face is already found; looking there again costs a detector run and finds
    nothing new."""
    boxes = np.asarray(face_boxes, np.float64).reshape(-1, 4)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.stack([boxes[:, 0] - widths * w, boxes[:, 1] - 0.5 * h, boxes[:, 2] + widths * w,
                     boxes[:, 3] + heights * h], axis=1)


def in_areas(blob, areas: np.ndarray) -> bool:
    """Whether the blob's centre lies in one of ``areas`` (x1, y1, x2, y2 rows)."""
    bx, by = (blob[0] + blob[2]) / 2, (blob[1] + blob[3]) / 2
    return bool(((areas[:, 0] <= bx) & (bx <= areas[:, 2]) & (areas[:, 1] <= by) & (by <= areas[:, 3])).any())


def accounted_for(blob, face_boxes: np.ndarray) -> bool:
    """A moving blob holds a found face, or its centre lies in the area of a found face's person."""
    return bool(accounted_for_each([blob], face_boxes)[0])


def accounted_for_each(blobs, face_boxes: np.ndarray) -> np.ndarray:
    """:func:`accounted_for` of each blob, all at once: busy footage has a dozen blobs and a few
    faces a frame, asked about several times (the gate, the second look's plan), and a test
    per blob cost more than the rest of the plan (hamilton: 25 tests a frame)."""
    boxes = np.asarray(face_boxes, np.float64).reshape(-1, 4)
    rects = np.asarray(blobs, np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.zeros(len(rects), bool)
    x1, y1, x2, y2 = (rects[:, i:i + 1] for i in range(4))          # (blobs, 1): against every face
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    holds = ((cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)).any(axis=1)
    areas = person_areas(boxes)
    bx, by = (x1 + x2) / 2, (y1 + y2) / 2
    in_area = ((areas[:, 0] <= bx) & (bx <= areas[:, 2]) & (areas[:, 1] <= by) & (by <= areas[:, 3])).any(axis=1)
    return holds | in_area


def unexplained(blobs, face_boxes: np.ndarray, min_side: float = 0) -> list:
    """The moving blobs that no found face accounts for (:func:`accounted_for`), specks (whose
    longer side is under ``min_side``) left out: where someone may be whom no look has found."""
    blobs = [b for b in blobs if max(b[2] - b[0], b[3] - b[1]) >= min_side]
    if not blobs:        # most plans between two looks: the faces' areas need not be worked out
        return []
    return [b for b, explained in zip(blobs, accounted_for_each(blobs, face_boxes)) if not explained]


def head_square(box, context: float = 1.25, tall: float = 1.5) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square a second pass looks at for a moving blob:
    the blob grown by ``context`` (a detector needs some surroundings); for a blob much
    taller than wide (a walking person) only its top, where the head is."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w, h = x2 - x1, y2 - y1
    if h > tall * w:
        h = tall * w
    side = max(w, h) * context
    return (x1 + x2) / 2, y1 + h / 2, side


def region_picture(picture: Picture, square: tuple[float, float, float], input_side: int
                   ) -> tuple[np.ndarray, float, float, float]:
    """The square region as a BGR image of ``input_side`` pixels (grey where it leaves the
    frame), and how to map its pixels back: source = region / scale + (x0, y0)."""
    cx, cy, side = square
    scale = input_side / side
    # Read the frame at the size the region needs (never above the source's own size).
    long_side = max(picture.width, picture.height)
    frame, frame_scale = picture.bgr(min(long_side, math.ceil(long_side * scale)))
    x0, y0 = cx - side / 2, cy - side / 2
    fx0, fy0, fside = x0 * frame_scale, y0 * frame_scale, side * frame_scale
    left, top = math.floor(fx0), math.floor(fy0)
    right, bottom = math.ceil(fx0 + fside), math.ceil(fy0 + fside)
    h, w = frame.shape[:2]
    crop = frame[max(0, top):min(h, bottom), max(0, left):min(w, right)]
    padded = cv2.copyMakeBorder(crop, max(0, -top), max(0, bottom - h), max(0, -left), max(0, right - w),
                                cv2.BORDER_CONSTANT, value=(114, 114, 114))
    out_side = max(1, round((right - left) * scale / frame_scale))
    region = cv2.resize(padded, (out_side, max(1, round((bottom - top) * scale / frame_scale))),
                        interpolation=cv2.INTER_AREA if scale < frame_scale else cv2.INTER_LINEAR)
    return region, scale, left / frame_scale, top / frame_scale
