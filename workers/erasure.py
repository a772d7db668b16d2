"""Finding and removing an erased person in results and per-segment analyses (no Celery).

A track is the person's when results named it so: by their name, or by a name no enrolled
person has now whose face matches the person's enrolment photos (the name they had before a
rename, or in a job's own gallery). Tracks that were never named are left alone: matching
strangers against the erased photos would take look-alikes for them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from workers.analytics.gallery import normalise


@dataclass(frozen=True)
class Person:
    name: str
    vectors: np.ndarray        # (N, D) float32: the enrolment embeddings
    threshold: float           # the recognition threshold

    @classmethod
    def from_bytes(cls, name: str, vectors: bytes, count: int, threshold: float) -> "Person":
        """``vectors``: ``count`` float32 embeddings, concatenated (as an erasure keeps them)."""
        if not count:
            return cls(name, np.zeros((0, 1), np.float32), threshold)
        return cls(name, normalise(np.frombuffer(vectors, np.float32).reshape(count, -1)), threshold)

    def named(self, track: dict, other_names: set[str]) -> bool:
        identity = track.get("identity")
        if identity is None or identity in other_names - {self.name}:
            return False
        if identity == self.name:
            return True
        embedding = track.get("embedding")
        if embedding is None or not len(self.vectors):
            return False
        return float(np.max(self.vectors @ normalise(np.asarray(embedding, np.float32)))) >= self.threshold


def erased_tracks(results: dict, person: Person, other_names: set[str]) -> set[int]:
    return {t["track"] for t in results.get("tracks", []) if person.named(t, other_names)}


def forget_tracks(results: dict, tracks: set[int]) -> dict:
    """A copy of results in which ``tracks`` are nobody: no identity, no similarity, no kept
    embedding (so no later gallery can name them again), no watchlist alert; marked erased, so
    the job page does not say their face was never clear enough to enrol (it was, and is gone)."""
    updated = copy.deepcopy(results)
    for track in updated["tracks"]:
        if track["track"] in tracks:
            track.update(identity=None, best_similarity=None, embedding=None, erased=True)
    for frame in updated["frames"]:
        for face in frame["faces"]:
            if face["track"] in tracks:
                face.update(identity=None, similarity=None)
    updated["alerts"] = [a for a in updated["alerts"] if not (a["kind"] == "watchlist" and a["track"] in tracks)]
    return updated


def scrub_segment(analysis: dict, start_frame: int, results: dict, tracks: set[int], name: str) -> bool:
    """Forget, in one segment's analysis (changed in place), the local tracks that make up
    the results' ``tracks`` (a face of the results is its segment face with the same box), and
    any face or track the segment itself named ``name`` (analyses written before names were
    left out of them). Returns whether anything changed."""
    local: set[int] = set()
    for i, faces in enumerate(analysis["frames"]):
        index = start_frame + i
        frame = results["frames"][index] if 0 <= index < len(results["frames"]) else {"faces": []}
        boxes = {tuple(face["box"]) for face in frame["faces"] if face["track"] in tracks}
        local |= {face["track"] for face in faces if face["track"] is not None
                  and (tuple(face["box"]) in boxes or face.get("identity") == name)}
    local |= {t["track"] for t in analysis["tracks"] if t.get("identity") == name}
    changed = False
    for track in analysis["tracks"]:
        if track["track"] in local and (track.get("embedding_sum") is not None or track.get("identity") is not None):
            track.update(embedding_sum=None, has_embedding=False, identity=None, similarity=None)
            changed = True
    for faces in analysis["frames"]:
        for face in faces:
            if face["track"] in local and face.get("identity") is not None:
                face.update(identity=None, similarity=None)
                changed = True
    return changed
