"""Matching face embeddings against the enrolled gallery by cosine similarity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import defaults

DEFAULT_THRESHOLD = defaults.RECOGNITION_THRESHOLD


@dataclass
class Gallery:
    names: list[str]            # one per row of vectors (an identity may have several rows)
    vectors: np.ndarray         # (N, D) float32, L2-normalised

    @classmethod
    def empty(cls) -> "Gallery":
        return cls([], np.zeros((0, 512), np.float32))

    @classmethod
    def from_rows(cls, rows: list[tuple[str, bytes | list[float]]]) -> "Gallery":
        """Rows of (name, vector) from the records (bytes) or a job's options (lists)."""
        if not rows:
            return cls.empty()
        vectors = np.stack([np.frombuffer(v, np.float32) if isinstance(v, (bytes, bytearray, memoryview))
                            else np.asarray(v, np.float32) for _, v in rows])
        return cls([name for name, _ in rows], normalise(vectors))

    def __post_init__(self):
        # Counted once: the recogniser asks whether the gallery is empty for every tracked face.
        self._identities = len(set(self.names))

    def __len__(self) -> int:
        """How many identities (not photos) are enrolled."""
        return self._identities

    def match(self, embedding: np.ndarray | None, threshold: float) -> tuple[str | None, float | None]:
        """Best identity for an embedding: its most similar enrolled photo. Below the
        threshold the face is unknown (None) but the best similarity is still reported."""
        if embedding is None or not len(self.names):
            return None, None
        similarities = self.vectors @ normalise(embedding)
        best = int(np.argmax(similarities))
        similarity = round(float(similarities[best]), 4)
        return (self.names[best] if similarity >= threshold else None), similarity


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
