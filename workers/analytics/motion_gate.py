"""Motion gating: which frames, and which part of a frame, the detector sees.

Most hours of a surveillance camera show an empty, still scene. A running background (the
mean of recent small grey frames) tells where something moves: only there does the detector
run, on a crop of the picture it would have read anyway (the same scale, so a face scores
as it would on the whole frame). Faces the detector found are *live*: on frames where
nothing moves near them they are carried (same box, score and keypoints), so a person who
stands still keeps their box in every frame and the tracker keeps their track; each live
face is looked at again at least every ``recheck_frames`` frames, and dropped when a
look no longer finds it. A frame with no motion and no live face costs a decode and the
motion stage (a fraction of a millisecond on a 320-pixel grey copy); while the scene stays
empty and still, the motion stage reads only one frame in ``idle_stride`` (someone walking in
is then first looked at up to ``idle_stride - 1`` frames after they appear).

Where people walk, what moves is mostly the people already found: while every blob that
stirred since the previous frame is explained by a confirmed face (the blob holds it, or lies
in its person's area, or, while that face walks, beside or below it where its arms and legs
swing: ``body_widths``, ``body_heights``), the detector looks only at small crops around the faces that move or
are due a recheck (the model's input is the crop: a tenth of a whole-frame run), and at the
whole moving region again every ``track_looks + 1`` looks, or at once when a blob nobody
explains stirs (someone new walks in) or when most of the frame changed at once (a scene cut,
the lights: a face inside such a blob explains nothing).

Where every live face is large (a stage, a close-up, someone near the camera), the detector
need not read the frame at its full input size to find them again: a look at a copy half as
large (``small_look_side``, a quarter of the model's work) finds them as well while each is at
least ``small_look_face`` pixels there. A small look that misses a live face it looked at is
made again at full size on the same frame (a face turned away, a scene cut), and the whole moving
region is looked at full size at least every ``full_look_frames`` frames, so that a small face
beside the large ones (someone at the back) is found then.

The first frame of a segment has no background yet: the detector sees all of it, so someone
standing still from the start is found too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from core import defaults
from core.analyzer_configs import MotionGateConfig
from workers.analytics.faces import Faces
from workers.analytics.motion import (LUMA_FORMATS, accounted_for_each, blob_boxes, full_range, in_areas,
                                      luma_plane, person_areas, unexplained)
from workers.analytics.picture import Picture
from workers.analytics.tracks import box_iou

Rect = tuple[float, float, float, float]     # x1, y1, x2, y2 in source pixels


def luma(picture: Picture, long_side: int) -> np.ndarray:
    """A grey copy of the picture, long side ``long_side``: shrunk from the decoded frame's luma
    plane where it has one (no colour conversion), else from the BGR picture. Made once per
    picture and size (shared: do not write into it)."""
    return picture.derived(("luma", long_side), lambda p: _shrunk_luma(p, long_side))


def _shrunk_luma(picture: Picture, long_side: int) -> np.ndarray:
    grey = luma_plane(picture.frame)
    if grey is None:
        grey = cv2.cvtColor(picture.bgr(long_side * 2)[0], cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    scale = min(1.0, long_side / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Halved while at least twice the size asked for: a bilinear shrink to exactly half is the
    # mean of each 2x2 block, as INTER_AREA would make it, yet takes a fraction of INTER_AREA's
    # time (720p to 320x180: 0.18 against 0.39 ms a frame, within one grey level of it).
    while grey.shape[1] >= 2 * size[0] and grey.shape[0] >= 2 * size[1]:
        grey = cv2.resize(grey, (grey.shape[1] // 2, grey.shape[0] // 2), interpolation=cv2.INTER_LINEAR)
    return grey if grey.shape[::-1] == size else cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def thumbnail(picture: Picture, size: tuple[int, int] = (32, 18)) -> np.ndarray:
    """A tiny grey copy (float32, 0-255 full range) of the picture: from the luma plane where
    there is one (limited-range luma spans 16-235: stretched to the full range, so a thumbnail
    is the same whichever way it was made; the frame's ``color_range`` says which range, not
    its pixel format's name alone: :func:`workers.analytics.motion.full_range`), else from the
    BGR picture. Shrunk from the motion stage's grey copy (its default size), not from the
    frame again: shrinking a 720p plane costs more than the rest of a quiet frame's motion
    stage (bench/quiet_hour.py's stage table). Made once per picture and size (the tracker and
    a live camera's detect pace both test scene cuts on it; shared: do not write into it)."""
    return picture.derived(("thumbnail", size), lambda p: _thumbnail(p, size))


def _thumbnail(picture: Picture, size: tuple[int, int]) -> np.ndarray:
    frame = picture.frame
    grey = luma(picture, max(4 * max(size), THUMBNAIL_FROM)).astype(np.float32)
    if frame is not None and frame.format.name in LUMA_FORMATS and not full_range(frame):
        grey = (grey - 16.0) * (255.0 / 219.0)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


# The grey copy the thumbnail is shrunk from: the motion stage's, when configured as by default.
THUMBNAIL_FROM = MotionGateConfig.model_fields["long_side"].default


class Background:
    """Where a frame differs from the running mean of the frames before it."""

    def __init__(self, config: MotionGateConfig):
        self.config = config
        self.mean: np.ndarray | None = None
        self.previous: np.ndarray | None = None
        self.stirred: np.ndarray | None = None     # the last frame's change from the one before
        self.scale = 1.0                           # grey-copy pixels per source pixel

    def moving(self, picture: Picture, elapsed: int = 1) -> list[Rect] | None:
        """Boxes (source pixels) around what moves: what differs from the background (where
        something is) or from the previous frame read (where something was); None when there is
        nothing to compare with yet (the first frame, or a new frame size). ``elapsed``: frames
        since the previous one read; the background follows the scene as fast per frame of video
        as when every frame is read."""
        c = self.config
        grey = cv2.GaussianBlur(luma(picture, c.long_side), (5, 5), 0).astype(np.float32)
        previous, self.previous = self.previous, grey
        if self.mean is None or self.mean.shape != grey.shape or previous is None or previous.shape != grey.shape:
            self.mean = grey.copy()
            return None
        self.stirred = self._changed(grey, previous)
        moved = self._changed(grey, self.mean) | self.stirred
        cv2.accumulateWeighted(grey, self.mean, 1 - (1 - c.background_rate) ** max(1, elapsed))
        self.scale = grey.shape[1] / picture.width
        return self._blobs(moved)

    def stirring(self) -> list[Rect]:
        """Boxes (source pixels) around what changed since the previous frame alone: what moves
        now, without the ghost a passer-by leaves in the background until the mean forgets it."""
        return [] if self.stirred is None else self._blobs(self.stirred)

    def _blobs(self, changed: np.ndarray) -> list[Rect]:
        c, scale = self.config, self.scale
        changed = cv2.dilate(changed.astype(np.uint8), np.ones((3, 3), np.uint8))
        return [(x / scale, y / scale, (x + w) / scale, (y + h) / scale) for x, y, w, h in blob_boxes(changed)
                if w >= c.min_blob_px and h >= c.min_blob_px]

    def _changed(self, grey: np.ndarray, reference: np.ndarray) -> np.ndarray:
        difference = grey - reference
        difference -= cv2.mean(difference)[0]      # lighting that changes the whole frame is not motion
        return np.abs(difference) > self.config.threshold


@dataclass
class LiveFace:
    box: np.ndarray          # (4,) source pixels
    score: float
    keypoints: np.ndarray    # (5, 2)
    checked: int             # the last frame the detector found it on
    misses: int = 0          # looks in a row that did not find it
    hits: int = 1            # looks in a row that found it
    shift: float = 0.0       # how far it moved between the two looks that found it last (face sides)


def _grown(rect: Rect, margin: float) -> Rect:
    return rect[0] - margin, rect[1] - margin, rect[2] + margin, rect[3] + margin


def _union(rects: list[Rect]) -> Rect:
    return (min(r[0] for r in rects), min(r[1] for r in rects), max(r[2] for r in rects), max(r[3] for r in rects))


def _clipped(rect: Rect, picture: Picture) -> Rect:
    return max(0.0, rect[0]), max(0.0, rect[1]), min(float(picture.width), rect[2]), min(float(picture.height), rect[3])


def _at_least(rect: Rect, side: float) -> Rect:
    """``rect`` widened about its centre to at least ``side`` each way."""
    grow_x, grow_y = max(0.0, side - (rect[2] - rect[0])) / 2, max(0.0, side - (rect[3] - rect[1])) / 2
    return rect[0] - grow_x, rect[1] - grow_y, rect[2] + grow_x, rect[3] + grow_y


def _side(box) -> float:
    return float(max(box[2] - box[0], box[3] - box[1]))


def _merged(rects: list[Rect]) -> list[Rect]:
    """Overlapping rectangles joined into one (two people side by side: one crop, one run)."""
    rects = list(rects)
    i = 0
    while i < len(rects):
        j = next((j for j in range(i + 1, len(rects)) if _overlaps(rects[i], [rects[j]])), None)
        if j is None:
            i += 1
        else:
            rects[i] = _union([rects[i], rects.pop(j)])
            i = 0
    return rects


def _moved(before, after) -> float:
    """How far a face moved from ``before`` to ``after``, in face sides: its centre's shift, or
    the change of its side (someone walking towards the camera grows more than they shift)."""
    dx = (after[0] + after[2] - before[0] - before[2]) / 2
    dy = (after[1] + after[3] - before[1] - before[3]) / 2
    return max(math.hypot(dx, dy), abs(_side(after) - _side(before))) / max(1.0, _side(before))


def _centre_inside(box, rects: list[Rect]) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(r[0] <= cx <= r[2] and r[1] <= cy <= r[3] for r in rects)


def _overlaps(box, rects: list[Rect]) -> bool:
    return any(box[0] < r[2] and r[0] < box[2] and box[1] < r[3] and r[1] < box[3] for r in rects)


# A face found this many looks in a row is carried where nothing moves; a newer one (a false
# detection, most likely, if the next look does not find it) is looked at again at once.
CONFIRMED = 2
# A face whose centre moved this share of its side since the look before walks (a still face's
# box jitters by a few hundredths of its side on sensor noise).
WALKING = 0.05


@dataclass(frozen=True)
class SmallLook:
    """A look at a smaller copy of the frame: the model's input ``long_side`` pixels on its long
    side instead of the detector's own. ``expected``: the live faces it looks at (source boxes);
    where it misses one of them, the detector looks again at full size."""
    long_side: int
    expected: np.ndarray

    def found_all(self, boxes: np.ndarray) -> bool:
        """Whether every expected face is among ``boxes`` (the gate's match: IoU over 0.3)."""
        return all(any(box_iou(face, box) > 0.3 for box in boxes) for face in self.expected)


# detect(picture, regions, small) -> the faces found in ``regions`` (None: the whole frame),
# first at the small look's size where ``small`` is given
Detect = Callable[[Picture, list[Rect] | None, SmallLook | None], Faces]


class MotionGate:
    """Per segment: decides, frame by frame, where the detector looks, and carries live faces."""

    def __init__(self, config: MotionGateConfig, input_long_side: int = defaults.DETECTOR_INPUT):
        self.config = config
        self.input_long_side = input_long_side     # the detector's full-size input
        self.background = Background(config)
        self.live: list[LiveFace] = []
        self.frame = -1
        self.tracked_in_row = 0            # looks in a row only around confirmed faces (or none at all)
        self.last_look = -1                # the frame of the detector's last look
        self.full_size_look = -1           # ... and of its last full-size look at the whole moving region
        self.found_sides: list[tuple[int, float]] = []   # (frame, side) of the faces looks found lately
        # Nothing live, and the motion stage saw nothing the last time it looked (at frame
        # ``measured_frame``): it then looks only every ``idle_stride`` frames.
        self.idle = False
        self.measured_frame = -1
        # frames by what the detector saw; tracked: crops around confirmed faces only; carried:
        # not its turn (the detect pace, live cameras)
        self.looks = {"full": 0, "region": 0, "tracked": 0, "none": 0, "carried": 0}

    def __call__(self, picture: Picture, detect: Detect) -> Faces:
        self.frame += 1
        c = self.config
        if self.idle and self.frame - self.measured_frame < c.idle_stride:
            return self._unlooked()        # an empty, still scene: its next frame will tell
        blobs = self.background.moving(picture, self.frame - self.measured_frame)
        self.measured_frame = self.frame
        self.idle = False
        if blobs is None:
            self.full_size_look = self.frame
            return self._looked(detect(picture, None, None), None, [])
        due = [face for face in self.live if self.frame - face.checked >= c.recheck_frames or face.hits < CONFIRMED]
        if not blobs and not due:
            self.idle = not self.live
            return self._unlooked()
        tracked = self._tracked(due, picture)
        if tracked is not None:
            self.tracked_in_row += 1
            if not tracked:                # nothing stirs, no face is due: a ghost, at most
                return self._unlooked()
            least = c.track_min_side * max(picture.width, picture.height)
            crops = _merged([_clipped(_at_least(_grown(tuple(f.box), c.track_margin * _side(f.box)), least), picture)
                             for f in tracked])
            # Only live faces are taken from a crop (those tracked, and any other a crop holds):
            # anything else there sits near its edge, where the model lacks the context it has
            # on the whole frame (false faces).
            zones = [_grown(tuple(f.box), c.track_margin / 2 * _side(f.box)) for f in self.live]
            found = detect(picture, crops, self._small_look(picture, crops))
            return self._looked(found.select([_centre_inside(box, zones) for box in found.boxes]), crops, blobs,
                                "tracked")
        self.tracked_in_row = 0
        margin = c.margin * max(picture.width, picture.height)
        region = _clipped(_union([_grown(b, margin) for b in blobs] + [_grown(tuple(f.box), margin) for f in due]),
                          picture)
        regions = None if self._most_of(region, picture) else [region]
        small = None if self.frame - self.full_size_look >= c.full_look_frames else self._small_look(picture, regions)
        if small is None:
            self.full_size_look = self.frame
        return self._looked(detect(picture, regions, small), regions, blobs)

    def _small_look(self, picture: Picture, regions: list[Rect] | None) -> SmallLook | None:
        """A look at the small copy of the frame, where every live face is confirmed and large
        enough there (``small_look_face``) to be found as at full size; else None (full size)."""
        c = self.config
        if not c.small_look_side or c.small_look_side >= self.input_long_side or not self.live:
            return None
        if any(face.hits < CONFIRMED for face in self.live):
            return None
        # Faces found lately count too: a small one lost for a few frames (turned away) comes back.
        sides = [_side(face.box) for face in self.live] + [side for _, side in self.found_sides]
        if min(sides) * c.small_look_side / max(picture.width, picture.height) < c.small_look_face:
            return None
        expected = [face.box for face in self.live if regions is None or _centre_inside(face.box, regions)]
        return SmallLook(c.small_look_side, np.array(expected, np.float64).reshape(-1, 4))

    def _tracked(self, due: list[LiveFace], picture: Picture) -> list[LiveFace] | None:
        """The faces that a look at crops around them suffices for, or None where the whole
        moving region must be looked at. Crops suffice where every live face is confirmed, every
        blob that moved since the previous frame (``Background.stirring``) is explained by one (the second
        look's test: the blob holds the face, or lies in its person's area; or the face walks and
        the blob lies in its body's wider reach) without covering
        most of the frame (``full_frame_share``: a scene cut, the lights), and the last look at
        the whole moving region was at most ``track_looks`` looks ago; they go around the
        faces that move (explain a blob) or are due a recheck, and the others are carried. Someone
        new walks in as a blob nobody explains; someone beside a tracked person, or standing
        where the background still differs from the scene (what a passer-by leaves behind until
        the mean forgets it), is found by the next look at the whole region."""
        if self.tracked_in_row >= self.config.track_looks or any(face.hits < CONFIRMED for face in self.live):
            return None
        stirring = self.background.stirring()      # its blobs only once the cheap tests have passed
        boxes = np.stack([face.box for face in self.live]) if self.live else np.empty((0, 4))
        if any(self._most_of(b, picture) for b in stirring):
            return None
        left = unexplained(stirring, boxes)
        walkers: list[LiveFace] = []
        if left and self.config.body_widths:
            # A walking person's arms and legs stir beyond the person area, beside and below
            # their face: there, they are theirs while that face walks. Beside a still face,
            # what stirs is someone else. Walking is the face's own shift between the last two
            # looks that found it, the latest look among them (what stirs on a face, a talking
            # mouth, does not make it walk; a face carried since has not been seen to walk).
            walkers = [face for face in self.live if face.shift >= WALKING and face.checked == self.last_look]
            if walkers:
                reach = person_areas(np.stack([face.box for face in walkers]), self.config.body_widths,
                                     self.config.body_heights)
                left = [b for b in left if not in_areas(b, reach)]
        if left:
            return None
        # Looked at: the faces due, those a blob holds or stirs in their person's area, and the
        # walkers (their shift measured again, so that one who stops stops counting as walking).
        looked = {id(face) for face in due + walkers}
        return [face for face in self.live if id(face) in looked or accounted_for_each(stirring, face.box).any()]

    def _unlooked(self) -> Faces:
        """A frame the detector need not see: no face stirred, so none walks now."""
        self.looks["none"] += 1
        for face in self.live:
            face.shift = 0.0
        return self._faces(self.live)

    def _most_of(self, rect: Rect, picture: Picture) -> bool:
        """Whether ``rect`` covers ``full_frame_share`` of the frame or more."""
        area = (rect[2] - rect[0]) * (rect[3] - rect[1])
        return area >= self.config.full_frame_share * picture.width * picture.height

    def carry(self) -> Faces:
        """A frame the detector's pace skips: the live faces as they are, the background left
        alone (the next look compares with the frame before the skipped ones)."""
        self.frame += 1
        self.looks["carried"] += 1
        faces = self._faces(self.live)
        faces.carried = True
        return faces

    def _looked(self, found: Faces, regions: list[Rect] | None, blobs: list[Rect], kind: str = "") -> Faces:
        """Live faces after a look at ``regions`` (None: the whole frame) found ``found``."""
        self.looks[kind or ("full" if regions is None else "region")] += 1
        self.last_look = self.frame
        self.found_sides = [(frame, side) for frame, side in self.found_sides
                            if self.frame - frame < self.config.full_look_frames]
        self.found_sides += [(self.frame, _side(box)) for box in found.boxes]
        live: list[LiveFace] = []
        hits = [1] * len(found)            # per detection: looks in a row that found its face
        shifts = [0.0] * len(found)
        for face in self.live:
            if regions is not None and not _centre_inside(face.box, regions):
                if not any(box_iou(face.box, box) > 0.3 for box in found.boxes):
                    live.append(face)      # not looked at: carried
                continue
            overlaps = [box_iou(face.box, box) for box in found.boxes]
            best = int(np.argmax(overlaps)) if overlaps else -1
            if best >= 0 and overlaps[best] > 0.3:
                hits[best] = max(hits[best], face.hits + 1)      # found again: the detection replaces it
                shifts[best] = _moved(face.box, found.boxes[best])
            elif face.hits >= CONFIRMED and face.misses < self.config.misses and not _overlaps(face.box, blobs):
                face.misses += 1           # still, yet not found: the score flickered; carry it
                live.append(face)
        keypoints = found.keypoints if found.keypoints is not None else np.zeros((len(found), 5, 2), np.float32)
        live += [LiveFace(found.boxes[i].copy(), float(found.scores[i]), keypoints[i].copy(), self.frame, hits=hits[i],
                          shift=shifts[i]) for i in range(len(found))]
        self.live = live
        return self._faces(live)

    @staticmethod
    def _faces(live: list[LiveFace]) -> Faces:
        if not live:
            return Faces.empty()
        return Faces(boxes=np.stack([f.box for f in live]).astype(np.float32),
                     scores=np.array([f.score for f in live], np.float32),
                     keypoints=np.stack([f.keypoints for f in live]).astype(np.float32))


def region_on_grid(region: Rect, scale: float, size: tuple[int, int], step: int = 32) -> tuple[int, int, int, int]:
    """A region (source pixels) as a crop of the detector's copy of the frame (``size``, at
    ``scale`` of the source), widened to multiples of ``step`` pixels: the model's stride, and
    few distinct input sizes (each has its own anchors and buffers)."""
    width, height = size
    x1, y1 = math.floor(region[0] * scale), math.floor(region[1] * scale)
    x2, y2 = math.ceil(region[2] * scale), math.ceil(region[3] * scale)
    w = min(width, math.ceil(max(1, x2 - x1) / step) * step)
    h = min(height, math.ceil(max(1, y2 - y1) / step) * step)
    x1 = min(max(0, (x1 + x2 - w) // 2), width - w)
    y1 = min(max(0, (y1 + y2 - h) // 2), height - h)
    return x1, y1, x1 + w, y1 + h
