"""Leases: a running task says it is alive, so a task whose worker died is re-run in seconds.

Celery's Redis transport gives a task whose worker vanished whole (SIGKILL of the worker's
main process, an OOM kill, a pod deleted without grace, a node cut off the network) back to
the queue only when its visibility timeout passes, which must stay above the longest task.
So the tasks that hold work (ingest, a segment, a drawing, the stitch) hold a lease while
they run: an entry in a Redis sorted set scored by its expiry, renewed by a thread of the
task every third of ``VIDFARM_SEGMENT_LEASE_S``. ``reclaim_expired`` (every worker's timer,
Celery beat, and the embedded farm's supervisor) queues again the work of every lease that
lapsed.

A worker takes the lease of a task already when it *receives* it (``task_received``, in the
worker's main process), and keeps it while the task waits for its pool process: one killed
between fetching a task and running it (the message taken from Redis, unacknowledged, no lease
yet) has its work queued again within the lease too, not after the visibility timeout. The
task takes the lease over when it starts.

A lease holds a token of its holder: a holder renews and releases only its own, so a worker
that comes back after its work was given to another neither revives the old lease nor takes
the new one away, and can tell it lost it (``Lease.held``). Times are Redis's own clock,
the same for every host.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from functools import lru_cache

import redis
from celery import bootsteps
from celery.signals import task_received, worker_shutdown, worker_shutting_down
from celery.worker import state

from core.models import ENDED_STATES
from core.segment_job import SegmentJob
from services import runtime
from tasks.app import app

log = logging.getLogger(__name__)

EXPIRIES = "vidfarm:leases"          # sorted set: lease name -> expiry (Redis time, seconds)
HOLDERS = "vidfarm:lease-holders"    # hash: lease name -> {"token", "worker"}

# Taking a lease: whoever starts the work now holds it (an earlier holder lost it).
_TAKE = """
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], now[1] + now[2] / 1e6 + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return 1
"""
# Renewing it: only while this token still holds it (one reclaimed stays reclaimed).
_RENEW = """
local holder = redis.call('HGET', KEYS[2], ARGV[1])
if not holder or cjson.decode(holder)['token'] ~= ARGV[2] then return 0 end
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], now[1] + now[2] / 1e6 + tonumber(ARGV[3]), ARGV[1])
return 1
"""
_RELEASE = """
local holder = redis.call('HGET', KEYS[2], ARGV[1])
if not holder or cjson.decode(holder)['token'] ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def client() -> redis.Redis:
    """This process's Redis (the broker's; the embedded farm picks its port at run time)."""
    return _client(app.conf.broker_url)


def lease_seconds() -> float:
    return runtime.settings().segment_lease_s


class Lease:
    """``with Lease(name, worker):`` holds the lease ``name`` while the block runs, renewing it
    from a thread. Redis errors while renewing are logged, not raised: the work goes on, and at
    worst it is done twice (every leased task is idempotent)."""

    def __init__(self, name: str, worker: str):
        self.name, self.worker = name, worker
        self.token = uuid.uuid4().hex
        self.seconds = lease_seconds()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost = False
        self._renewed_at = time.monotonic()

    @property
    def held(self) -> bool:
        """False once another holder took it, or when it may have lapsed unseen (not renewed
        for a lease's length: Redis unreachable, as on a host cut off the network)."""
        return not self._lost and time.monotonic() - self._renewed_at < self.seconds

    def _call(self, script: str) -> None:
        holder = json.dumps({"token": self.token, "worker": self.worker})
        try:
            asked = time.monotonic()
            if client().eval(script, 2, EXPIRIES, HOLDERS, self.name, self.token, self.seconds, holder):
                self._renewed_at = asked
            else:
                self._lost = True
                log.warning("lease %s was given to another worker", self.name)
        except redis.RedisError as exc:
            log.warning("lease %s not renewed: %s", self.name, exc)

    def _keep(self) -> None:
        while not self._lost and not self._stop.wait(self.seconds / 3):
            self._call(_RENEW)

    def __enter__(self) -> "Lease":
        self._call(_TAKE)
        self._thread = threading.Thread(target=self._keep, name=f"lease {self.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.release()

    def release(self) -> None:
        """Give the lease up, if this holder still holds it (lapsed, it would have the work queued again)."""
        try:
            client().eval(_RELEASE, 2, EXPIRIES, HOLDERS, self.name, self.token)
        except redis.RedisError as exc:
            log.warning("lease %s not released (it lapses): %s", self.name, exc)


def segment_lease(job_id: str, index: int) -> str:
    return f"segment:{job_id}:{index}"


def render_lease(job_id: str, index: int) -> str:
    return f"render:{job_id}:{index}"


def job_lease(kind: str, job_id: str) -> str:
    """``kind``: ingest, stitch or join (of the drawn video)."""
    return f"{kind}:{job_id}"


# The lease each leased task takes, from its arguments (the tasks' own ``with Lease(...)``).
_LEASE_OF = {
    "vidfarm.ingest": lambda job_id, *_: job_lease("ingest", job_id),
    "vidfarm.segment": lambda message: segment_lease(message["owner"], message["index"]),   # a SegmentJob's
    "vidfarm.stitch": lambda job_id, *_: job_lease("stitch", job_id),
    "vidfarm.render_segment": lambda job_id, index, *_: render_lease(job_id, index),
    "vidfarm.join_video": lambda job_id, *_: job_lease("join", job_id),
}
# This worker's leases of tasks received and not started yet, by delivery (``_delivery``).
_waiting: dict[tuple[str, int], "Lease"] = {}
# Set as this worker's warm shutdown begins (``renew_waiting``).
_shutting_down = threading.Event()


def _delivery(request) -> tuple[str, int]:
    """A delivery of a task: its id and retries. A retry keeps the task's id, and may arrive
    while the run that sent it is still active here: by id alone, that run's being active
    would look like the retry having started, and its lease would go unrenewed and lapse
    during its countdown (the work then queued again, and run twice)."""
    return request.id, int(request.request_dict.get("retries") or 0)


@task_received.connect
def _lease_on_receipt(request=None, **_) -> None:
    """In the worker's main process, as a leased task arrives: hold its lease from now on."""
    make = _LEASE_OF.get(getattr(request, "name", None))
    if make is None:
        return
    try:
        lease = Lease(make(*request.args), request.hostname or "local")
    except (KeyError, TypeError, ValueError):      # arguments of another shape: the task refuses them itself
        return
    lease._call(_TAKE)
    _waiting[_delivery(request)] = lease


def renew_waiting() -> None:
    """Renew the leases of received tasks still waiting for a pool process; forget those that
    started (the task holds its lease now) or ended. Once a warm shutdown began, forget none:
    the consumer has dropped its books of the tasks it holds for a countdown (they go back to
    the queue), and ``release_waiting`` must still find their leases."""
    if _shutting_down.is_set():
        for lease in list(_waiting.values()):
            lease._call(_RENEW)
        return
    active = {_delivery(request) for request in state.active_requests}
    # reserved: waiting for a pool process (and, until it ends, running); scheduled: waiting
    # for its countdown (a retry's)
    waiting = {_delivery(request) for request in (*state.reserved_requests, *state.scheduled_requests)}
    for delivery, lease in list(_waiting.items()):
        if delivery in active or delivery not in waiting:
            del _waiting[delivery]
        else:
            lease._call(_RENEW)


def release_waiting() -> int:
    """At the worker's warm shutdown: release the leases of received tasks that never started
    here (waiting for a pool process, or for a retry's countdown: ``tasks.store_wait``). Their
    messages go back to the queue as the worker's connection closes (kombu restores what it did
    not acknowledge), and whoever takes one next takes its lease; left to lapse, the lease would
    have the work queued again besides, and then run twice. (Where the restore itself fails,
    Redis away too, the message comes back after the visibility timeout.) A task that started
    holds a lease of its own, which this leaves alone. Returns how many were waiting."""
    waiting = list(_waiting.values())
    _waiting.clear()
    for lease in waiting:
        lease.release()
    return len(waiting)


@worker_shutting_down.connect
def _keep_waiting_leases_until_released(**_) -> None:
    _shutting_down.set()


@worker_shutdown.connect
def _release_waiting_at_shutdown(**_) -> None:
    # Sent once the worker's steps have stopped: its consumer receives nothing more (a lease
    # released earlier could be taken again by a task arriving meanwhile: a retry sent by a task
    # the shutdown waited for), and its connection has given the unacknowledged messages back.
    release_waiting()


def expire_leases_of(worker_prefix: str) -> int:
    """Let every lease held by a worker whose name starts with ``worker_prefix`` lapse now (the
    embedded farm's supervisor saw that worker die). Returns how many."""
    r = client()
    dead = [name for name, holder in r.hgetall(HOLDERS).items()
            if json.loads(holder)["worker"].startswith(worker_prefix)]
    for name in dead:
        r.zadd(EXPIRIES, {name: 0}, xx=True)
    return len(dead)


def reclaim_expired() -> list[str]:
    """Queue again the work of every lapsed lease; returns the leases reclaimed. A lease is
    reclaimed once: whoever removes it from the set first does it."""
    r = client()
    seconds, micros = r.time()
    reclaimed = []
    for raw in r.zrangebyscore(EXPIRIES, "-inf", seconds + micros / 1e6):
        name = raw.decode()
        if not r.zrem(EXPIRIES, name):
            continue       # another reclaimer, or its holder releasing it, got there first
        holder = r.hget(HOLDERS, name)
        r.hdel(HOLDERS, name)
        kind, job_id, *rest = name.split(":")
        try:
            _REQUEUE[kind](job_id, *map(int, rest))
        except Exception:   # the database away, say: lapsed it stays, for the next look
            log.exception("reclaiming %s failed", name)
            if holder is not None:
                r.hsetnx(HOLDERS, name, holder)
            r.zadd(EXPIRIES, {name: 0}, nx=True)
            continue
        log.warning("lease %s lapsed (its worker died or was cut off): queued again", name)
        reclaimed.append(name)
    return reclaimed


def _requeue_segment(job_id: str, index: int) -> None:
    records = runtime.records()
    job = records.requeue_segment(job_id, index)
    if job is not None:
        client().set(_REQUEUED.format(job_id), 1, ex=_REQUEUED_KEPT_S)
        segment = SegmentJob.of(job, records.get_segment(job_id, index))
        app.send_task("vidfarm.segment", (segment.to_message(),),
                      queue=job.options.get("queue", "cpu"))
        return
    segment, job = records.get_segment(job_id, index), records.get_job(job_id)
    if segment is not None and segment.status == "done" and job is not None and job.status not in ENDED_STATES:
        # Its worker died after the analysis, drawing the segment ahead (``tasks.jobs``): nothing
        # to do again, but the chord waits for a task that never reports. The segments call the
        # stitch themselves, and so does this (it looks again later if some are unfinished).
        client().set(_REQUEUED.format(job_id), 1, ex=_REQUEUED_KEPT_S)
        app.send_task("vidfarm.stitch", (job_id,))


# A job with a segment queued again has a chord that waits for the dead worker's task, which
# never reports: its segments call the stitch themselves (``stitch_without_chord``).
_REQUEUED = "vidfarm:requeued:{}"
_REQUEUED_KEPT_S = 7 * 24 * 3600


def forget_requeues(job_id: str) -> None:
    """The job is stitched: its next run (a re-analysis) has a whole chord again."""
    try:
        client().delete(_REQUEUED.format(job_id))
    except redis.RedisError:
        pass     # then that run's last segment calls a stitch too, which finds the job stitched or skips


def stitch_without_chord(job_id: str) -> bool:
    """Whether a segment of this job was queued again after its worker died."""
    try:
        return bool(client().exists(_REQUEUED.format(job_id)))
    except redis.RedisError:
        return False     # then the chord, or the stitch's own looking again, finishes the job


def _redraw(job_id: str, _index: int | None = None) -> None:
    app.send_task("vidfarm.redraw", (job_id,))       # by name: the drawing tasks build on this module


def _resend(task: str):
    return lambda job_id: app.send_task(task, (job_id,))


_REQUEUE = {"segment": _requeue_segment, "render": _redraw, "join": _redraw,
            "ingest": _resend("vidfarm.ingest"), "stitch": _resend("vidfarm.stitch")}


def reclaim_quietly() -> None:
    """A worker's timer: renew the leases of tasks waiting here, then ``reclaim_expired``;
    trouble is logged, and the next look tries again."""
    try:
        renew_waiting()
        reclaim_expired()
    except Exception:
        log.exception("looking for lapsed leases failed")


@app.task(name="vidfarm.reclaim", ignore_result=True)
def reclaim() -> list[str]:
    """Beat, every ``VIDFARM_SEGMENT_LEASE_S`` / 2: queue again the work of dead workers."""
    return reclaim_expired()


class ReclaimLapsedLeases(bootsteps.StartStopStep):
    """Every worker looks for lapsed leases too (``tasks.leases``), every half lease, on its
    event loop's timer (no thread: the prefork pool forks from this process), so a node lost
    with the beat pod on it does not stop the work of dead workers coming back."""
    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.every = None

    def start(self, worker):
        # Every half lease: also renews the leases of the tasks waiting here before they lapse.
        self.every = worker.timer.call_repeatedly(lease_seconds() / 2, reclaim_quietly)

    def stop(self, worker):
        if self.every is not None:
            self.every.cancel()


# Added when the worker imports this module (its include list), before it builds its blueprint.
app.steps["worker"].add(ReclaimLapsedLeases)
