"""Which regions of a frame the detector looks at a second time, and when.

The second look (``workers.analytics.motion``) costs about one detector run per region, so it
is planned to cost little on ordinary footage, where people's faces are found by the first
pass and most motion is their hands and bodies, and to follow the faces only it finds:

- a **follow-up** look around each face that a second look found on the previous frame (the
  first pass misses such a face on this frame too, most likely), at the scale that found it;
  with ``follow_side``, once the face's step is known, a square of that many face heights
  around where the step puts it (a tiny face's look reads a 224-px input instead of a 480-px
  one), one look a face; follow-up looks take at most ``max_looks`` whole looks' input a frame;
- an **exploratory** look at a moving blob that no found face accounts for (its person's area,
  :func:`~workers.analytics.motion.accounted_for`), is big enough to hold a face, and was not
  looked at in vain over the last ``retry_frames`` frames (a waving hand is looked at once,
  not on every frame), paid from a budget: each frame adds ``budget`` first-pass runs' worth of
  detector time (every frame of the video, those the motion gate does not look at too: a quiet
  stretch refills it), a look costs its input's area over the first pass's, and the bucket
  holds at most ``burst`` (so the first frames with motion are looked at at once, yet over a
  long recording exploration costs at most ``budget`` of an every-frame first pass);
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

from dataclasses import dataclass, replace

import numpy as np
from workers.analytics.motion import MotionMap, accounted_for, head_square, unexplained
from workers.analytics.picture import Picture
from workers.analytics.tracks import box_centre, box_height, box_iou
from core.analyzer_configs import SecondLookConfig

Square = tuple[float, float, float]      # centre x, centre y, side (source pixels)
GRACE_LOOKS = 1                          # a followed face missed this many times in a row is dropped
WEAK_LOOKS = 3                           # ... found only weakly this many times in a row: dropped
LIKE_SIZE = 1.5                          # a box continues a followed face within this ratio of its height
MIN_FOLLOW_INPUT = 96                    # a follow-up look sized to its face reads at least this (model input side)


@dataclass
class Followed:
    """A face a look found, followed by a look on the next frame."""
    box: np.ndarray                      # where a look last found it (source pixels)
    side: float                          # the side of the look that found it first (its scale: a usual look's side there)
    misses: int = 0                      # looks in a row that did not find it
    weak: int = 0                        # looks in a row that found it only under the look threshold
    velocity: np.ndarray | None = None   # its centre's shift a look, between the last two that found it

    def predicted(self) -> tuple[float, float]:
        """Where its centre is on the next look, at its last velocity."""
        centre = box_centre(self.box)
        if self.velocity is not None:
            centre = centre + self.velocity * (self.misses + 1)
        return float(centre[0]), float(centre[1])

    def predicted_box(self) -> np.ndarray:
        return self.box + np.tile(np.array(self.predicted()) - box_centre(self.box), 2)

    def continued(self, box: np.ndarray, weak: int) -> "Followed":
        """The face found again at ``box`` (``weak``: looks in a row it was found only weakly)."""
        shift = box_centre(box) - box_centre(self.box)
        return Followed(box.copy(), self.side, 0, weak, shift / (self.misses + 1))


def _inside(x: float, y: float, square: Square) -> bool:
    cx, cy, side = square
    return abs(x - cx) <= side / 2 and abs(y - cy) <= side / 2


class SecondLook:
    def __init__(self, config: SecondLookConfig):
        self.motion = MotionMap(threshold=config.motion_threshold)
        self.max_looks, self.retry_frames, self.min_blob_px = config.max_looks, config.retry_frames, config.min_blob_px
        self.budget, self.burst, self.tokens = config.budget, config.burst, config.burst
        self.frame = -1
        self.threshold, self.follow_threshold, self.follow_reach = (config.threshold, config.follow_threshold,
                                                                    config.follow_reach)
        self.continue_faces, self.follow_side = config.continue_faces, config.follow_side
        self.still_threshold = config.still_threshold
        self.still_moving_share, self.still_landmarks = config.still_moving_share, config.still_landmarks
        self.region_input = config.region_input
        # The faces to follow on the next frame, and those being followed on this one.
        self.follow: list[Followed] = []
        self.following: list[Followed] = []
        self.carried: list[Followed] = []               # followed faces the first pass found on this frame
        self.inputs: list[int | None] = []              # a follow-up look's model input side (None: the usual)
        self.empty: list[tuple[int, Square]] = []       # (frame, square) of looks that found nothing
        self.area_share = config.area_share
        self.area_index: int | None = None              # where this frame's moving-area look is in the plan
        self.blobs: list = []                           # this frame's moving blobs (source pixels)
        self.area_empty = -config.retry_frames - 1      # the last frame an area look found nothing

    def plan(self, picture: Picture, first_boxes: np.ndarray, look_cost=lambda square: 1.0,
             base_size: tuple[int, int] | None = None, cheapest_look: float = 0.0, look_side=None,
             frame: int | None = None, cheapest_within=None) -> list[Square]:
        """The squares to look at on this frame, given the faces the first pass found;
        ``look_cost(square)``: a look's detector time in first-pass runs, never below
        ``cheapest_look``; ``base_size``: the size the detector already read the picture at
        (motion is read from that copy); ``look_side(square)``: a look's usual model input side
        (a follow-up look sized to its face keeps that scale: :meth:`input_side`); ``frame``: this
        frame's index (None: the one after the last planned); ``cheapest_within(side)``: the
        cheapest look at a square of at most ``side`` source pixels (None: ``cheapest_look``
        whatever the side; the detector reads a square as large as its own input at a smaller
        input, so there the large squares are the cheap ones). Frames between two plans
        (those the motion gate did not look at) count as frames: they refill the budget and age
        the squares left alone, as they would had the detector seen them. Counted in plans, a
        quiet stretch after a visitor who spent the budget left it empty for the next arrival
        (issue 15: a 120-s segment lost a group of tiny faces that 4-s ones, each starting with
        a full bucket, found)."""
        elapsed = 1 if frame is None else max(1, frame - self.frame)
        self.frame += elapsed
        self.tokens = min(self.burst, self.tokens + self.budget * elapsed)
        # Motion is read only when a look could be paid for on this frame (blobs) or the next
        # (this frame is what it compares with): while the budget refills after a look, a
        # frame costs no motion reading at all. The looks planned are the same as reading
        # motion on every frame: with fewer tokens than the cheapest look, none is made.
        # A followed face's weak find is taken only where the picture moves (``continuation``):
        # while faces are followed, motion is read on every frame.
        compare = self.tokens >= cheapest_look or bool(self.follow)
        keep = compare or self.tokens + self.budget >= cheapest_look
        cheapest_within = cheapest_within or (lambda side: cheapest_look)
        found = np.asarray(first_boxes, np.float64).reshape(-1, 4)
        squares: list[Square] = []
        self.following, self.inputs = [], []
        look_side = look_side or (lambda square: self.region_input)
        spent = 0.0         # follow-up looks so far, in usual looks' model input area
        self.carried = []
        for face in self.follow:
            if spent >= self.max_looks:
                continue
            if accounted_for(face.predicted_box(), found):
                carried = self._found_by_first_pass(face, found)
                if carried is not None:
                    self.carried.append(carried)
                continue
            # The same scale as the look that found it, centred where the face should be now;
            # not paid from the budget: a face is known to be there.
            square, side = self._follow_up(face, look_side)
            spent += (square[2] / face.side) ** 2
            squares.append(square)
            self.inputs.append(side)
            self.following.append(face)
        self.empty = [(f, s) for f, s in self.empty if self.frame - f <= self.retry_frames]
        # Compared only where a look could read what moved: a follow-up look, or an exploratory
        # look the budget pays for at a square no larger than the frame's (every blob lies in
        # it). Otherwise the frame is only kept: its grey copy is made if the next compares.
        if keep:
            whole = head_square(self.motion.covered(picture, base_size))[2]
            self.motion.read(picture, base_size, compare and bool(squares or self.tokens >= cheapest_within(whole)),
                             elapsed)
        else:
            self.motion.skip()
        self.blobs = blobs = self.motion.blobs() if self._blobs_matter(squares, cheapest_within) else []
        self.area_index = None
        loose = self._unexplained(blobs, found)      # once: the area look and the blobs' own looks read it
        area = self._area_square(picture, loose, found, squares)
        if area is not None and len(squares) < self.max_looks and self.tokens >= look_cost(area):
            self.tokens -= look_cost(area)
            self.area_index = len(squares)
            squares.append(area)
        for blob in loose:
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

    def _blobs_matter(self, squares: list[Square], cheapest_within) -> bool:
        """Whether this frame's plan or looks can read its moving blobs: a follow-up look tests its
        boxes against them (``squares``: the follow-up looks planned); an exploratory look is made
        at a blob, or at the box around several, only where the budget pays for it, and every such
        square is at most the square around all that moved (:func:`head_square` grows with its
        box). Where that square's cheapest look cannot be paid for, no blob can change the plan,
        and working them out (their contours, the test of each against the found faces) is left
        out: the same plan. On hamilton about half the plans, between two looks while the budget
        refills (docs/benchmarks.md, issue 14, branch cost14)."""
        if squares:
            return True
        extent = self.motion.extent()
        return extent is not None and self.tokens >= cheapest_within(head_square(extent)[2])

    def _follow_up(self, face: Followed, look_side) -> tuple[Square, int | None]:
        """The square a follow-up look at ``face`` reads, and its model input side (None: the
        usual one): ``follow_side`` face heights at the scale of the look that found it (the input
        rounded to the model's stride of 32); that look's whole side when it is not larger,
        ``follow_side`` is 0, the face's step is not known yet (found once: it is looked for where
        it was) or the last look missed it (its grace look: a face that moved off its step is
        still in the larger square)."""
        centre = face.predicted()
        full = (*centre, face.side)
        if not self.follow_side or face.velocity is None or face.misses:
            return full, None
        usual = look_side(full)
        side = max(MIN_FOLLOW_INPUT, 32 * round(usual * self.follow_side * box_height(face.box) / face.side / 32))
        if side >= usual:
            return full, None
        return (*centre, face.side * side / usual), side

    def _found_by_first_pass(self, face: Followed, found: np.ndarray) -> Followed | None:
        """With ``follow_side``: ``face`` continued by the first pass's box of its size that
        holds where it should be, to be followed on the next frame without a look on this one.
        A face that needed a look to be found is one the first pass finds only now and then (a
        masked face scoring about its threshold): where it misses it again, a follow-up look is
        there at once, not an exploratory look that waits for the budget. None: dropped, as
        without ``follow_side`` (no such box: another face's person accounts for it)."""
        if not self.follow_side or not len(found):
            return None
        px, py = face.predicted()
        holds = (found[:, 0] <= px) & (px <= found[:, 2]) & (found[:, 1] <= py) & (py <= found[:, 3])
        candidates = holds & _like(face, found)
        if not candidates.any():
            return None
        return face.continued(found[np.flatnonzero(candidates)[0]], 0)

    def input_side(self, index: int) -> int | None:
        """Look ``index``'s model input side where it is not the usual one for its square (a
        follow-up look sized to its face)."""
        return self.inputs[index] if index < len(self.inputs) else None

    def _area_square(self, picture: Picture, blobs, found: np.ndarray, squares: list[Square]) -> Square | None:
        """The square around the moving ``blobs`` (those :meth:`_unexplained` leaves) that could
        be part of a face no found face accounts for, when there are several (one alone gets its
        own look) and a face could fill the box around them. Specks and the motion of found faces
        are left out: they would keep the area look coming back (every ``retry_frames``) and
        spend the budget that small faces' looks need."""
        if not self.area_share or self.frame - self.area_empty <= self.retry_frames:
            return None
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

    def look_threshold(self, index: int) -> float:
        """The lowest score look ``index`` (in planned order) reads boxes at: a follow-up look
        reads weaker ones too (``follow_threshold``), to keep the one that continues its face."""
        if self.continue_faces and index < len(self.following):
            return min(self.threshold, self.follow_threshold)
        return self.threshold

    def kept(self, index: int, boxes: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
        """Which of look ``index``'s boxes ([x1, y1, x2, y2, score] rows, source pixels, in
        planned order) are faces: those at the look threshold; in a follow-up look only those
        of its face's size (a box of another size there is the scene, most likely: on the
        tuning split they were all off the face), and the one that continues its face
        (:meth:`continuation`), weak or not; under ``still_threshold`` only on a moving blob
        (:meth:`not_still`; ``keypoints``: the boxes' five points, same pixels)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
        keep = boxes[:, 4] >= self.threshold
        if self.continue_faces and index < len(self.following):
            face = self.following[index]
            keep &= _like(face, boxes)
            row = self.continuation(face, boxes, keypoints)
            if row is not None:
                keep[row] = True
        return keep & self.not_still(boxes, keypoints)

    def continuation(self, face: Followed, boxes: np.ndarray, keypoints: np.ndarray | None = None) -> int | None:
        """The row of ``boxes`` that continues ``face``, of those of its size: the nearest to
        where it should be at the look threshold (found again), else the nearest weaker one
        (``follow_threshold``) within ``follow_reach`` face heights of that place and on a
        moving blob. A masked or tiny face's score flickers about the threshold while it moves;
        a still thing that does (a lattice tower) does not move."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
        height = box_height(face.box)
        px, py = face.predicted()
        distance = np.hypot((boxes[:, 0] + boxes[:, 2]) / 2 - px, (boxes[:, 1] + boxes[:, 3]) / 2 - py) / height
        still_ok = self.not_still(boxes, keypoints)
        like, strong = _like(face, boxes), (boxes[:, 4] >= self.threshold) & still_ok
        weak = (~strong & (boxes[:, 4] >= self.follow_threshold) & (distance <= self.follow_reach)
                & self.on_motion(boxes) & still_ok)
        for candidates in (like & strong, like & weak):
            if candidates.any():
                return int(np.flatnonzero(candidates)[np.argmin(distance[candidates])])
        return None

    def not_still(self, boxes: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
        """Per box: whether a look may keep it as a face: at ``still_threshold`` (what the first
        pass keeps), or touching a moving blob. On the tuning split's widened clips most boxes off
        the face were a still thing of the scene that a look took for a face beside the moving
        photo and the follow-up looks then kept finding where it stood, frame after frame. Touching,
        not its centre on one: a close-up moves as eye- and mouth-sized blobs, its centre between
        them (tuning: 5 close-up frames lost, and 4 of a masked face at 220 px). With
        ``still_moving_share``, such a box's own pixels must have changed too (a blob's box also
        overlaps the still things beside what moves); with ``still_landmarks`` its ``keypoints``
        must be laid out as a face's (:func:`face_layout`; not tested where none are given)."""
        strong = boxes[:, 4] >= self.still_threshold
        moving = self.touches_motion(boxes)
        if self.still_moving_share and not strong.all():
            moving &= self.motion.moving_share(boxes) >= self.still_moving_share
        if self.still_landmarks and keypoints is not None and len(boxes):
            moving &= face_layout(boxes, keypoints)
        return strong | moving

    def touches_motion(self, boxes: np.ndarray) -> np.ndarray:
        """Per box ([x1, y1, x2, y2, ...] rows, source pixels): whether a moving blob of this
        frame overlaps it."""
        return np.array([any(b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3] for b in self.blobs)
                         for box in boxes], bool).reshape(-1)

    def on_motion(self, boxes: np.ndarray) -> np.ndarray:
        """Per box ([x1, y1, x2, y2, ...] rows, source pixels): whether its centre lies on a
        moving blob of this frame."""
        return np.array([_moving(box, self.blobs) for box in boxes], bool).reshape(-1)

    def record(self, looks: list[tuple[Square, np.ndarray]]) -> None:
        """What each look (in planned order) found, [x1, y1, x2, y2, score] rows in source
        pixels (the faces :meth:`kept` kept): faces to follow, squares to leave alone. A followed
        face missed once is looked for once more; one found only weakly, ``WEAK_LOOKS`` times."""
        follows = len(self.following)
        self.follow, found = [], []
        for index, (square, boxes) in enumerate(looks):
            boxes = _scored(np.asarray(boxes, np.float64))
            face = self.following[index] if index < follows else None
            row = None if face is None or not self.continue_faces else self.continuation(face, boxes)
            for k, box in enumerate(boxes):
                strong = box[4] >= self.threshold
                if k == row:
                    self.follow.append(face.continued(box[:4], 0 if strong else face.weak + 1))
                elif strong and face is not None and self.follow_side:
                    # Found beside a followed face: at its scale and with its step (the next
                    # look is sized to it) until its own step is known.
                    found.append(Followed(box[:4].copy(), face.side, velocity=face.velocity))
                elif strong:
                    self.follow.append(Followed(box[:4].copy(), square[2]))
            if face is not None and row is None and face.misses < GRACE_LOOKS:
                self.follow.append(replace(face, misses=face.misses + 1))
        # Faces continued or looked for again first, then those found beside them.
        self.follow = [face for face in self.follow + self.carried + found if face.weak < WEAK_LOOKS]
        if self.follow_side:
            self.follow = _distinct(self.follow)
        if self.area_index is not None and self.area_index < len(looks) and not len(looks[self.area_index][1]):
            self.area_empty = self.frame
        self.empty += [(self.frame, square) for index, (square, boxes) in enumerate(looks) if index >= follows
                       and index != self.area_index and not len(boxes)]


# A face's five keypoints (SCRFD's: eyes, nose, mouth corners) as a look's weak box must lay them
# with still_landmarks. On the tuning split's widened clips the looks' weak boxes on the face read
# the eyes' distance 0.25-0.57 of the box's width, the eye line's rise up to 0.50 of the eyes'
# distance, the nose 0.22-0.97 of the way from the eye line to the mouth's and at most 0.68 eye
# distances to the side of the eyes' midpoint (two boxes off the face: 0.93 and 1.24).
EYE_RATIO = (0.2, 0.7)           # the eyes' distance over the box's width
MAX_TILT = 1.0                   # the eye line's rise over the eyes' distance
MAX_YAW = 0.8                    # the nose's offset from the eyes' midpoint, in eye distances


def face_layout(boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Per box: whether its five keypoints lie as a face's do: the nose below the eye line and
    above the mouth's, the eye line not steep, the nose not far to the side of the eyes'
    midpoint, the eyes' distance a plausible share of the box's width."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
    p = np.asarray(keypoints, np.float64).reshape(-1, 5, 2)
    eyes = np.maximum(np.hypot(*(p[:, 1] - p[:, 0]).T), 1e-6)
    eye_y, mouth_y = (p[:, 0, 1] + p[:, 1, 1]) / 2, (p[:, 3, 1] + p[:, 4, 1]) / 2
    order = (eye_y < p[:, 2, 1]) & (p[:, 2, 1] < mouth_y)
    level = np.abs(p[:, 1, 1] - p[:, 0, 1]) / eyes <= MAX_TILT
    yaw = np.abs(p[:, 2, 0] - (p[:, 0, 0] + p[:, 1, 0]) / 2) / eyes <= MAX_YAW
    ratio = eyes / np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6)
    return order & level & yaw & (ratio >= EYE_RATIO[0]) & (ratio <= EYE_RATIO[1])


def _like(face: Followed, boxes: np.ndarray) -> np.ndarray:
    """Per box: whether it is of the face's height, within 1.5x (as the tracker's gap filling
    links detections, ``TrackerConfig.gap_size_ratio``)."""
    height = box_height(face.box)
    ratio = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0) / height
    return (ratio <= LIKE_SIZE) & (ratio >= 1 / LIKE_SIZE)


def _distinct(faces: list[Followed]) -> list[Followed]:
    """One of each face that several looks found (box IoU >= 0.5), the first given: each gets a
    follow-up look of its own."""
    kept: list[Followed] = []
    for face in faces:
        if not any(box_iou(face.box, other.box) >= 0.5 for other in kept):
            kept.append(face)
    return kept


def _moving(box, blobs) -> bool:
    """Whether the box's centre lies on a moving blob."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in blobs)


def _scored(boxes: np.ndarray) -> np.ndarray:
    """[x1, y1, x2, y2, score] rows; boxes given without a score count as found at full score."""
    boxes = boxes.reshape(len(boxes), -1) if len(boxes) else np.empty((0, 5))
    return boxes if boxes.shape[1] >= 5 else np.hstack([boxes[:, :4], np.ones((len(boxes), 1))])
