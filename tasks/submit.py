"""Putting a recording into the farm: store it, record the job, queue its ingest."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import BinaryIO

from core.storage import job_key
from tasks import runtime
from tasks.jobs import ingest


def display_name(name: str) -> str:
    """A file name as a label: valid UTF-8 (undecodable bytes of a POSIX path become U+FFFD),
    no control characters, at most 255 characters. It is shown to people, never used as a path."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join(c for c in text if c.isprintable())[:255] or "recording"


def _new_job(name: str, options: dict | None, store_source) -> str:
    name = display_name(name)
    job_id = uuid.uuid4().hex
    key = job_key(job_id, "source")   # never the user's file name: it is only a label
    store_source(key)
    runtime.records().add_job(name, key, options or {}, job_id=job_id)
    ingest.apply_async((job_id,))
    return job_id


def submit_file(path: Path, name: str | None = None, options: dict | None = None) -> str:
    return _new_job(name or str(path), options, lambda key: runtime.store().put_file(key, path))


def submit_stream(stream: BinaryIO, name: str, options: dict | None = None) -> str:
    """Store an upload chunk by chunk (raises BlobTooLarge past the upload limit)."""
    limit = runtime.settings().max_upload_bytes
    return _new_job(name, options, lambda key: runtime.store().put_stream(key, stream, limit))
