"""What the use cases work with: the settings, the records, the blob store and the queue,
as one small object each process's entry point builds (``Farm.open``) and passes in.

The use cases (``services.*``) take it as their first argument and reach for nothing else:
the web factory keeps the one it built on the app (``web.context.farm``), the CLI and a
worker's tasks take their process's (``services.runtime.farm``), and a test may build one on
other records or another store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from core.errors import BrokerUnavailable
from core.records import Records, open_records
from core.segment_job import SegmentJob
from core.settings import Settings
from core.storage import BlobStore, LocalBlobStore
from tasks import client

log = logging.getLogger(__name__)


class Queue(Protocol):
    """The producers' side of the task queue (``tasks.client``): tasks sent by name."""

    def send(self, name: str, *args, countdown: float | None = None) -> None: ...

    def call(self, name: str, *args, timeout_s: float): ...

    def fan_out(self, job_id: str, segments: list[SegmentJob], queue: str = "cpu",
                run: float | None = None) -> None: ...


@dataclass(frozen=True)
class Farm:
    settings: Settings
    records: Records
    store: BlobStore
    queue: Queue

    @classmethod
    def open(cls, settings: Settings) -> Farm:
        """The farm these settings name (the records are opened once per process and shared:
        ``open_records`` keeps them)."""
        return cls(settings, open_records(settings.sqlalchemy_url, settings.db_auto_upgrade),
                   open_blob_store(settings), client)


def open_blob_store(settings: Settings) -> BlobStore:
    """The blob store the settings name: S3 (``VIDFARM_BLOB_STORE=s3``) or the data dir's."""
    if settings.blob_store == "s3":
        from core.s3_storage import S3BlobStore     # boto3 loads only where S3 is used

        return S3BlobStore(**settings.s3_store_options())
    return LocalBlobStore(settings.data_dir / "blobs")


def queue_follow_up(farm: Farm, name: str, *args) -> None:
    """Queue the task that finishes a change already stored, one that beat's sweeps also do
    (re-identifying jobs matched against an older gallery; resuming an erasure). With the
    broker away the change stands and the sweep finishes it once the broker is back: a 503
    would have the user retry a change that was made."""
    try:
        farm.queue.send(name, *args)
    except BrokerUnavailable as exc:
        log.warning("%s; beat's sweep does it once the broker is back", exc)
