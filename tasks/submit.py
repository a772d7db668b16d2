"""Putting a recording into the farm and taking it out again."""

from __future__ import annotations

import uuid
from pathlib import Path

from core.records import ENDED_STATES, Job
from core.storage import job_key
from tasks import runtime
from tasks.jobs import ingest, media_limits
from workers import media
from workers.analytics import thermal
from workers.analytics.registry import ANALYZERS
from workers.media import MediaError

__all__ = ["MediaError", "JobBusy", "check_recording", "display_name", "submit_file", "delete_job",
           "registered_analyzers", "optional_analyzers", "default_analyzers", "analyzer_chain"]


class JobBusy(RuntimeError):
    """The job is still running; its workers would write files after a delete."""


def check_recording(path: Path) -> None:
    """Look at a file before it becomes a job, so that junk is refused at the door: a
    bounded check of its header and first picture (the web process runs it; the ingest task
    probes the whole file under the same limits). Raises ``workers.media.MediaError`` with a
    one-line reason."""
    media.check_upload(path, media_limits(runtime.settings().upload_check_s))


def registered_analyzers() -> list[str]:
    """Every analyzer a job may ask for besides detection (no settings needed: schemas use it)."""
    return sorted(name for name in ANALYZERS if name != "detect")


def optional_analyzers() -> list[str]:
    """Analyzers a job may switch on or off, in chain order. Detection always runs first:
    every other analyzer reads the faces it finds."""
    default = default_analyzers()
    return default + [name for name in registered_analyzers() if name not in default]


def default_analyzers() -> list[str]:
    return [n for n in runtime.settings().analyzers if n != "detect" and n in ANALYZERS]


def analyzer_chain(chosen: list[str]) -> list[str]:
    """A job's full chain (its ``analyzers`` option) from the optional analyzers chosen."""
    return ["detect", *[name for name in optional_analyzers() if name in chosen]]


def display_name(name: str) -> str:
    """A file name as a label: valid UTF-8 (undecodable bytes of a POSIX path become U+FFFD),
    no control characters, at most 255 characters. It is shown to people, never used as a path."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join(c for c in text if c.isprintable())[:255] or "recording"


def submit_file(path: Path, name: str | None = None, options: dict | None = None, move: bool = False) -> str:
    """Submit a local file. A thermal calibration sidecar beside it (``VIDEO.thermal.json``)
    travels with the job (raises ``CalibrationError`` when the sidecar is unusable).
    ``move``: the file is the caller's to give away (an upload's temporary file): it is
    moved into the store (renamed, on one filesystem), not copied."""
    options = dict(options or {})
    if thermal.sidecar_path(path).is_file() and "thermal" not in options:
        calibration = thermal.load_calibration(path, runtime.settings())
        options["thermal"] = {"gain": calibration.gain, "offset": calibration.offset}
    job_id = uuid.uuid4().hex
    key = job_key(job_id, "source")   # never the user's file name: it is only a label
    if move:
        runtime.store().move_file(key, path)
    else:
        runtime.store().put_file(key, path)
    runtime.records().add_job(display_name(name or str(path)), key, options, job_id=job_id)
    ingest.apply_async((job_id,))
    return job_id


def delete_job(job_id: str) -> bool:
    """Remove a finished job's records and every blob under it; False when there is no such job."""
    with runtime.records().session() as s:
        job = s.get(Job, job_id)
        if job is None:
            return False
        if job.status not in ENDED_STATES:
            raise JobBusy(f"job {job_id} is {job.status}; delete it once it is done or failed")
        s.delete(job)   # its segments go with it (cascade)
    runtime.store().delete_prefix(job_key(job_id))
    return True
