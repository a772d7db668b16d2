"""Enrolment photos to gallery entries: detect the face in each photo, align it on its
keypoints, embed it with ArcFace. Runs where the models are (a worker, or the CLI)."""

from __future__ import annotations

import cv2
import numpy as np

from core.errors import GalleryError


class PhotoEmbedder:
    """The detector and the recogniser, loaded once."""

    def __init__(self, detector_config: dict, recognizer_model: str, model_dir: str | None, threads: int):
        from workers.analytics.detector import DetectorConfig, FaceDetector
        from workers.analytics.recognizer import FaceEmbedder

        self.detector = FaceDetector(DetectorConfig(**detector_config))
        self.embedder = FaceEmbedder(recognizer_model, model_dir, threads=threads)

    @classmethod
    def from_settings(cls, settings) -> "PhotoEmbedder":
        return cls(settings.detector_config(), settings.recognizer_model,
                   str(settings.model_dir) if settings.model_dir else None, settings.effective_threads)

    def embed_photo(self, filename: str, data: bytes, largest_face: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The embedding and the 112x112 aligned crop of the one face in a photo."""
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None:
            raise GalleryError(f"{filename}: not a readable image")
        faces = self.detector(image)
        if len(faces) == 0:
            raise GalleryError(f"{filename}: no face found")
        areas = (faces.boxes[:, 2] - faces.boxes[:, 0]) * (faces.boxes[:, 3] - faces.boxes[:, 1])
        if len(faces) > 1 and not largest_face:
            raise GalleryError(f"{filename}: {len(faces)} faces found; use a photo of one person")
        row = int(np.argmax(areas))
        return self.embedder.embed(image, faces.keypoints[row]), self.embedder.aligned(image, faces.keypoints[row])

    def __call__(self, photos: list[tuple[str, bytes]], largest_face: bool = False) -> list[tuple[list[float], bytes]]:
        """Each photo's normalised embedding and its face crop as JPEG, in order; raises
        GalleryError on the first unusable photo."""
        found = []
        for filename, data in photos:
            vector, crop = self.embed_photo(filename, data, largest_face)
            found.append(([float(x) for x in vector.astype(np.float32)], cv2.imencode(".jpg", crop)[1].tobytes()))
        return found
