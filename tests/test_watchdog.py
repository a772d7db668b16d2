"""The watchdog fails a job whose tasks were lost, never one whose tasks are still in the
broker: queued behind other work (no worker on its queue here: the session farm serves no
``gpu``), or held by a worker (a countdown's task sits in kombu's ``unacked`` hash)."""

from __future__ import annotations

import logging
import time

import pytest
from kombu.transport.redis import Channel

from autoscaler.observe import priority_lists, unacked_entry
from services import runtime
from services.jobs import job_view
from services.submit import submit_file
from tests.conftest import private_farm
from tests.waiting import wait_until


@pytest.fixture
def stall_after_half_a_second(monkeypatch):
    from core.settings import get_settings

    monkeypatch.setenv("VIDFARM_STALL_AFTER_S", "0.5")
    get_settings.cache_clear()      # the autouse settings_follow_environment restores them after


def _idle_past_the_limit() -> None:
    time.sleep(1.0)


def _watchdog() -> list[str]:
    from tasks.watchdog import fail_stalled_jobs

    return fail_stalled_jobs.apply().get()


def test_a_job_whose_segments_wait_in_a_queue_is_failed_only_once_they_are_lost(farm, face_clip,
                                                                                  stall_after_half_a_second):
    from tasks.leases import client

    broker, records = client(), runtime.records()
    job_id = submit_file(runtime.farm(), face_clip.path, name="waiting.mp4",
                         options={"queue": "gpu", "analyzers": ["detect"]})
    wait_until(lambda: records.get_job(job_id).status == "processing" and broker.llen("gpu"), 120,
               "the job's segments queued on gpu")
    _idle_past_the_limit()
    assert job_id not in _watchdog()
    assert job_view(records, job_id)["status"] == "processing"
    broker.delete(*priority_lists("gpu"))                      # lost, as with a Redis restarted bare
    assert job_id in _watchdog()
    view = job_view(records, job_id)
    assert view["status"] == "failed" and "lost" in view["error"], view


def test_a_task_a_worker_holds_keeps_its_job_alive(tmp_path, stall_after_half_a_second):
    """A farm of its own: the worker holds the task for its countdown, and no other test's
    farm should have a task in hand that long."""
    from tasks.app import app
    from tasks.leases import client

    with private_farm(tmp_path / "farm", workers=1):
        records = runtime.records()
        job_id = records.add_job("held.mp4", "nowhere").id
        held = app.send_task("vidfarm.ingest", (job_id,), countdown=300, ignore_result=True)

        def in_hand() -> bool:
            entries = filter(None, map(unacked_entry, client().hvals(Channel.unacked_key)))
            return any(message is not None and message.task_id == held.id for _key, message in entries)

        wait_until(in_hand, 60, "the worker holding the ingest until its countdown")
        _idle_past_the_limit()
        assert job_id not in _watchdog()
        assert job_view(records, job_id)["status"] == "queued"


def test_a_broker_that_cannot_be_read_fails_no_job(farm, stall_after_half_a_second, monkeypatch, caplog):
    """The job has no task anywhere (nothing queued it), but the watchdog cannot see that."""
    from cli.redis_server import free_port
    from tasks import leases

    records = runtime.records()
    job_id = records.add_job("unseen.mp4", "nowhere").id
    _idle_past_the_limit()
    with monkeypatch.context() as mp:
        unreachable = leases._client(f"redis://127.0.0.1:{free_port()}/0")     # nobody listens
        mp.setattr(leases, "client", lambda: unreachable)
        with caplog.at_level(logging.WARNING, logger="tasks.watchdog"):
            assert job_id not in _watchdog()
    assert "cannot read the broker" in caplog.text
    assert job_view(records, job_id)["status"] == "queued"
    assert job_id in _watchdog()             # seen again: nothing of it in the broker
    assert job_view(records, job_id)["status"] == "failed"


def test_which_queued_tasks_keep_a_job_alive(farm):
    """Its segments, its ingest, and its stitch: the chord's callback once every segment is done
    (Redis's chord sends it then, to wait in the ingest queue like any task). Not a stitch
    looking again for unfinished segments (``wait_s``): it would keep a job whose segments were
    lost alive for ever; nor another kind of task."""
    from fractions import Fraction

    from core.segment_job import SegmentJob, SourceMedia
    from tasks.app import app
    from tasks.leases import client
    from tasks.watchdog import queued_job_ids

    segment = SegmentJob("job-segment", 0, (0, 512), SourceMedia(Fraction(1, 15360), 25.0, 0, 64, 64, False))
    sent = [("vidfarm.segment", (segment.to_message(),), {}), ("vidfarm.ingest", ("job-ingest",), {}),
            ("vidfarm.stitch", ("job-stitch",), {}), ("vidfarm.stitch", ("job-looking-again",), {"wait_s": 4.0}),
            ("vidfarm.erase", ("job-erasure",), {})]
    for name, args, kwargs in sent:
        app.send_task(name, args, kwargs, queue="gpu", ignore_result=True)    # no worker serves gpu here
    try:
        sent_for = {"job-segment", "job-ingest", "job-stitch", "job-looking-again", "job-erasure"}
        # (other tests' tasks a worker holds are in the unacked hash too)
        assert queued_job_ids(client(), ["gpu"]) & sent_for == {"job-segment", "job-ingest", "job-stitch"}
    finally:
        client().delete(*priority_lists("gpu"))
