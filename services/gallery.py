"""The gallery of known faces: enrol from photos, list, rename, flag, delete.

Enrolment finds the face in each photo, aligns and embeds it (``workers.enrolment``: on a
worker, or in the CLI's own process) and stores the normalised embedding (several per
identity) and the face crop that was used. A job matches against the shared gallery, or some
of its people (``gallery_ids`` in its options: identity ids, never copies of their
embeddings), or a gallery of its own (``vidfarm process --gallery DIR``), so trying a set of
photos never changes the shared one.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import struct
import uuid
from pathlib import Path
from functools import partial
from typing import Callable

from core.errors import FarmTimeout, GalleryError
from services.farm import Farm

log = logging.getLogger(__name__)

NAME = re.compile(r"^[\w][\w .'-]{0,63}$")

# (photos as (file name, bytes), largest_face) -> per photo (embedding, face crop as JPEG)
Embed = Callable[[list[tuple[str, bytes]], bool], list[tuple[list[float], bytes]]]


class NoWorkerAnswered(GalleryError):
    """The farm found no faces in time: busy, or not running. Nothing was stored; try again."""


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME.match(name):
        raise GalleryError(f"invalid name {name!r}: 1-64 letters, digits, spaces, . ' - or _")
    return name


def embed_on_a_worker(farm: Farm, photos: list[tuple[str, bytes]],
                      largest_face: bool = False) -> list[tuple[list[float], bytes]]:
    """``Embed`` by the ``vidfarm.embed_photos`` task: the photos wait in the shared store
    while a worker (which has the models loaded) reads them; at most ``enrol_timeout_s``."""
    store, staged, timeout_s = farm.store, f"staging/enrol/{uuid.uuid4().hex}", farm.settings.enrol_timeout_s
    try:
        keys = []
        for index, (filename, data) in enumerate(photos):
            keys.append([filename, f"{staged}/{index}"])
            store.put_stream(keys[-1][1], io.BytesIO(data))
        try:
            answer = farm.queue.call("vidfarm.embed_photos", keys, largest_face, timeout_s=timeout_s)
        except FarmTimeout:
            raise NoWorkerAnswered(f"no worker found the faces within {timeout_s:g} s "
                               "(is the farm running?); try again") from None
    finally:
        store.delete_prefix(staged)
    if answer.get("error"):
        raise GalleryError(answer["error"])
    return [(face["vector"], base64.b64decode(face["crop"])) for face in answer["faces"]]


def enroll(farm: Farm, name: str, images: list[tuple[str, bytes]], largest_face: bool = False,
           embed: Embed | None = None) -> dict:
    """Add photos of one person; nothing is stored unless every photo is usable. ``embed``:
    how the faces are found (default: on a worker; the CLI embeds in its own process)."""
    name = check_name(name)
    if not images:
        raise GalleryError("no photos given")
    embedded = (embed or partial(embed_on_a_worker, farm))(images, largest_face)
    store = farm.store
    crop_keys = []
    for _vector, jpeg in embedded:
        key = f"gallery/{uuid.uuid4().hex}.jpg"
        store.put_stream(key, io.BytesIO(jpeg))
        crop_keys.append(key)
    count = farm.records.add_embeddings(name, [struct.pack(f"<{len(v)}f", *v) for v, _ in embedded],
                                             [filename for filename, _ in images], crop_keys)
    return {"name": name, "embeddings": count, "crops": crop_keys}


def list_identities(farm: Farm) -> list[dict]:
    return farm.records.identities()


def find_identity(farm: Farm, name: str) -> dict | None:
    return next(iter(farm.records.identities(name)), None)


def change_identity(farm: Farm, name: str, new_name: str | None = None, watchlist: bool | None = None) -> str:
    """Rename an identity, flag it for the watchlist (or unflag it), or both, in one write:
    all or nothing. Returns its name afterwards (the new name as stored: trimmed). A flagged
    person raises a watchlist alert wherever recognised. Stored recordings are re-identified at
    once (beat's sweep, queued now rather than at its next pass, up to
    ``VIDFARM_REIDENTIFY_EVERY_S`` later): until then their pages would name the person by a
    name nobody has, linking to a person page and a face crop that no longer exist."""
    values: dict = {}
    new_name = None if new_name is None else check_name(new_name)
    if new_name is not None and new_name != name:    # its own name: nothing to rename
        if find_identity(farm, new_name) is not None:
            raise GalleryError(f"an identity named {new_name!r} already exists")
        values["name"] = new_name
    if watchlist is not None:
        values["watchlist"] = watchlist
    changed = farm.records.change_identity(name, **values) if values else find_identity(farm, name) is not None
    if not changed:
        raise GalleryError(f"no identity named {name!r}")
    if values:
        try:
            farm.queue.send("vidfarm.reidentify_stale")
        except Exception as error:      # the change is made; beat's next pass re-identifies instead
            log.warning("re-identification not queued now (%s): beat's next pass does it", error)
    return values.get("name", name)


def rename_identity(farm: Farm, old: str, new: str) -> str:
    return change_identity(farm, old, new_name=new)


def set_watchlist(farm: Farm, name: str, on: bool) -> None:
    change_identity(farm, name, watchlist=on)


def delete_identity(farm: Farm, name: str) -> dict | None:
    """Erase the identity: gone from the gallery at once (embeddings, face crops), then from
    every job by a background task (``tasks.erasure``). Returns the erasure's report so far;
    None when there is no such identity."""
    from services import erasure

    return erasure.start(farm, name)


def gallery_option(folder, embed: Embed) -> list[dict]:
    """A job-local gallery from a folder: each sub-folder is an identity holding photos; a loose
    photo is an identity named by its file stem. The largest face of each photo is used."""
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
        vectors = [vector for vector, _ in embed([(p.name, p.read_bytes()) for p in paths], True)]
        entries.append({"name": check_name(name), "embeddings": [[round(x, 6) for x in v] for v in vectors]})
    return entries
