"""What the second look's plan reads of motion (issue 14: the accuracy changes' cost): a frame's
moving blobs only where a look could read them, its grey copy only where a frame is compared with
it; the plans the same as reading both on every frame."""

from __future__ import annotations

import math

import numpy as np

from core.analyzer_configs import DetectorConfig
from tests.clipmaker import background
from workers.analytics.detector import FaceDetector
from workers.analytics.motion import MotionMap, blob_boxes, DILATE_5
from workers.analytics.picture import Picture
from workers.analytics.second_look import SecondLook, SecondLookConfig

import cv2

LARGE_FROM = 640            # the detector's input side: a square this large is read at its cheaper input
USUAL, LARGE = 0.9, 0.2     # a look's cost in first-pass runs, as the detector's 480 and 224 px inputs


def look_cost(square) -> float:
    return USUAL if square[2] < LARGE_FROM else LARGE


def cheapest_within(side: float) -> float:
    return LARGE if side >= LARGE_FROM else USUAL


def planned(frames: list[np.ndarray], config: SecondLookConfig, within) -> tuple[list, dict[str, int]]:
    """Each frame's plan (no look finds anything), and the blobs and grey copies worked out."""
    look, made = SecondLook(config), {"blobs": 0, "grey": 0}
    blobs, grey = look.motion.blobs, look.motion._grey
    look.motion.blobs = lambda: made.__setitem__("blobs", made["blobs"] + 1) or blobs()
    look.motion._grey = lambda *a: made.__setitem__("grey", made["grey"] + 1) or grey(*a)
    plans = []
    for frame in frames:
        squares = look.plan(Picture(bgr=frame), np.empty((0, 4)), look_cost, cheapest_look=LARGE,
                            cheapest_within=within)
        look.record([(square, np.empty((0, 4))) for square in squares])
        plans.append(squares)
    return plans, made


def moving_square(size: tuple[int, int], count: int, wide_from: int | None = None) -> list[np.ndarray]:
    """A 40x60 square wandering over a textured scene, from ``wide_from`` on with a band as wide as
    most of the frame moving too (a square around it is read at the cheaper input)."""
    scene, frames = background(*size), []
    for index in range(count):
        frame = scene.copy()
        x = 40 + (7 * index) % (size[0] - 100)
        frame[100:160, x:x + 40] = 255
        if wide_from is not None and index >= wide_from:
            frame[size[1] - 40 - index % 2 * 8:size[1] - 20, 20:size[0] - 20] = 0
        frames.append(frame)
    return frames


def test_blobs_are_worked_out_only_where_a_look_could_be_paid_for_and_the_plans_are_the_same():
    """Between two looks the budget refills: with less than a usual look's cost, only a square
    as large as the detector's input could be looked at (its cheaper input), and where all that
    moved fits in a smaller one, no blob can change the plan."""
    frames = moving_square((640, 360), 60, wide_from=45)
    config = SecondLookConfig(budget=0.05, burst=1.0, retry_frames=0)
    every, every_made = planned(frames, config, None)
    lazy, lazy_made = planned(frames, config, cheapest_within)
    assert lazy == every
    assert sum(square[2] < LARGE_FROM for plan in every for square in plan) >= 2          # usual looks
    assert any(square[2] >= LARGE_FROM for plan in every[45:] for square in plan)         # a cheap large one
    assert lazy_made["blobs"] < every_made["blobs"] - 10


def test_a_frame_is_made_grey_only_where_it_is_compared_and_the_plans_are_the_same():
    """A frame no larger than the detector's input: no square there is read at the cheaper input,
    so while the budget cannot pay for a usual look no frame is compared, and a frame kept for the
    next to compare with costs no grey copy."""
    frames = moving_square((480, 270), 60)
    config = SecondLookConfig(budget=0.05, burst=1.0, retry_frames=0)
    every, every_made = planned(frames, config, None)
    lazy, lazy_made = planned(frames, config, cheapest_within)
    assert lazy == every and sum(map(len, every)) >= 2
    assert lazy_made["grey"] < every_made["grey"] - 20
    assert lazy_made["grey"] <= 3 * sum(map(len, lazy))      # about the frames looked at and the one before


def test_the_extent_holds_every_blob():
    motion, rng = MotionMap(), np.random.default_rng(0)
    motion.scale = 0.4
    for _ in range(300):
        moved = np.zeros((144, 256), np.uint8)
        for _ in range(rng.integers(0, 5)):
            x, y = rng.integers(0, 256), rng.integers(0, 144)
            moved[y:y + rng.integers(1, 30), x:x + rng.integers(1, 30)] = 1
        moved[rng.random(moved.shape) < 0.001 * rng.integers(0, 2)] = 1
        motion.moved = moved
        extent, blobs = motion.extent(), motion.blobs()
        if not moved.any():
            assert extent is None and blobs == []
            continue
        rows, columns = np.nonzero(cv2.dilate(moved, DILATE_5))          # what the blobs are grown from
        assert np.allclose(extent, np.array([columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]) / 0.4)
        assert all(extent[0] <= b[0] and extent[1] <= b[1] and b[2] <= extent[2] and b[3] <= extent[3] for b in blobs)
        assert len(blob_boxes(cv2.dilate(moved, DILATE_5))) >= len(blobs)


def test_the_grey_copy_spans_what_covered_says():
    for size, base in (((640, 360), (640, 384)), ((480, 270), (640, 360)), ((1280, 720), None), ((250, 333), None)):
        picture = Picture(bgr=np.zeros((size[1], size[0], 3), np.uint8))
        motion = MotionMap()
        grey, scale = motion.grey(picture, base)
        x1, y1, x2, y2 = motion.covered(picture, base)
        assert (x1, y1) == (0, 0) and (x2, y2) == (grey.shape[1] / scale, grey.shape[0] / scale)
        assert x2 >= size[0] - 1 / scale and y2 >= size[1] - 1 / scale


def moving_face(size: tuple[int, int], count: int) -> list[np.ndarray]:
    """A 40x60 textured patch (its inside changes as it moves, as a face's does) wandering over a
    textured scene."""
    scene, frames = background(*size), []
    patch = np.random.default_rng(1).integers(0, 256, (60, 40, 3), np.uint8)
    for index in range(count):
        frame = scene.copy()
        x = 40 + (7 * index) % (size[0] - 100)
        frame[100:160, x:x + 40] = patch
        frames.append(frame)
    return frames


def followed(frames: list[np.ndarray], config: SecondLookConfig, within) -> tuple[list, dict[str, int]]:
    """Each frame's plan and what its looks keep, a look finding the moving square as a face
    (weakly on every third frame, not at all for a while every 24 frames) and a still thing of
    the scene at 0.4: the follow-up looks, ``kept`` and ``continuation`` read the frame's blobs."""
    look, made = SecondLook(config), {"blobs": 0}
    blobs = look.motion.blobs
    look.motion.blobs = lambda: made.__setitem__("blobs", made["blobs"] + 1) or blobs()
    outputs = []
    for index, frame in enumerate(frames):
        x = 40 + (7 * index) % (frame.shape[1] - 100)
        seen = [[x, 100, x + 40, 160, 0.25 if index % 3 == 0 else 0.6]] if index % 24 < 14 else []
        squares = look.plan(Picture(bgr=frame), np.empty((0, 4)), look_cost, cheapest_look=LARGE,
                            cheapest_within=within)
        looks = []
        for number, square in enumerate(squares):
            x1, y1, x2, y2 = square[0] - square[2] / 2, square[1] - square[2] / 2, square[0] + square[2] / 2, \
                square[1] + square[2] / 2
            boxes = np.array([box for box in seen + [[300, 250, 340, 300, 0.4]]       # the boxes it overlaps
                              if box[0] < x2 and x1 < box[2] and box[1] < y2 and y1 < box[3]]).reshape(-1, 5)
            keep = look.kept(number, boxes)
            looks.append((square, boxes[keep]))
            outputs.append((index, square, look.input_side(number), look.look_threshold(number),
                            boxes[keep, 4].tolist(), boxes[~keep, 4].tolist(), look.on_motion(boxes).tolist()))
        look.record(looks)
        outputs.append((index, [(face.box.tolist(), face.misses, face.weak) for face in look.follow]))
    return outputs, made


def test_a_found_face_is_followed_the_same_where_blobs_are_left_out():
    """A look finds the moving square; follow-up looks follow it (its weak finds taken only on
    motion: ``continuation``), lose it and look for it again: every look, its input, threshold
    and kept boxes, and the faces followed are the same as with blobs worked out on every frame."""
    frames = moving_face((640, 360), 96)
    config = SecondLookConfig(budget=0.05, burst=1.0, retry_frames=0)
    every, every_made = followed(frames, config, None)
    lazy, lazy_made = followed(frames, config, cheapest_within)
    assert lazy == every
    follow_ups = [out for out in every if len(out) == 7 and out[3] < config.threshold]     # their lower threshold
    assert len(follow_ups) >= 20
    assert sum(0.25 in out[4] for out in follow_ups) >= 5              # weak finds continuing the face
    assert any(0.4 in out[5] for out in every if len(out) == 7)         # the still thing left out
    assert lazy_made["blobs"] < every_made["blobs"] - 10


def test_the_cheapest_look_within_a_side_is_read_from_the_rule_that_sizes_each_look():
    """The plan's cheapest look at a square of at most a side (the detector's
    ``cheapest_within``) is the smallest input :meth:`FaceDetector._look_side` gives any square
    no larger: one rule, so the plan's skipping cannot drift from the looks it skips."""
    for second_look in ({}, {"region_input": 192, "large_region_input": 320}):
        detector = object.__new__(FaceDetector)          # the rule only: no model loaded
        detector.config = DetectorConfig(input_long_side=640, second_look=second_look)
        for side in (1, 100, 639, 640, 641, 1500, math.inf):
            smallest = min(detector._look_side((0, 0, s)) for s in range(1, int(min(side, 2000)) + 1))
            assert detector._smallest_look_side(side) == smallest
