"""Which regions of a frame the detector looks at a second time, and when.

The second look (``workers.analytics.motion``) costs about one detector run per region, so it
is planned to cost little on ordinary footage, where people's faces are found by the first
pass and most motion is their hands and bodies, and to follow the faces only it finds:

- a **follow-up** look around each face that a second look found on the previous frame (the
  first pass misses such a face on this frame too, most likely);
- an **exploratory** look at a moving blob that no found face accounts for (its person's area,
  :func:`~workers.analytics.motion.accounted_for`), is big enough to hold a face, and was not
  looked at in vain over the last ``retry_frames`` frames (a waving hand is looked at once,
  not on every frame), paid from a budget: each frame adds ``budget`` first-pass runs' worth of
  detector time, a look costs its input's area over the first pass's, and the bucket holds at
  most ``burst`` (so the first frames with motion are looked at at once, yet over a long
  recording exploration costs at most ``budget`` of the first pass);
- first of the exploratory looks, one at the **moving area** (the box around the moving blobs
  no found face accounts for, when there are two or more of at least ``min_blob_px``) when it
  is large (``area_share`` of the frame's short side): a face filling the frame (someone close
  to a door camera) moves as many small blobs (eyes, mouth, the edge of the cheek), none of
  which holds the face, while the first pass
  sees it larger than its anchors suit (tuning split: bare close-ups scored 0.23-0.40 at 640
  px, 0.41-0.70 in a 224 px look at the whole frame). A look there that finds nothing is not
  repeated for ``retry_frames`` frames; the blobs inside it still get their own looks, as
  the budget allows (a smaller face moving inside a large moving area).
"""

from __future__ import annotations

import numpy as np
from workers.analytics.motion import MotionMap, accounted_for, head_square, unexplained
from workers.analytics.picture import Picture
from core.analyzer_configs import SecondLookConfig

Square = tuple[float, float, float]      # centre x, centre y, side (source pixels)
GRACE_LOOKS = 1                          # a followed face missed this many times in a row is dropped


def _inside(x: float, y: float, square: Square) -> bool:
    cx, cy, side = square
    return abs(x - cx) <= side / 2 and abs(y - cy) <= side / 2


class SecondLook:
    def __init__(self, config: SecondLookConfig):
        self.motion = MotionMap(threshold=config.motion_threshold)
        self.max_looks, self.retry_frames, self.min_blob_px = config.max_looks, config.retry_frames, config.min_blob_px
        self.budget, self.burst, self.tokens = config.budget, config.burst, config.burst
        self.frame = -1
        # (face box, side of the look that found it, looks in a row that lost it since): the
        # faces to follow on the next frame, and those being followed on this one.
        self.follow: list[tuple[np.ndarray, float, int]] = []
        self.following: list[tuple[np.ndarray, float, int]] = []
        self.empty: list[tuple[int, Square]] = []       # (frame, square) of looks that found nothing
        self.area_share = config.area_share
        self.area_index: int | None = None              # where this frame's moving-area look is in the plan
        self.area_empty = -config.retry_frames - 1      # the last frame an area look found nothing

    def plan(self, picture: Picture, first_boxes: np.ndarray, look_cost=lambda square: 1.0,
             base_size: tuple[int, int] | None = None, cheapest_look: float = 0.0) -> list[Square]:
        """The squares to look at on this frame, given the faces the first pass found;
        ``look_cost(square)``: a look's detector time in first-pass runs, never below
        ``cheapest_look``; ``base_size``: the size the detector already read the picture at
        (motion is read from that copy)."""
        self.frame += 1
        self.tokens = min(self.burst, self.tokens + self.budget)
        # Motion is read only when a look could be paid for on this frame (blobs) or the next
        # (this frame is what it compares with): while the budget refills after a look, a
        # frame costs no motion reading at all. The looks planned are the same as reading
        # motion on every frame: with fewer tokens than the cheapest look, none is made.
        if self.tokens >= cheapest_look:
            blobs = self.motion.regions(picture, base_size)
        elif self.tokens + self.budget >= cheapest_look:
            blobs = self.motion.regions(picture, base_size, compare=False)
        else:
            blobs = []
            self.motion.skip()
        found = np.asarray(first_boxes, np.float64).reshape(-1, 4)
        squares: list[Square] = []
        self.following = []
        for box, side, misses in self.follow:
            if len(squares) < self.max_looks and not accounted_for(box, found):
                # The same scale as the look that found it, centred where the face was; not paid
                # from the budget: a face is known to be there.
                squares.append(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, side))
                self.following.append((box, side, misses))
        self.empty = [(f, s) for f, s in self.empty if self.frame - f <= self.retry_frames]
        self.area_index = None
        area = self._area_square(picture, blobs, found, squares)
        if area is not None and len(squares) < self.max_looks and self.tokens >= look_cost(area):
            self.tokens -= look_cost(area)
            self.area_index = len(squares)
            squares.append(area)
        for blob in self._unexplained(blobs, found):
            if len(squares) >= self.max_looks:
                break
            x1, y1, x2, y2 = blob
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            if any(_inside(cx, cy, s) for i, s in enumerate(squares) if i != self.area_index) or \
                    any(_inside(cx, cy, s) for _, s in self.empty):
                continue
            square = head_square(blob)
            if self.tokens < look_cost(square):
                break
            self.tokens -= look_cost(square)
            squares.append(square)
        return squares

    def _area_square(self, picture: Picture, blobs, found: np.ndarray, squares: list[Square]) -> Square | None:
        """The square around the moving blobs that could be part of a face no found face
        accounts for, when there are several (one alone gets its own look) and a face could
        fill the box around them. Specks and the motion of found faces are left out: they would
        keep the area look coming back (every ``retry_frames``) and spend the budget that small
        faces' looks need."""
        if not self.area_share or self.frame - self.area_empty <= self.retry_frames:
            return None
        blobs = self._unexplained(blobs, found)
        if len(blobs) < 2:
            return None
        area = (min(b[0] for b in blobs), min(b[1] for b in blobs), max(b[2] for b in blobs), max(b[3] for b in blobs))
        if max(area[2] - area[0], area[3] - area[1]) < self.area_share * min(picture.width, picture.height):
            return None
        if accounted_for(area, found):
            return None
        square = head_square(area)
        if any(_inside(square[0], square[1], s) for s in squares):     # a followed face is there
            return None
        return square

    def _unexplained(self, blobs, found: np.ndarray) -> list:
        """The moving blobs worth a look: not specks (``min_blob_px``), not where a found face is."""
        return unexplained(blobs, found, self.min_blob_px)

    def record(self, looks: list[tuple[Square, np.ndarray]]) -> None:
        """What each look (in planned order) found, boxes in source pixels: faces to follow,
        squares to leave alone. A followed face missed once is looked for once more."""
        follows = len(self.following)
        self.follow = [(box, square[2], 0) for square, boxes in looks for box in np.asarray(boxes, np.float64).reshape(-1, 4)]
        self.follow += [(box, side, misses + 1) for (box, side, misses), (_, boxes) in zip(self.following, looks)
                        if not len(boxes) and misses < GRACE_LOOKS]
        if self.area_index is not None and self.area_index < len(looks) and not len(looks[self.area_index][1]):
            self.area_empty = self.frame
        self.empty += [(self.frame, square) for index, (square, boxes) in enumerate(looks) if index >= follows
                       and index != self.area_index and not len(boxes)]
