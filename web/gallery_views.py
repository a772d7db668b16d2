"""What the gallery pages and the identity API share: photos read from the request, identities
as views with their crops' URLs."""

from __future__ import annotations

import base64

from flask import url_for
from werkzeug.datastructures import FileStorage

from services import gallery
from web.context import farm
from web.uploads import UploadRejected, clean_name, human_bytes

MAX_PHOTO_BYTES = 20 * 1024 * 1024


def read_photos(files: list[FileStorage]) -> list[tuple[str, bytes]]:
    """The enrolment photos as (name, bytes); each must be non-empty and of sane size."""
    photos = []
    for upload in files:
        if upload is None or not upload.filename:
            continue
        name = clean_name(upload.filename)
        data = upload.stream.read(MAX_PHOTO_BYTES + 1)
        if not data:
            raise UploadRejected(400, f"{name}: the file is empty (0 bytes)")
        if len(data) > MAX_PHOTO_BYTES:
            raise UploadRejected(413, f"{name}: a photo may be at most {human_bytes(MAX_PHOTO_BYTES)}")
        photos.append((name, data))
    if not photos:
        raise UploadRejected(400, "choose one or more photos of the person's face")
    return photos


def identity_view(identity: dict) -> dict:
    return {"name": identity["name"], "embeddings": identity["embeddings"], "watchlist": identity["watchlist"],
            "created_at": identity["created_at"],      # ISO 8601 in UTC, as the records give it
            "crop_url": url_for("gallery.crop", name=identity["name"]) if identity.get("crop") else None}


def identities() -> list[dict]:
    return [identity_view(i) for i in gallery.list_identities(farm())]


def crop_path(key: str):
    return farm().store.local_path(key)


def crop_data_url(key: str) -> str:
    """A crop inlined in the page, so showing the faces just used needs no extra route."""
    return "data:image/jpeg;base64," + base64.b64encode(crop_path(key).read_bytes()).decode()
