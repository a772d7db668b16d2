"""Face recognition with ArcFace (w600k MobileFaceNet), per track.

A track is embedded on a few good frames (aligned on its 5 keypoints), the embeddings are
summed and the aggregate is compared with the gallery; below the threshold it is unknown.
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from core.analyzer_configs import QualityGate, RecognizerConfig
from workers import models
from workers.analytics.faces import Faces
from workers.analytics.gallery import normalise
from workers.analytics.picture import Picture
from workers.analytics.quality import contrast_enough, frontal_offset, geometry_ok, sharp_enough  # noqa: F401  (frontal_offset: older imports)
from workers.analytics.registry import Analyzer, register
from workers.analytics.tracks import SegmentState


def align_face(image_bgr: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The 112x112 face ArcFace reads: the image warped so the five keypoints land on
    insightface's template (eyes at y 51.6, nose tip at 71.7, mouth corners at 92.3)."""
    import warnings

    from insightface.utils import face_align

    with warnings.catch_warnings():  # insightface calls a scikit-image API deprecated in 0.26
        warnings.simplefilter("ignore", FutureWarning)
        return face_align.norm_crop(image_bgr, landmark=np.asarray(keypoints, np.float32), image_size=112)


def aligned_on(picture: Picture, keypoints: np.ndarray) -> np.ndarray:
    """``align_face`` of the picture's full-size BGR pixels, made once per picture and face: the
    recogniser, the mask's embedding classifier and its lower-face cue read the same 112x112
    face when they look at one face on one frame."""
    points = np.asarray(keypoints, np.float32)
    return picture.derived(("aligned", points.tobytes()), lambda p: align_face(p.bgr()[0], points))


class FaceEmbedder:
    """ArcFace embedding of a face given its 5 keypoints (also used to enrol photos)."""

    def __init__(self, model_file: str = "w600k_mbf.onnx", model_dir: str | None = None, threads: int = 1):
        import onnxruntime as ort
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX

        path = models.model_path(model_file, model_dir)
        providers = models.providers()
        # On the CPU, the same embeddings bit for bit in about four fifths of the time
        # (models.without_prelu); a GPU runs the graph as it comes (its PRelu was not measured slow).
        graph = str(path) if "CUDAExecutionProvider" in providers else models.without_prelu(path)
        session = ort.InferenceSession(graph, sess_options=models.session_options(threads), providers=providers)
        self.model = ArcFaceONNX(model_file=str(path), session=session)

    @staticmethod
    @lru_cache(maxsize=4)
    def shared(model_file: str = "w600k_mbf.onnx", model_dir: str | None = None, threads: int = 1) -> "FaceEmbedder":
        """One embedder per model and thread count in a process: the recogniser and the mask
        analyzer's embedding classifier run the same ArcFace file, and each session loaded
        costs start-up time and memory (it holds nothing between calls)."""
        return FaceEmbedder(model_file, model_dir, threads)

    def aligned(self, image_bgr: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        return align_face(image_bgr, keypoints)

    def embed(self, image_bgr: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        return self.embed_aligned(self.aligned(image_bgr, keypoints))

    def embed_aligned(self, aligned_bgr: np.ndarray) -> np.ndarray:
        return normalise(self.model.get_feat(aligned_bgr).ravel().astype(np.float32))

    def judged(self, image: Picture | np.ndarray, keypoints: np.ndarray, gate: QualityGate) -> np.ndarray | None:
        """The embedding of a face the gate passes as sharp and lit enough, else None. Given a
        Picture, the aligned face is the one kept on it (``aligned_on``)."""
        aligned = aligned_on(image, keypoints) if isinstance(image, Picture) else self.aligned(image, keypoints)
        return self.embed_aligned(aligned) if sharp_enough(gate, aligned) and contrast_enough(gate, aligned) else None


@register
class FaceRecognizer(Analyzer):
    name: ClassVar[str] = "recognize"
    Config: ClassVar[type[BaseModel]] = RecognizerConfig

    def __init__(self, config: RecognizerConfig):
        self.config = config
        self.embedder = FaceEmbedder.shared(config.model_file, config.model_dir, config.threads)
        self.state: SegmentState | None = None

    def begin(self, state: SegmentState) -> None:
        self.state = state

    def _settled(self, record) -> bool:
        """Enough is known about this track: three samples, and either a clear match or no
        gallery to match against (the samples are still kept for a later re-identification)."""
        if record.embeddings < 3:
            return False
        return not len(self.state.gallery) or (record.similarity or 0) >= self.config.threshold + self.config.settle_margin

    def _worth_embedding(self, faces: Faces, row: int) -> bool:
        """Big enough, confident, and roughly facing the camera: ArcFace embeddings of
        profiles match poorly (and strangers better), so they must not vote."""
        return geometry_ok(self.config.quality, faces.boxes[row], float(faces.scores[row]), faces.keypoints[row])

    def __call__(self, picture: Picture, faces: Faces) -> Faces:
        state, cfg = self.state, self.config
        identities, similarities = [], []
        for row, track_id in enumerate(faces.track_ids if faces.track_ids is not None else []):
            record = state.tracks.get(int(track_id))
            if record is None:
                identities.append(None)
                similarities.append(None)
                continue
            # A carried face (the detector's pace skipped this frame) is not sampled: its
            # keypoints are the last look's, and the face may have moved since.
            if (not faces.carried and not self._settled(record) and self._worth_embedding(faces, row)
                    and state.should_sample(track_id, self.name, cfg.sample_every, cfg.samples_per_track)):
                vector = self.embedder.judged(picture, faces.keypoints[row], cfg.quality)
                if vector is not None:   # a blurred frame votes for nobody
                    record.add_embedding(vector, state.frame_index)
                    record.identity, record.similarity = state.gallery.match(record.embedding(), cfg.threshold)
            identities.append(record.identity)
            similarities.append(record.similarity)
        if identities:
            faces.columns["identity"] = identities
            faces.columns["similarity"] = similarities
        return faces
