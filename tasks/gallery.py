"""The gallery of known faces: enrol from photos, list, rename, delete.

Enrolment detects the face in each photo, aligns it on its keypoints, embeds it with ArcFace
and stores the normalised embedding (several per identity) and the face crop that was used.
A job matches against the shared gallery, or some of its people (``gallery_ids`` in its
options: identity ids, never copies of their embeddings), or a gallery of its own
(``vidfarm process --gallery DIR``), so trying a set of photos never changes the shared one.
"""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from tasks import runtime
from workers.analytics.gallery import Gallery

NAME = re.compile(r"^[\w][\w .'-]{0,63}$")


class GalleryError(ValueError):
    """One line a user can act on: no face, several faces, unreadable photo, bad name."""


@lru_cache(maxsize=1)
def _models():
    from workers.analytics.detector import DetectorConfig, FaceDetector
    from workers.analytics.recognizer import FaceEmbedder

    s = runtime.settings()
    model_dir = str(s.model_dir) if s.model_dir else None
    detector = FaceDetector(DetectorConfig(model_file=s.detector_model, model_dir=model_dir,
                                           input_long_side=s.detector_input, threshold=s.detector_threshold,
                                           threads=s.effective_threads))
    return detector, FaceEmbedder(s.recognizer_model, model_dir, threads=s.effective_threads)


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME.match(name):
        raise GalleryError(f"invalid name {name!r}: 1-64 letters, digits, spaces, . ' - or _")
    return name


def embed_photo(filename: str, data: bytes, largest_face: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The embedding and the 112x112 aligned crop of the one face in a photo."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise GalleryError(f"{filename}: not a readable image")
    detector, embedder = _models()
    faces = detector(image)
    if len(faces) == 0:
        raise GalleryError(f"{filename}: no face found")
    areas = (faces.boxes[:, 2] - faces.boxes[:, 0]) * (faces.boxes[:, 3] - faces.boxes[:, 1])
    if len(faces) > 1 and not largest_face:
        raise GalleryError(f"{filename}: {len(faces)} faces found; use a photo of one person")
    row = int(np.argmax(areas))
    return embedder.embed(image, faces.keypoints[row]), embedder.aligned(image, faces.keypoints[row])


def enroll(name: str, images: list[tuple[str, bytes]], largest_face: bool = False) -> dict:
    """Add photos of one person; nothing is stored unless every photo is usable."""
    name = check_name(name)
    if not images:
        raise GalleryError("no photos given")
    embedded = [embed_photo(filename, data, largest_face) for filename, data in images]
    store = runtime.store()
    crop_keys = []
    for vector, crop in embedded:
        key = f"gallery/{uuid.uuid4().hex}.jpg"
        ok, jpeg = cv2.imencode(".jpg", crop)
        store.put_stream(key, io.BytesIO(jpeg.tobytes()))
        crop_keys.append(key)
    count = runtime.records().add_embeddings(name, [v.astype(np.float32).tobytes() for v, _ in embedded],
                                             [filename for filename, _ in images], crop_keys)
    return {"name": name, "embeddings": count, "crops": crop_keys}


def list_identities() -> list[dict]:
    return runtime.records().identities()


def find_identity(name: str) -> dict | None:
    return next(iter(runtime.records().identities(name)), None)


def change_identity(name: str, new_name: str | None = None, watchlist: bool | None = None) -> str:
    """Rename an identity, flag it for the watchlist (or unflag it), or both, in one write:
    all or nothing. Returns its name afterwards (the new name as stored: trimmed). A flagged
    person raises a watchlist alert wherever recognised; the flag is part of the gallery's
    fingerprint, so beat re-identifies stored recordings after a change and their alerts follow."""
    values: dict = {}
    new_name = None if new_name is None else check_name(new_name)
    if new_name is not None and new_name != name:    # its own name: nothing to rename
        if find_identity(new_name) is not None:
            raise GalleryError(f"an identity named {new_name!r} already exists")
        values["name"] = new_name
    if watchlist is not None:
        values["watchlist"] = watchlist
    changed = runtime.records().change_identity(name, **values) if values else find_identity(name) is not None
    if not changed:
        raise GalleryError(f"no identity named {name!r}")
    return values.get("name", name)


def rename_identity(old: str, new: str) -> str:
    return change_identity(old, new_name=new)


def set_watchlist(name: str, on: bool) -> None:
    change_identity(name, watchlist=on)


def delete_identity(name: str) -> dict | None:
    """Erase the identity: gone from the gallery at once (embeddings, face crops), then from
    every job by a background task (``tasks.erasure``). Returns the erasure's report so far;
    None when there is no such identity."""
    from tasks import erasure   # here: the erasure builds on this module's job_matching

    return erasure.start(name)


def gallery_option(folder) -> list[dict]:
    """A job-local gallery from a folder: each sub-folder is an identity holding photos; a loose
    photo is an identity named by its file stem. The largest face of each photo is used."""
    from pathlib import Path

    photos: dict[str, list] = {}
    for path in sorted(Path(folder).iterdir()):
        if path.is_dir():
            photos.setdefault(path.name, []).extend(p for p in sorted(path.iterdir()) if p.is_file())
        elif path.is_file():
            photos.setdefault(path.stem, []).append(path)
    if not photos:
        raise GalleryError(f"{folder}: no photos in the gallery folder")
    entries = []
    for name, paths in photos.items():
        vectors = [embed_photo(p.name, p.read_bytes(), largest_face=True)[0] for p in paths]
        entries.append({"name": check_name(name), "embeddings": [[round(float(x), 6) for x in v] for v in vectors]})
    return entries


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
