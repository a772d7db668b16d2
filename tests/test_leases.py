"""Leases of running work (tasks/leases.py) against a real Redis: who holds one, who may
renew it, and that lapsed work is handed out exactly once."""

from __future__ import annotations

import time

import pytest

from cli.redis_server import RedisServer
from tasks import leases


@pytest.fixture
def lease_redis(tmp_path, monkeypatch):
    from tasks.app import app

    with RedisServer(tmp_path / "redis") as server:
        monkeypatch.setitem(app.conf, "broker_url", server.url)
        yield leases.client()
    leases._client.cache_clear()


def holder_of(r, name: str) -> str | None:
    import json

    raw = r.hget(leases.HOLDERS, name)
    return None if raw is None else json.loads(raw)["worker"]


def test_a_lease_is_held_while_its_block_runs_and_released_after(lease_redis):
    with leases.Lease("segment:j:0", "w1@h") as lease:
        assert lease.held and holder_of(lease_redis, "segment:j:0") == "w1@h"
        expiry = lease_redis.zscore(leases.EXPIRIES, "segment:j:0")
        assert expiry > time.time()
    assert lease_redis.zscore(leases.EXPIRIES, "segment:j:0") is None
    assert holder_of(lease_redis, "segment:j:0") is None


def test_a_reclaimed_lease_is_not_revived_by_its_old_holder(lease_redis, monkeypatch):
    monkeypatch.setattr(leases, "lease_seconds", lambda: 0.3)
    old = leases.Lease("segment:j:1", "w1@h").__enter__()
    old._stop.set()            # its worker stops renewing (as one cut off the network)
    old._thread.join()
    lease_redis.zadd(leases.EXPIRIES, {"segment:j:1": 0})
    assert lease_redis.zrem(leases.EXPIRIES, "segment:j:1") and lease_redis.hdel(leases.HOLDERS, "segment:j:1")
    old._call(leases._RENEW)   # it comes back: renewing must not take the work back
    assert not old.held and lease_redis.zscore(leases.EXPIRIES, "segment:j:1") is None
    with leases.Lease("segment:j:1", "w2@h") as new:
        old._call(leases._RENEW)
        old.__exit__()         # nor may its release end the new holder's lease
        assert new.held and holder_of(lease_redis, "segment:j:1") == "w2@h"


def test_a_lease_not_renewed_for_its_length_is_no_longer_counted_held(lease_redis, monkeypatch):
    monkeypatch.setattr(leases, "lease_seconds", lambda: 0.3)
    lease = leases.Lease("segment:j:2", "w1@h")
    lease._call(leases._TAKE)
    assert lease.held
    time.sleep(0.35)           # no renewal reached Redis for a whole lease
    assert not lease.held


def test_lapsed_work_is_handed_out_once(lease_redis, monkeypatch):
    requeued = []
    monkeypatch.setitem(leases._REQUEUE, "segment", lambda job, index: requeued.append((job, index)))
    monkeypatch.setattr(leases, "lease_seconds", lambda: 60)
    with leases.Lease("segment:a:0", "worker1-9@h"), leases.Lease("segment:a:1", "worker2-9@h"):
        assert leases.reclaim_expired() == []                  # both alive
        assert leases.expire_leases_of("worker2-9@") == 1      # its supervisor saw worker2 die
        assert leases.reclaim_expired() == ["segment:a:1"]
        assert leases.reclaim_expired() == []                  # once, not at every look
    assert requeued == [("a", 1)]


def test_redis_gives_no_running_task_away_and_beat_reclaims_within_a_lease():
    """The visibility timeout outlasts every task's hard limit (a slow task is never handed to a
    second worker while it runs), and beat looks for lapsed leases at least twice a lease."""
    import celeryconfig

    limits = [annotation["time_limit"] for annotation in celeryconfig.task_annotations.values()]
    assert celeryconfig.broker_transport_options["visibility_timeout"] > max(limits)
    reclaim = celeryconfig.beat_schedule["reclaim-work-of-dead-workers"]
    assert reclaim["task"] == "vidfarm.reclaim"
    assert reclaim["schedule"] <= celeryconfig._settings.segment_lease_s / 2


def test_work_that_cannot_be_queued_again_now_stays_lapsed_for_the_next_look(lease_redis, monkeypatch):
    def database_away(job, index):
        raise ConnectionError("the database is away")

    monkeypatch.setattr(leases, "lease_seconds", lambda: 60)
    with leases.Lease("segment:b:0", "worker1-9@h"):
        leases.expire_leases_of("worker1-9@")
        monkeypatch.setitem(leases._REQUEUE, "segment", database_away)
        assert leases.reclaim_expired() == []
        requeued = []
        monkeypatch.setitem(leases._REQUEUE, "segment", lambda job, index: requeued.append((job, index)))
        assert leases.reclaim_expired() == ["segment:b:0"] and requeued == [("b", 0)]


def test_a_warm_shutdown_releases_the_leases_of_tasks_waiting_there_and_leaves_started_ones(lease_redis, monkeypatch):
    """A task received and not started (a retry's countdown, say: tasks/store_wait.py) goes back to
    the queue as the worker stops: its lease is released, not left to lapse and have the work
    queued a second time."""
    from celery.signals import worker_shutdown

    requeued = []
    monkeypatch.setitem(leases._REQUEUE, "segment", lambda job, index: requeued.append((job, index)))
    monkeypatch.setattr(leases, "lease_seconds", lambda: 0.3)
    monkeypatch.setattr(leases, "_waiting", {})
    waiting, started = leases.Lease("segment:c:0", "w1@h"), leases.Lease("segment:c:1", "w1@h")
    for request_id, lease in (("r0", waiting), ("r1", started)):
        lease._call(leases._TAKE)          # as on receipt
        leases._waiting[request_id, 0] = lease
    with leases.Lease("segment:c:1", "w1@h") as running:      # the task took its lease over
        worker_shutdown.send(sender=None)
        assert leases._waiting == {}
        assert lease_redis.zscore(leases.EXPIRIES, "segment:c:0") is None and holder_of(lease_redis, "segment:c:0") is None
        assert running.held and holder_of(lease_redis, "segment:c:1") == "w1@h"
        time.sleep(0.35)
        assert leases.reclaim_expired() == [] and requeued == []


class StandInRequest:
    """What the lease code reads of a worker's request (``celery.worker.request.Request``)."""

    def __init__(self, request_id: str, retries: int, args: tuple = ()):
        self.id, self.request_dict, self.args = request_id, {"retries": retries}, args
        self.name, self.hostname = "vidfarm.segment", "w1@h"


def test_a_retry_received_while_the_run_that_sent_it_is_still_active_keeps_its_lease(lease_redis, monkeypatch):
    """A retry keeps its task's id and may arrive while the run that sent it is still active on
    this worker (tasks/store_wait.py): its lease is renewed through its countdown all the same,
    not left to lapse and have the segment queued again (and run twice)."""
    from celery.worker import state

    requeued = []
    monkeypatch.setitem(leases._REQUEUE, "segment", lambda job, index: requeued.append((job, index)))
    monkeypatch.setattr(leases, "lease_seconds", lambda: 0.6)
    monkeypatch.setattr(leases, "_waiting", {})
    running = StandInRequest("t1", retries=0)
    retry = StandInRequest("t1", retries=1, args=({"owner": "d", "index": 0},))
    monkeypatch.setattr(state, "active_requests", {running})
    monkeypatch.setattr(state, "reserved_requests", {running})
    monkeypatch.setattr(state, "scheduled_requests", {retry})     # waiting for its countdown
    leases._lease_on_receipt(request=retry)
    for _ in range(6):                  # the worker's timer ticks through 1.2 s: two leases' length
        leases.renew_waiting()
        assert leases.reclaim_expired() == []
        time.sleep(0.2)
    assert requeued == [] and holder_of(lease_redis, "segment:d:0") == "w1@h"
    # The retry starts: its task takes the lease over, and the worker forgets the waiting one.
    monkeypatch.setattr(state, "active_requests", {retry})
    monkeypatch.setattr(state, "scheduled_requests", set())
    leases.renew_waiting()
    assert leases._waiting == {}


def test_once_a_warm_shutdown_began_no_waiting_lease_is_forgotten_before_it_is_released(lease_redis, monkeypatch):
    """A warm shutdown's consumer drops its books of the retries it held for their countdown
    before the worker's last signal: a timer tick in between must not forget their leases (left
    unreleased, they would lapse and have the work queued a second time)."""
    import threading

    from celery.signals import worker_shutdown, worker_shutting_down
    from celery.worker import state

    monkeypatch.setattr(leases, "_waiting", {})
    monkeypatch.setattr(leases, "_shutting_down", threading.Event())
    for name in ("active_requests", "reserved_requests", "scheduled_requests"):
        monkeypatch.setattr(state, name, set())          # the consumer's books, cleared
    leases._lease_on_receipt(request=StandInRequest("t2", retries=1, args=({"owner": "e", "index": 0},)))
    worker_shutting_down.send(sender="w1@h", sig="SIGTERM", how="Warm", exitcode=0)
    leases.renew_waiting()
    assert list(leases._waiting) == [("t2", 1)]
    worker_shutdown.send(sender=None)
    assert holder_of(lease_redis, "segment:e:0") is None and leases._waiting == {}


def test_a_done_segment_whose_worker_died_drawing_it_ahead_has_the_stitch_called(lease_redis, tmp_path, monkeypatch):
    """The segment task marks its segment done before drawing it ahead (``tasks.jobs``): a worker
    that dies then leaves nothing to analyse again, but a chord that waits for its task forever,
    so the reclaim calls the stitch (and the job's segments will too)."""
    from services import runtime
    from tasks.app import app
    from tests.conftest import use_farm_environment

    (tmp_path / "data").mkdir()
    use_farm_environment(monkeypatch, None, tmp_path / "data")
    records = runtime.records()
    job = records.add_job("lobby.mp4", "jobs/x/source")
    records.record_split(job.id, [{"index": k, "start_frame": k, "frames": 1, "pts": [k], "end_pts": k + 1}
                                  for k in range(2)], media={"time_base": [1, 10], "fps": 10.0})
    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, args=(), **kw: sent.append((name, args)))
    records.set_segment(job.id, 0, status="done")
    leases._requeue_segment(job.id, 0)
    assert sent == [("vidfarm.stitch", (job.id,))] and leases.stitch_without_chord(job.id)
    # An unfinished one is analysed again, as before; one of an ended job is left alone.
    leases._requeue_segment(job.id, 1)
    assert [name for name, _ in sent] == ["vidfarm.stitch", "vidfarm.segment"]
    records.fail_job(job.id, "stopped")
    leases._requeue_segment(job.id, 0)
    assert len(sent) == 2
