"""Face detection with SCRFD (insightface's model, our own input and output handling), as the first
analyzer of the chain."""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from core.analyzer_configs import DetectorConfig
from workers import models
from workers.analytics import scrfd
from workers.analytics.confirm import Confirmer, vouch
from workers.analytics.faces import Faces
from workers.analytics.motion import region_picture
from workers.analytics.detect_pace import DetectPace
from workers.analytics.motion_gate import MotionGate, SmallLook, region_on_grid
from workers.analytics.picture import Picture
from workers.analytics.registry import Analyzer, register
from workers.analytics.second_look import SecondLook


@register
class FaceDetector(Analyzer):
    name: ClassVar[str] = "detect"
    Config: ClassVar[type[BaseModel]] = DetectorConfig

    def __init__(self, config: DetectorConfig):
        self.config = config
        # The session alone: the input and output handling is ours (scrfd.py, checked against
        # insightface's own SCRFD in tests/test_detector.py), and loading the model through
        # insightface's model_zoo imported it and onnx, 0.7 s of each farm's start.
        self.session = models.session(models.model_path(config.model_file, config.model_dir), config.threads)
        self.providers = self.session.get_providers()
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.layout = scrfd.Layout.of_outputs(len(self.output_names))
        self._inputs: dict[tuple[int, int], tuple[scrfd.InputBuffer, list[np.ndarray]]] = {}
        self._geometry: dict[tuple[int, int, int], tuple[tuple[int, int], tuple[int, int]]] = {}
        # The second pass needs consecutive frames of one video: it is armed by begin() (the
        # segment pipeline), never for unrelated stills (enrolment photos, the eval's photos).
        self.second_look: SecondLook | None = None
        self.gate: MotionGate | None = None
        # A live camera's detect pace (armed by begin() from the segment's state), and the last
        # look's faces, carried on the frames the pace skips when there is no gate to carry them.
        self.pace: DetectPace | None = None
        self.last: Faces = Faces.empty()
        self.frame = -1          # the segment's frames the detector was asked about (its pace's turns)
        self.model_runs = 0      # inference calls, for the benchmarks and tests
        self.small_looks = self.small_misses = 0   # small looks, and those made again at full size

    @functools.cached_property
    def confirmer(self) -> Confirmer | None:
        """The second detector, loaded on the first look that may need it (enrolment and the
        photo embedder, which never look twice, never load it)."""
        c = self.config.second_look
        return (Confirmer(c.confirm, c.confirm_threshold, c.confirm_input, self.config.threads)
                if c.confirm != "none" else None)

    def begin(self, state=None) -> None:
        """A new segment: forget the previous frame (motion starts on the second frame)."""
        c = self.config.second_look
        self.second_look = SecondLook(c) if c.enabled and c.max_looks else None
        self.gate = MotionGate(self.config.gate, self.config.input_long_side) if self.config.gate.enabled else None
        self.pace = None if state is None else DetectPace.of(state.fps, state.detect_fps)
        self.last = Faces.empty()
        self.frame = -1

    def input_size(self, width: int, height: int, long_side: int | None = None) -> tuple[int, int]:
        """Keep the frame's aspect ratio, rounded up to the model's stride of 32: a 16:9 frame
        costs 640x384 instead of a letterboxed 640x640 (about a third less work)."""
        long_side = long_side or self.config.input_long_side
        scale = long_side / max(width, height)
        w, h = (math.ceil(width * scale / 32) * 32, math.ceil(height * scale / 32) * 32)
        return max(w, 32), max(h, 32)

    def fitted_size(self, width: int, height: int, long_side: int | None = None) -> tuple[int, int]:
        """The picture's size inside the model input: as large as fits, aspect kept (small
        pictures are scaled up, as insightface's own detect does)."""
        input_w, input_h = self.input_size(width, height, long_side)
        scale = min(input_w / width, input_h / height)
        return min(input_w, max(1, round(width * scale))), min(input_h, max(1, round(height * scale)))

    def __call__(self, image: Picture | np.ndarray, faces: Faces | None = None) -> Faces:
        picture = Picture.of(image)
        if self.pace is not None and not self.pace.due(picture):
            return self.gate.carry() if self.gate is not None else self._carried()
        self.frame += 1
        if self.gate is not None:
            return self.gate(picture, self._look)
        self.last = self._look(picture)
        return self.last

    def _carried(self) -> Faces:
        """The last look's faces again, as a new record (later analyzers write into it)."""
        last = self.last
        return Faces(boxes=last.boxes.copy(), scores=last.scores.copy(),
                     keypoints=None if last.keypoints is None else last.keypoints.copy(), carried=True)

    def _look(self, picture: Picture, regions=None, small: SmallLook | None = None) -> Faces:
        """The faces in ``regions`` (source pixels; None: the whole frame), second look included;
        ``small``: first at the small look's size, again at full size where it misses a face."""
        boxes, keypoints = self._first_pass(picture, regions, small)
        if self.second_look is not None:
            boxes, keypoints = self._second_pass(picture, boxes, keypoints)
        if not len(boxes):
            return Faces.empty()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, picture.width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, picture.height)
        return Faces(boxes=boxes[:, :4], scores=boxes[:, 4], keypoints=keypoints.astype(np.float32))

    def _first_pass(self, picture: Picture, regions, small: SmallLook | None) -> tuple[np.ndarray, np.ndarray]:
        if small is not None:
            self.small_looks += 1
            boxes, keypoints = self._first_pass_at(picture, regions, small.long_side)
            if small.found_all(boxes[:, :4]):
                return boxes, keypoints
            self.small_misses += 1
        return self._first_pass_at(picture, regions, self.config.input_long_side)

    def _first_pass_at(self, picture: Picture, regions, long_side: int) -> tuple[np.ndarray, np.ndarray]:
        if regions is None:
            return self._detect(picture, long_side)
        return self._detect_regions(picture, regions, long_side)

    def _detect(self, picture: Picture, long_side: int | None = None, threshold: float | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes [x1, y1, x2, y2, score] and keypoints in the picture's pixels, best first."""
        # The model sees at most input_long_side pixels: ask the picture for a copy of that size
        # (one fused scale + colour conversion) instead of converting the full frame.
        input_size, size = self._sizes_for(picture.width, picture.height, long_side or self.config.input_long_side)
        buffer, centres = self._input_for(*input_size)
        outputs = self.session.run(self.output_names, {self.input_name: buffer.fill(picture.bgr_at(size))})
        self.model_runs += 1
        boxes, keypoints = scrfd.decode(outputs, centres, self.layout,
                                        self.config.threshold if threshold is None else threshold, scrfd.NMS_THRESHOLD)
        scale = size[1] / picture.height
        boxes[:, :4] /= scale
        return boxes, keypoints / scale

    def _detect_regions(self, picture: Picture, regions, long_side: int) -> tuple[np.ndarray, np.ndarray]:
        """``_detect`` on crops of the copy of the frame a whole-frame pass at ``long_side``
        reads: the same pixels at the same scale, so a face there scores as it would on the whole
        frame; each crop is the model's input at its own size (a small crop costs a small run)."""
        _, size = self._sizes_for(picture.width, picture.height, long_side)
        scale = size[1] / picture.height
        found_boxes, found_points = [], []
        for region in regions:
            x1, y1, x2, y2 = region_on_grid(region, scale, size)
            crop = picture.bgr_at(size)[y1:y2, x1:x2]
            boxes, keypoints = self._detect(Picture(bgr=crop), max(x2 - x1, y2 - y1))
            boxes[:, :4] = (boxes[:, :4] + [x1, y1, x1, y1]) / scale
            found_boxes.append(boxes)
            found_points.append((keypoints + [x1, y1]) / scale)
        return self._best_of(found_boxes, found_points)

    def _second_pass(self, picture: Picture, boxes: np.ndarray, keypoints: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Look again where the plan says (:class:`SecondLook`) and add what is found."""
        found_boxes, found_points, looks = [boxes], [keypoints], []
        input_size, fitted = self._sizes_for(picture.width, picture.height, self.config.input_long_side)
        first_area = float(input_size[0] * input_size[1])
        c = self.config.second_look

        def cost(input_side: int) -> float:          # a look's detector time, in first-pass runs
            return input_side ** 2 / first_area

        plan = self.second_look.plan(picture, boxes[:, :4], lambda square: cost(self._look_side(square)),
                                     fitted, cost(self._smallest_look_side(math.inf)), self._look_side,
                                     frame=self.frame,
                                     cheapest_within=lambda side: cost(self._smallest_look_side(side)))
        for index, square in enumerate(plan):
            side = self.second_look.input_side(index) or self._look_side(square)
            region, scale, x0, y0 = region_picture(picture, square, side)
            threshold = self.second_look.look_threshold(index)
            if self.confirmer is not None:     # weaker boxes too, for the second detector to vouch for
                threshold = min(threshold, c.confirm_floor)
            more, points = self._detect(Picture(bgr=region), side, threshold)
            in_region = more.copy()
            more[:, :4] = more[:, :4] / scale + [x0, y0, x0, y0]
            points = points / scale + [x0, y0]
            confirmed = self._confirmed(region, in_region, self.second_look.kept(index, more, points),
                                        self.second_look.on_motion(more))
            more[confirmed, 4] = in_region[confirmed, 4]
            keep = self.second_look.kept(index, more, points) | confirmed
            keep &= self._vouched_if_weak(region, in_region, more, keep & ~confirmed)
            more, points = more[keep], points[keep]
            looks.append((square, more))
            if len(more):
                found_boxes.append(more)
                found_points.append(points)
        self.second_look.record(looks)
        return self._best_of(found_boxes, found_points)

    def _confirmed(self, region: np.ndarray, boxes: np.ndarray, kept: np.ndarray, moving: np.ndarray) -> np.ndarray:
        """Which of a look's SCRFD ``boxes`` (region pixels) the second detector vouches for, where
        the look kept none (a look that found its face costs no second run) and only on a moving
        blob (as a followed face's weak find: on the tuning split the two detectors agreed on a
        still 10 px thing in the scene); a vouched box takes the second detector's score
        (``boxes`` is changed in place)."""
        none = np.zeros(len(boxes), bool)
        if self.confirmer is None or kept.any() or not moving.any():
            return none
        vouched, scores = vouch(boxes, self.confirmer.boxes(region))
        vouched &= moving
        boxes[vouched, 4] = scores[vouched]
        return vouched

    def _vouched_if_weak(self, region: np.ndarray, in_region: np.ndarray, boxes: np.ndarray,
                         kept: np.ndarray) -> np.ndarray:
        """With ``still_confirm``: per box, False where a kept box scores under ``still_threshold``
        and the second detector finds no face overlapping it in the look's ``region``
        (``in_region``: the boxes in its pixels; one run a look, only where there is such a box)."""
        ok = np.ones(len(boxes), bool)
        c = self.config.second_look
        doubtful = kept & (boxes[:, 4] < c.still_threshold)
        if not c.still_confirm or self.confirmer is None or not doubtful.any():
            return ok
        vouched, _ = vouch(in_region[doubtful], self.confirmer.boxes(region))
        ok[np.flatnonzero(doubtful)[~vouched]] = False
        return ok

    def _best_of(self, found_boxes: list[np.ndarray], found_points: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Several runs' boxes as one, best first, overlapping ones suppressed (NMS)."""
        if not found_boxes:                 # no region given: nothing looked at, nothing found
            return np.empty((0, 5), np.float32), np.empty((0, 5, 2), np.float32)
        if len(found_boxes) == 1:
            return found_boxes[0], found_points[0]
        boxes, keypoints = np.concatenate(found_boxes), np.concatenate(found_points)
        order = np.argsort(-boxes[:, 4], kind="stable")
        keep = order[scrfd.nms(boxes[order], scrfd.NMS_THRESHOLD)]
        return boxes[keep], keypoints[keep]

    def _look_inputs(self) -> tuple[tuple[float, int], ...]:
        """A second look's model input side by its square's side: (the smallest square side it
        is for, the input side), smallest first. Small regions enlarged, large ones (a close-up,
        as large as the first pass's input) reduced. The one rule :meth:`_look_side` and
        :meth:`_smallest_look_side` both read (the plan's cheapest look within a side)."""
        c = self.config.second_look
        return (-math.inf, c.region_input), (self.config.input_long_side, c.large_region_input)

    def _look_side(self, square) -> int:
        """A second look's input side (:meth:`_look_inputs`)."""
        return [input_side for start, input_side in self._look_inputs() if square[2] >= start][-1]

    def _smallest_look_side(self, side: float) -> int:
        """The smallest input side a look at a square of at most ``side`` source pixels has
        (:meth:`_look_inputs`; whichever the rule, a smaller square's input may be smaller)."""
        return min(input_side for start, input_side in self._look_inputs() if start <= side)

    def _sizes_for(self, width: int, height: int, long_side: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """(model input size, fitted picture size) of a frame size: worked out once per size,
        not once per frame."""
        key = (width, height, long_side)
        if key not in self._geometry:
            self._geometry[key] = (self.input_size(width, height, long_side),
                                   self.fitted_size(width, height, long_side))
        return self._geometry[key]

    def _input_for(self, width: int, height: int) -> tuple[scrfd.InputBuffer, list[np.ndarray]]:
        if (width, height) not in self._inputs:
            if len(self._inputs) >= 32:     # motion-gated regions come in many sizes: keep a few
                self._inputs.clear()
            self._inputs[(width, height)] = (scrfd.InputBuffer(width, height),
                                             scrfd.anchor_centres(width, height, self.layout))
        return self._inputs[(width, height)]
