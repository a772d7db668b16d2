"""Uploads, shared by the UI and the API: streamed to disk, named safely, probed before accepted.

``UploadRequest`` makes Werkzeug's form parser write each uploaded file straight into a temporary
file under data_dir (memory stays flat whatever the size; the file has a path the prober can
open). An accepted recording's file is moved into the blob store (a rename: the store lives
under data_dir too); any other is removed when the request ends.
"""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

from flask import Request, current_app
from werkzeug.datastructures import FileStorage

from core.errors import BrokerUnavailable
from services.submit import MediaError, check_recording, display_name, submit_file
from web.context import farm


# Retry-After of a 503 for a broker that cannot be reached (web/__init__.py uses it too).
BROKER_RETRY_AFTER_S = 10


class UploadRejected(ValueError):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class UploadSpool(io.BufferedRandom):
    """An uploaded file's temporary file: removed when Werkzeug closes it at the end of the
    request, unless it was moved away (into the store) before."""

    def __init__(self, folder: Path):
        handle, name = tempfile.mkstemp(dir=folder, prefix="upload-")
        raw = io.FileIO(handle, "w+b")
        raw.name = name
        super().__init__(raw)

    def close(self) -> None:
        try:
            super().close()
        finally:
            Path(self.name).unlink(missing_ok=True)


class UploadRequest(Request):
    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        folder = Path(current_app.config["VIDFARM_SETTINGS"].data_dir) / "tmp" / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        return UploadSpool(folder)


def clean_name(raw: str | None) -> str:
    """A display label from a client's file name. Blobs are keyed by job id, so the name never
    reaches the file system; still, keep only its last path part (then ``display_name``)."""
    name = re.split(r"[\\/]", raw or "")[-1]
    label = display_name(name).strip() if any(c.isprintable() and not c.isspace() for c in name) else ""
    if label in ("", ".", ".."):
        raise UploadRejected(400, f"the file name {raw!r} has no usable name after its path separators")
    return label


# A quoted file name in a part's Content-Disposition, as the client wrote it (escapes kept).
_QUOTED_FILE_NAME = re.compile(r'\bfilename="((?:[^"\\]|\\.)*)"')


def sent_file_name(upload: FileStorage) -> str | None:
    """The client's file name, with a raw Windows path's separators kept. Werkzeug reads a
    quoted name's backslashes as escapes, so the whole path some clients send (old Internet
    Explorer and Edge: ``C:\\clips\\lobby.mp4``, unescaped) came out as ``C:clipslobby.mp4``. A
    backslash before anything but ``"`` or another backslash escapes nothing: such a name is a
    raw path, and its last part is the name."""
    header = upload.headers.get("Content-Disposition", "")
    quoted = _QUOTED_FILE_NAME.search(header)
    if "filename*" in header or quoted is None or not re.search(r'\\[^"\\]', quoted.group(1)):
        return upload.filename
    return quoted.group(1).rsplit("\\", 1)[-1]


def upload_path(upload: FileStorage) -> Path:
    """The temporary file holding an upload, with its size checked against the limit."""
    limit = current_app.config["VIDFARM_SETTINGS"].max_upload_bytes
    stream = upload.stream
    stream.flush()
    path = Path(getattr(stream, "name", ""))
    if not path.is_file():   # tiny parts can arrive in memory; they are not videos
        raise UploadRejected(415, "not a readable video file")
    if path.stat().st_size > limit:
        raise UploadRejected(413, f"the file is larger than the upload limit of {human_bytes(limit)}")
    return path


def the_one_upload(uploads: list[FileStorage]) -> FileStorage | None:
    """The one recording of a request. Several under one field (``curl -F file=@a -F file=@b``)
    are refused: only the first became a job, and the others were dropped without a word."""
    if len(uploads) > 1:
        raise UploadRejected(400, f"send one recording per request ({len(uploads)} files came under 'file'): "
                                  f"each recording is a job of its own")
    return uploads[0] if uploads else None


def accept_recording(upload: FileStorage | None, options: dict | None = None) -> tuple[str, str]:
    """Turn an uploaded recording into a job; returns (job id, stored name)."""
    if upload is None:
        raise UploadRejected(400, "send the recording as a multipart form field named 'file'")
    name = clean_name(sent_file_name(upload))
    path = upload_path(upload)
    try:
        check_recording(farm().settings, path)
    except MediaError as exc:
        status = 400 if path.stat().st_size == 0 else 415
        raise UploadRejected(status, f"{name}: {exc}") from None
    try:
        return submit_file(farm(), path, name=name, options=options or {}, move=True), name
    except BrokerUnavailable:
        # submit_file kept nothing: sending the same file again later is safe.
        raise UploadRejected(503, f"{name}: not accepted, the farm's task queue (Redis) cannot be reached; "
                                  f"try again shortly", {"Retry-After": str(BROKER_RETRY_AFTER_S)}) from None


def human_bytes(count: int) -> str:
    """A size as people read it: "512 B", "2.5 KiB", "20 MiB", "4 GiB" (one decimal, none when
    it is 0). The Upload page's script formats sizes the same way (``sizeText`` in upload.js)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    value, unit = float(count), 0
    # Past 1023.95 of a unit the one decimal would round it up to "1024.0": the next unit says "1".
    while round(value, 1) >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    text = f"{value:.0f}" if unit == 0 else f"{value:.1f}".removesuffix(".0")
    return f"{text} {units[unit]}"
