"""Waiting out a blob store that is away, so that an outage delays jobs instead of failing them.

A task that meets ``BlobStoreAway`` (an S3 bucket unreachable, failing or overloaded past
botocore's own retries, ``VIDFARM_S3_MAX_ATTEMPTS``: a few seconds) is retried by Celery 2, 4, 8, 16 ... s after it met
it (at most ``MAX_DELAY_S`` apart) until ``VIDFARM_BLOB_STORE_WAIT_S`` has passed since; only then
does it fail, saying how long the store was away. The tasks of a job use it: ingest, a segment,
the stitch, a drawing, the join and a redraw (``tasks.jobs``, ``tasks.render``), through
``retry_or_fail``; a segment waiting so stays in its state (``processing``), each run of it
counted in its ``attempts``. A store that refuses the farm (``BlobStoreUnavailable`` otherwise:
a missing bucket, refused credentials) is no outage: no wait mends it, so the job fails at once
saying why.

Why Celery's retry and not a sleep in the task: the worker's process is free meanwhile, and a
warm shutdown does not wait minutes for a sleeping task: the retry waits as a message (with its
countdown) held by a worker, which gives it back to the queue if it stops (and its lease:
``tasks.leases.release_waiting``). The retry keeps the task's id, so a chord's header task
retried still completes its chord; and the worker that holds it holds its lease
(``tasks.leases``), so it is not handed out again meanwhile and run twice at once.

When the outage began, and how many retries it took, travel in a header of the retry message:
the retries spent waiting for the store are not counted against those a task has for other
errors (``other_retries``).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Callable, NoReturn

from core.storage import BlobStoreAway, BlobStoreUnavailable
from services import runtime

log = logging.getLogger(__name__)

HEADER = "vidfarm_blob_store_away"
FIRST_DELAY_S = 2.0
MAX_DELAY_S = 30.0


def _outage(request) -> tuple[float | None, int]:
    """(when this task first met the store away, unix time, or None; retries it spent waiting)."""
    noted = getattr(request, HEADER, None)
    if not isinstance(noted, dict):      # none (a first delivery), or of another shape
        return None, 0
    return noted.get("since"), int(noted.get("retries", 0))


def other_retries(request) -> int:
    """The retries a task has had for errors other than the store away."""
    return request.retries - _outage(request)[1]


def _cause(exc: BaseException | None, kind: type[BlobStoreUnavailable]) -> BlobStoreUnavailable | None:
    """``exc``, or the error it was raised from, of ``kind``; else None."""
    while exc is not None and not isinstance(exc, kind):
        exc = exc.__cause__
    return exc


def wait_for_store(task, exc: Exception) -> BlobStoreUnavailable | None:
    """For a task that met ``exc``: None when it is not the blob store away; while the store
    has been away for less than ``blob_store_wait_s``, retry the task later (raises Celery's
    Retry); past that, the error to fail with, which says how long the store was away."""
    away = _cause(exc, BlobStoreAway)
    if away is None:
        return None
    since, retries = _outage(task.request)
    now = time.time()
    since = now if since is None else since
    waited, wait_s = now - since, runtime.settings().blob_store_wait_s
    if waited >= wait_s:
        return BlobStoreUnavailable(f"the blob store was away for {waited:.0f} s, longer than a task waits for it "
                                    f"(VIDFARM_BLOB_STORE_WAIT_S={wait_s:g}): {away}")
    # Tried again as long after as it has waited so far: 2, 4, 8, 16 ... s after it met it.
    delay = min(max(FIRST_DELAY_S, waited), MAX_DELAY_S, wait_s - waited)
    log.warning("%s %s: the blob store is away (for %.0f s now), trying again in %.0f s: %s",
                task.name, task.request.id, waited, delay, away)
    _retry(task, exc, delay, since, retries + 1)


def retry_or_fail(task, exc: Exception, retries: int = 0, fail: Callable[[str], object] = lambda _reason: None,
                  ) -> NoReturn:
    """What a task of a job does with an error it met (called in its ``except``): the store
    away has it retried later (``wait_for_store``); another error, while it has had fewer than
    ``retries`` retries for such errors, soon (``retry_soon``; not the store refusing the farm,
    which no retry mends). Else ``fail(reason)`` (the task marks its job failed) and raise: the
    store's error once it was away too long, else ``exc``."""
    gone = wait_for_store(task, exc)
    if gone is None and other_retries(task.request) < retries and _cause(exc, BlobStoreUnavailable) is None:
        retry_soon(task, exc)
    fail(str(gone or exc))
    if gone is not None:
        raise gone from exc
    raise exc


@contextmanager
def waiting_for_store(task):
    """Inside the block, the blob store away has ``task`` retried later (``wait_for_store``);
    past the wait it fails saying how long the store was away. Other errors pass as they are."""
    try:
        yield
    except Exception as exc:
        retry_or_fail(task, exc)


def retry_soon(task, exc: Exception, countdown: float = 1.0) -> NoReturn:
    """Retry the task after another error (counted by ``other_retries``). The retries an outage
    of the store took stay set apart; a later outage is timed from when it is met."""
    _retry(task, exc, countdown, None, _outage(task.request)[1])


def _retry(task, exc: Exception, countdown: float, since: float | None, store_retries: int) -> NoReturn:
    # max_retries: this one is allowed (the callers decided); Celery's default cap (3) counts both kinds.
    raise task.retry(exc=exc, countdown=countdown, max_retries=task.request.retries + 1,
                     headers={HEADER: {"since": since, "retries": store_retries}})
