"""The gallery's worker side: finding and embedding the faces of enrolment photos (the
``vidfarm.embed_photos`` task; ``services.gallery`` stores what it returns), and the gallery a
job matches against."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache

from core.errors import GalleryError
from services import runtime
from tasks.app import app
from workers.analytics.gallery import Gallery
from workers.enrolment import PhotoEmbedder


@lru_cache(maxsize=1)
def embedder() -> PhotoEmbedder:
    return PhotoEmbedder.from_settings(runtime.settings())


@app.task(name="vidfarm.embed_photos")
def embed_photos(staged: list[list[str]], largest_face: bool = False) -> dict:
    """Photos staged in the store as ``[file name, key]``: each one's embedding and face crop
    (JPEG, base64), or the one-line reason the first unusable photo is refused."""
    store = runtime.store()
    try:
        photos = [(name, store.local_path(key).read_bytes()) for name, key in staged]
    except FileNotFoundError:   # the request gave up waiting and took them back
        return {"error": "the photos were withdrawn before a worker read them"}
    try:
        found = embedder()(photos, largest_face)
    except GalleryError as exc:
        return {"error": str(exc)}
    return {"faces": [{"vector": vector, "crop": base64.b64encode(jpeg).decode()} for vector, jpeg in found]}


@dataclass(frozen=True)
class Matching:
    """What a job's results are matched against: gallery, watchlist and fingerprint from one
    read, so the fingerprint published with the results is that of the gallery really used."""
    gallery: Gallery
    watchlist: frozenset[str]
    fingerprint: str       # "job" for a job's own gallery: re-identification leaves it alone


def job_matching(options: dict) -> Matching:
    """The gallery a job matches against: its own (if given), some enrolled people (a
    subset: ``gallery_ids``, possibly none of them left) or the whole shared gallery."""
    records = runtime.records()
    if options.get("gallery") is not None:
        # The watchlist is the shared one even for a job's own gallery.
        return Matching(_own_gallery(options), frozenset(records.watchlist_names()), "job")
    snapshot = records.gallery_snapshot()
    rows = snapshot.rows
    if "gallery_ids" in options:
        # A subset follows its people's renames, new photos and deletion: it is re-identified
        # whenever the shared gallery changes, like a job matched against all of it.
        wanted = set(options["gallery_ids"])
        rows = [row for row, identity in zip(rows, snapshot.identity_ids) if identity in wanted]
    return Matching(Gallery.from_rows(rows), snapshot.watchlist, snapshot.fingerprint)


def _own_gallery(options: dict) -> Gallery:
    return Gallery.from_rows([(e["name"], v) for e in options["gallery"] for v in e["embeddings"]])
