"""Blob storage: uploads, segments and outputs, each under its job id.

Keys are '/'-separated relative names built by vidfarm (``jobs/<id>/...``), never from a user's
file name. ``LocalBlobStore`` keeps them in a directory that every worker can read (one machine,
or a shared volume on Kubernetes); ``core.s3_storage.S3BlobStore`` in an S3-compatible bucket
(a cluster without a ReadWriteMany volume). ``services.runtime.store`` opens the one the settings name (VIDFARM_BLOB_STORE).

Writes: ``put_file``, ``move_file``, ``put_stream``, ``delete_prefix``. They are atomic (a temp
file + rename; an S3 PUT), so a task that runs twice leaves one complete copy and a reader never
sees a half-written file. Reads: ``exists``, ``list_keys``, ``size``, ``read_range`` and
``local_path`` (a file on this machine: the blob itself, or the S3 store's cached copy of it,
which the caller must only read).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO, Iterator

_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
# Blobs show and name people: the owner writes, its group (a shared volume's fsGroup) reads,
# nobody else; whatever the process' umask.
FILE_MODE = 0o640


def check_key(key: str) -> str:
    """A key as vidfarm builds them; anything else (``..``, a leading '/') is refused."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"invalid blob key: {key!r}")
    return key


def job_key(job_id: str, *parts: str) -> str:
    return "/".join(("jobs", job_id, *parts))


def segment_key(job_id: str, index: int) -> str:
    """A piece of the recording as ingest cut it."""
    return job_key(job_id, "segments", f"{index:05d}.nut")


def analysis_key(job_id: str, index: int) -> str:
    """What a segment's analysis found (its faces per frame and its tracks)."""
    return job_key(job_id, "analysis", f"{index:05d}.json")


def face_crops_key(job_id: str, index: int | None = None) -> str:
    """The best faces a segment's analysis cut (``workers.thumbnails.SegmentFaceCrops``), kept
    until the stitch has published the job's results (the prefix of all of them: None)."""
    return job_key(job_id, "face_crops", *([] if index is None else [f"{index:05d}.json"]))


def output_key(job_id: str, name: str) -> str:
    return job_key(job_id, "output", name)


def version_key(job_id: str, version: int) -> str:
    """Results version ``version``. A reader of a job's latest results reads the version its
    record names (``results_version``), not ``output/results.json``: that is written just
    before the version's commit (the next publisher reads it under the claim), so it could be
    a version whose people index and alerts are not committed yet (or, if the commit failed,
    never would be)."""
    return output_key(job_id, f"versions/results-{version}.json")


def stored_versions(store: "BlobStore", job_id: str) -> dict[int, str]:
    """The job's stored results versions (an erasure deletes those naming the person): key by number."""
    keys = store.list_keys(output_key(job_id, "versions"))
    return dict(sorted((int(key.rsplit("-", 1)[1].removesuffix(".json")), key) for key in keys))


class BlobStore(ABC):
    @abstractmethod
    def put_file(self, key: str, src: Path) -> None:
        """Store a copy of a local file under key (atomically)."""

    def move_file(self, key: str, src: Path) -> None:
        """Store a local file the caller gives away (a scratch file): ``src`` is gone after.
        Stores that can take the file as it is do so instead of copying it."""
        self.put_file(key, src)
        src.unlink()

    @abstractmethod
    def put_stream(self, key: str, stream: BinaryIO, limit: int | None = None) -> int:
        """Store a stream under key, chunk by chunk; returns the byte count.
        Raises ``BlobTooLarge`` (and stores nothing) past ``limit`` bytes."""

    @abstractmethod
    def local_path(self, key: str) -> Path:
        """A readable local file holding the blob (raises FileNotFoundError)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int:
        """The blob's length in bytes (raises FileNotFoundError)."""

    @abstractmethod
    def read_range(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``stop - 1`` of the blob, in pieces (what a Range answer sends)."""

    def check(self) -> None:
        """Raise BlobStoreUnavailable, saying why, unless the store can be used (entry points call it)."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Remove every blob under a key prefix (e.g. a whole job)."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """The keys of every blob under a key prefix (a folder), sorted; none when it is absent."""


class BlobTooLarge(ValueError):
    pass


class BlobStoreUnavailable(OSError):
    """The store cannot be used: it refuses us (a wrong or deleted bucket, refused credentials,
    any other error it answers) or is away (``BlobStoreAway``); its message says which.
    Nothing was stored. Refused is a misconfiguration: trying again will not mend it."""


class BlobStoreAway(BlobStoreUnavailable):
    """An outage, which may pass: the store cannot be reached (no connection, a timeout, one
    dropped), or answers that it fails or is overloaded (a 5xx, SlowDown, throttling), past
    the client's own retries. Tasks wait for it (``tasks.store_wait``), the web answers 503."""


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _atomic_target(self, key: str) -> tuple[Path, Path]:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        os.close(fd)
        return target, Path(tmp)

    def put_file(self, key: str, src: Path) -> None:
        target, tmp = self._atomic_target(key)
        try:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def move_file(self, key: str, src: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(src, FILE_MODE)
            os.replace(src, target)     # atomic, and no copy, when both are on one filesystem
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            super().move_file(key, src)

    def put_stream(self, key: str, stream: BinaryIO, limit: int | None = None) -> int:
        target, tmp = self._atomic_target(key)
        size = 0
        try:
            with open(tmp, "wb") as out:
                while chunk := stream.read(1 << 20):
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise BlobTooLarge(f"larger than the {limit} byte limit")
                    out.write(chunk)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return size

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no blob {key}")
        return path

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self.local_path(key).stat().st_size

    def read_range(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        with open(self.local_path(key), "rb") as file:
            file.seek(start)
            while start < stop and (chunk := file.read(min(1 << 16, stop - start))):
                start += len(chunk)
                yield chunk

    def list_keys(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        return sorted(path.relative_to(self.root).as_posix() for path in folder.rglob("*")
                      if path.is_file() and not path.name.startswith("."))   # not a write in progress

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix.rstrip("/"))
        if path.is_dir():
            # Tasks may still write (or clean up) files in there while it goes (a done job's
            # video being drawn): a file already gone is fine, a folder that filled again is
            # swept again.
            for _ in range(20):
                shutil.rmtree(path, onerror=_unless_raced)
                if not path.exists():
                    return
                time.sleep(0.05)
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _unless_raced(function, path, exc_info) -> None:
    """rmtree's error handler: a file removed meanwhile, or a folder written to meanwhile
    (swept again after), is no error."""
    error = exc_info[1]
    if isinstance(error, FileNotFoundError) or getattr(error, "errno", None) == errno.ENOTEMPTY:
        return
    raise error
