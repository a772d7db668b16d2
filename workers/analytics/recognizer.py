"""Face recognition with ArcFace (w600k MobileFaceNet), per track.

A track is embedded on a few good frames (aligned on its 5 keypoints), the embeddings are
summed and the aggregate is compared with the gallery; below the threshold it is unknown.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
from pydantic import BaseModel

from core.analyzer_configs import QualityGate, RecognizerConfig
from workers import models, onnx_wire
from workers.analytics.faces import Faces
from workers.analytics.gallery import normalise
from workers.analytics.picture import Picture
from workers.analytics.quality import contrast_enough, frontal_offset, geometry_ok, sharp_enough  # noqa: F401  (frontal_offset: older imports)
from workers.analytics.registry import Analyzer, register
from workers.analytics.tracks import SegmentState


# Where the five keypoints land in the 112x112 face ArcFace reads (insightface's template,
# ``insightface.utils.face_align.arcface_dst``): eyes, nose tip, mouth corners.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)


def align_face(image_bgr: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The 112x112 face ArcFace reads: the image warped so the five keypoints land on
    insightface's template (eyes at y 51.6, nose tip at 71.7, mouth corners at 92.3). The
    same pixels as insightface's ``face_align.norm_crop`` (tests/test_face_sharing.py), whose
    import brought insightface, onnx and scikit-image into every worker's start."""
    matrix = similarity_transform(np.asarray(keypoints, np.float32), ARCFACE_TEMPLATE)
    return cv2.warpAffine(image_bgr, matrix[:2], (112, 112), borderValue=0.0)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 3x3 similarity (rotation, one scale, translation) that takes the ``source`` points
    nearest to ``target`` in least squares: Umeyama's method (PAMI 1991, eqs. 38-43), computed
    as scikit-image's ``SimilarityTransform`` estimates it, step for step and in the same
    dtypes, so that the matrix, and the face warped with it, are the same to the bit. NaN where
    the points do not determine one (all in one place)."""
    count, dim = source.shape
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    covariance = target_centred.T @ source_centred / count          # eq. 38
    signs = np.ones((dim,), dtype=np.float64)                         # eq. 39
    if np.linalg.det(covariance) < 0:
        signs[dim - 1] = -1
    transform = np.eye(dim + 1, dtype=np.float64)
    u, singular, v = np.linalg.svd(covariance)
    tolerance = singular.max() * np.max(covariance.shape) * np.finfo(float).eps
    rank = np.count_nonzero(singular > tolerance)
    if rank == 0:
        return np.nan * transform
    if rank == dim - 1 and np.linalg.det(u) * np.linalg.det(v) <= 0:    # eqs. 40, 43
        flipped = signs.copy()
        flipped[dim - 1] = -1
        transform[:dim, :dim] = u @ np.diag(flipped) @ v
    elif rank == dim - 1:
        transform[:dim, :dim] = u @ v
    else:
        transform[:dim, :dim] = u @ np.diag(signs) @ v
    scale = 1.0 / source_centred.var(axis=0).sum() * (singular @ signs)     # eqs. 41, 42
    transform[:dim, dim] = target_mean - scale * (transform[:dim, :dim] @ source_mean.T)
    transform[:dim, :dim] *= scale
    return transform


def aligned_on(picture: Picture, keypoints: np.ndarray) -> np.ndarray:
    """``align_face`` of the picture's full-size BGR pixels, made once per picture and face: the
    recogniser, the mask's embedding classifier and its lower-face cue read the same 112x112
    face when they look at one face on one frame."""
    points = np.asarray(keypoints, np.float32)
    return picture.derived(("aligned", points.tobytes()), lambda p: align_face(p.bgr()[0], points))


class FaceEmbedder:
    """ArcFace embedding of a face given its 5 keypoints (also used to enrol photos)."""

    def __init__(self, model_file: str = "w600k_mbf.onnx", model_dir: str | None = None, threads: int = 1):
        path = models.model_path(model_file, model_dir)
        # On the CPU, the same embeddings bit for bit in about four fifths of the time
        # (models.without_prelu); a GPU runs the graph as it comes (its PRelu was not measured slow).
        graph = path if "CUDAExecutionProvider" in models.providers() else models.without_prelu(path)
        self.model = ArcFace(path, models.session(graph, threads))

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


class ArcFace:
    """An ArcFace session's input and output, as insightface's ``ArcFaceONNX`` gives them (the
    same embeddings, tests/test_face_sharing.py) without importing insightface and onnx."""

    def __init__(self, path: Path, session):
        self.session = session
        # An mxnet-exported ArcFace scales its input in its first nodes (insightface tells it by
        # their names); the others expect (pixel - 127.5) / 127.5.
        names = onnx_wire.Model.load(path).node_names(8)
        scales_itself = (any(n.startswith(("Sub", "_minus")) for n in names)
                         and any(n.startswith(("Mul", "_mul")) for n in names))
        self.input_mean, self.input_std = (0.0, 1.0) if scales_itself else (127.5, 127.5)
        model_input = session.get_inputs()[0]
        self.input_name, self.input_size = model_input.name, tuple(model_input.shape[2:4][::-1])
        self.output_names = [output.name for output in session.get_outputs()]
        if len(self.output_names) != 1:
            raise ValueError(f"{path} is not an ArcFace model: {len(self.output_names)} outputs, not 1")

    def get_feat(self, images: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """Embeddings of aligned BGR faces, one row each."""
        blob = cv2.dnn.blobFromImages(images if isinstance(images, list) else [images], 1.0 / self.input_std,
                                      self.input_size, (self.input_mean,) * 3, swapRB=True)
        return self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(blob, np.float32)})[0]


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
