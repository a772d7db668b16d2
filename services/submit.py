"""Putting a recording into the farm and taking it out again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import delete

from core.models import ENDED_STATES, Job
from core.orphan_guard import guarded
from core.settings import BUILTIN_ANALYZERS, Settings
from core.storage import job_key
from services.farm import Farm

# Past its own budget, the child probing an upload gets this long to start and answer.
CHECK_START_S = 20.0


class JobBusy(RuntimeError):
    """The job is still running; its workers would write files after a delete."""


class MediaError(ValueError):
    """An upload vidfarm cannot take, with the one-line reason ``workers.media`` gave."""


def check_recording(settings: Settings, path: Path) -> None:
    """Look at a file before it becomes a job, so that junk is refused at the door: a
    bounded check of its header and first picture (``workers.media.check_upload``; the ingest
    task probes the whole file under the same limits). It runs in a child process, so the web
    process never loads a codec (and that dies with it: SIGKILL, as its answer has nobody left to
    read it). Raises ``MediaError`` with a one-line reason."""
    limits = json.dumps(settings.media_limits(settings.upload_check_s))
    try:
        done = subprocess.run(guarded([sys.executable, "-m", "workers.upload_check", str(path), limits],
                                      signal.SIGKILL),
                              capture_output=True, text=True, timeout=settings.upload_check_s + CHECK_START_S,
                              cwd=Path(__file__).resolve().parents[1], env=reader_environment())
        verdict = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except subprocess.TimeoutExpired:
        raise MediaError(f"not a readable video file (reading its header took over "
                         f"{settings.upload_check_s + CHECK_START_S:g} s)") from None
    except (ValueError, IndexError):
        verdict = None
    if verdict is None:   # the reader died: a file that crashes FFmpeg is no video to keep
        raise MediaError("not a readable video file (reading it crashed the video reader)")
    if verdict["error"]:
        raise MediaError(verdict["error"])


def reader_environment() -> dict[str, str]:
    """The upload reader's environment: the web process's without vidfarm's settings, whose
    secrets (session key, API token, database and broker passwords) a process parsing
    untrusted files has no use for; its limits come on its command line."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith("VIDFARM_") and name not in ("REDIS_URL", "DATABASE_URL")}


def registered_analyzers() -> list[str]:
    """Every analyzer a job may ask for besides detection (no settings needed: schemas use it)."""
    return sorted(name for name in BUILTIN_ANALYZERS if name != "detect")


def optional_analyzers(settings: Settings) -> list[str]:
    """Analyzers a job may switch on or off, in chain order. Detection always runs first:
    every other analyzer reads the faces it finds."""
    default = default_analyzers(settings)
    return default + [name for name in registered_analyzers() if name not in default]


def default_analyzers(settings: Settings) -> list[str]:
    return [n for n in settings.analyzers if n != "detect" and n in BUILTIN_ANALYZERS]


def analyzer_chain(settings: Settings, chosen: list[str]) -> list[str]:
    """A job's full chain (its ``analyzers`` option) from the optional analyzers chosen."""
    return ["detect", *[name for name in optional_analyzers(settings) if name in chosen]]


def display_name(name: str) -> str:
    """A file name as a label: valid UTF-8 (undecodable bytes of a POSIX path become U+FFFD),
    no control characters, at most 255 characters. It is shown to people, never used as a path."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = "".join(c for c in text if c.isprintable())
    stem, dot, suffix = text.rpartition(".")
    if len(text) > 255 and dot and stem and len(suffix) <= 16:
        # Cut the stem, not the end: the extension says what the file was ("….mp4").
        return f"{stem[:254 - len(dot + suffix)]}…{dot}{suffix}"
    return text[:255] or "recording"


def new_job_id() -> str:
    return uuid.uuid4().hex


def submit_file(farm: Farm, path: Path, name: str | None = None, options: dict | None = None, move: bool = False,
                job_id: str | None = None) -> str:
    """Submit a local file (the CLI reads a thermal calibration sidecar into ``options``:
    ``cli.main.sidecar_options``). ``move``: the file is the caller's to give away (an
    upload's temporary file): it is moved into the store (renamed, on one filesystem), not copied.
    ``name``: the job's label (and results.json's ``source.path``); by default the file's name,
    never the folders above it, as for an upload. ``job_id``: chosen by a caller that must be
    able to take the job back if it is stopped midway (``withdraw_job``; by default a new one)."""
    options = dict(options or {})
    job_id = job_id or new_job_id()
    key = job_key(job_id, "source")   # never the user's file name: it is only a label
    # The record first: a process killed at any moment of the submit (a web process, say)
    # leaves a "queued" job, which beat's watchdog fails (``tasks.watchdog``) and a delete then
    # removes with its files. Stored first, the recording (people's faces) stayed in the store
    # under no job at all, where nothing would ever find or delete it.
    farm.records.add_job(display_name(name or path.name), key, options, job_id=job_id)
    try:
        if move:
            farm.store.move_file(key, path)
        else:
            farm.store.put_file(key, path)
        farm.queue.send("vidfarm.ingest", job_id)
    except Exception:
        # Not stored or not queued (the store or the broker cannot be reached): no job that
        # nothing will ever run stays "queued" in the list, and no copy of the recording stays
        # in the store.
        withdraw_job(farm, job_id)
        raise
    return job_id


def withdraw_job(farm: Farm, job_id: str) -> bool:
    """Take back a job that no worker has begun: its record (while it is still "queued", or
    not written yet: the submit was stopped as it began) and every blob under it go. The
    conditional delete races a worker's ingest safely: an ingest that comes later finds no job
    and skips it (``Records.start_stage``). False, and nothing changed, once a worker has begun it."""
    with farm.records.session() as s:
        withdrawn = s.execute(delete(Job).where(Job.id == job_id, Job.status == "queued")).rowcount
        if not withdrawn and s.get(Job, job_id) is not None:
            return False
    farm.store.delete_prefix(job_key(job_id))
    return True


def delete_job(farm: Farm, job_id: str) -> bool:
    """Remove a finished job's records and every blob under it; False when there is no such job."""
    with farm.records.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            return False
        if job.status not in ENDED_STATES:
            raise JobBusy(f"job {job_id} is {job.status}; delete it once it is done or failed")
        s.delete(job)   # its segments go with it (cascade)
    farm.store.delete_prefix(job_key(job_id))
    return True
