"""The motion gate's small look (workers.analytics.motion_gate, ``small_look_side``): where every
live face is large, the detector reads a half-size copy of the frame, finds them as at full size,
and still finds a small newcomer at its next full-size look."""

from __future__ import annotations

import av
import numpy as np
import pytest

from core.analyzer_configs import DetectorConfig
from tests.quietclip import Appearance, make_quiet_clip
from workers.analytics.picture import Picture
from workers.analytics.tracks import box_iou

SIZE = (1280, 720)
FULL_LOOK_FRAMES = 10


class Looks:
    """The real detector on every frame of a clip, with the model input sizes it ran at."""

    def __init__(self, path, config: dict):
        from workers.analytics.detector import FaceDetector

        detector = FaceDetector(DetectorConfig.model_validate(config))
        detector.begin()
        self.inputs: list[tuple[int, int]] = []      # (width, height) of each model run
        run = detector.session.run

        def recorded(names, feed):
            self.inputs.append(next(iter(feed.values())).shape[:1:-1])
            return run(names, feed)

        detector.session = type("Session", (), {"run": staticmethod(recorded)})()
        with av.open(str(path)) as container:
            self.frames = [detector(Picture(frame=frame)).boxes.tolist() for frame in container.decode(video=0)]


def matched(box, boxes) -> bool:
    return any(box_iou(box, other) >= 0.5 for other in boxes)


@pytest.fixture(scope="module")
def walker(tmp_path_factory):
    """A large face (about 110 px at the detector's 640-px input) walking across a noisy scene."""
    path = tmp_path_factory.mktemp("small-look") / "walker.mp4"
    return make_quiet_clip(path, seconds=3, fps=15, size=SIZE, noise=3.0,
                           appearances=[Appearance(0, 3, height=400, walk=True)]).path


def test_a_large_walking_face_is_found_by_small_looks_as_on_every_frame_at_full_size(walker):
    every = Looks(walker, {"gate": {"enabled": False}, "second_look": {"enabled": False}})
    small = Looks(walker, {"second_look": {"enabled": False}})
    assert all(len(boxes) == 1 for boxes in every.frames)
    # The face is on every frame where full-size detection on every frame has it.
    assert all(matched(boxes[0], found) for boxes, found in zip(every.frames, small.frames))
    # Most runs read the half-size copy (320 px long side: the whole frame or crops of it),
    # none of them made again at full size; full size only at the first frames and the
    # periodic full-size looks.
    half = [size for size in small.inputs if max(size) <= 320]
    assert len(half) >= 0.6 * len(small.inputs)
    assert len(small.inputs) - len(half) <= 2 + len(every.frames) // FULL_LOOK_FRAMES + 2


def test_without_small_looks_every_look_reads_the_full_size_copy(walker):
    full = Looks(walker, {"gate": {"small_look_side": 0}, "second_look": {"enabled": False}})
    assert not [size for size in full.inputs if max(size) <= 320]


def test_a_small_newcomer_beside_a_large_face_is_found_by_the_next_full_size_look(tmp_path):
    appears = 1.0
    small = Appearance(appears, 3, height=90, walk=False, at=(0.9, 0.15))
    clip = make_quiet_clip(tmp_path / "newcomer.mp4", seconds=3, fps=15, size=SIZE, noise=3.0,
                           appearances=[Appearance(0, 3, height=400, walk=True), small])
    width = round(90 * 233 / 287)           # yaoming.jpg is 233x287
    x, y = int(0.9 * (SIZE[0] - width)), int(0.15 * (SIZE[1] - 90))
    newcomer = lambda boxes: any(x <= (b[0] + b[2]) / 2 <= x + width and y <= (b[1] + b[3]) / 2 <= y + 90
                                 for b in boxes)
    first = round(appears * 15)
    # The second look is off: it would find the newcomer first, and this is about the gate.
    every = Looks(clip.path, {"gate": {"enabled": False}, "second_look": {"enabled": False}})
    gated = Looks(clip.path, {"gate": {"full_look_frames": FULL_LOOK_FRAMES}, "second_look": {"enabled": False}})
    assert newcomer(every.frames[first])    # full-size detection finds them at once
    assert [max(size) <= 320 for size in gated.inputs[:first]].count(True) >= first // 2   # small looks before
    found = [i for i in range(first, len(gated.frames)) if newcomer(gated.frames[i])]
    # Found within full_look_frames frames (and the gate's tracked looks after them), and kept.
    assert found and found[0] <= first + FULL_LOOK_FRAMES + 5
    assert found == list(range(found[0], len(gated.frames)))
