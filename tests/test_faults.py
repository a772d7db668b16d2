"""Faults with real processes: a worker killed mid-segment or mid-stitch, a segment that
always fails, Redis restarted in the middle of a job (with and without persistence), a web
process killed in the middle of a submit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.models import aware
from core.storage import output_key
from services import runtime
from services.jobs import job_view
from services.submit import submit_file
from tests.clipmaker import count_video_frames, make_clip
from tests.conftest import child_env, private_farm, use_farm_environment, wait_for_job
from tests.waiting import wait_until


def pool_children(pid: int) -> list[int]:
    """The prefork pool processes of a Celery worker (its direct children)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


KILL_ATTEMPTS = 3   # a kill that came after its segment ended (a loaded machine) is tried on another job


def kill_a_pool_child_at_work(farm, job_id: str) -> tuple[int, float]:
    """SIGKILL the pool process of the worker seen running one of the job's segments; returns
    (that segment's index, the time of the kill)."""
    records = runtime.records()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        busy = [s for s in records.segments(job_id) if s.status == "processing"]
        if busy:
            worker_name = busy[0].worker.split("@")[0]
            process = next(p for p in farm.processes if p.name == worker_name)
            children = pool_children(process.popen.pid)
            if children:
                os.kill(children[0], signal.SIGKILL)    # the pool child dies mid-segment; the worker lives
                return busy[0].index, time.time()
        time.sleep(0.05)
    raise AssertionError("no segment was seen processing")


def test_segment_survives_its_worker_being_killed(farm, tmp_path):
    """The segment whose pool process was killed is redelivered and run again. A segment seen
    processing can end in the moment before the kill (its record says so: done once, before
    the kill): that job is waited for and another submitted, as in the stitch's test below."""
    clip = make_clip(tmp_path / "long.mp4", seconds=12, fps=15, gop=15)
    records = runtime.records()
    for attempt in range(KILL_ATTEMPTS):
        job_id = submit_file(runtime.farm(), clip.path, name=f"long-{attempt}.mp4")
        index, killed_at = kill_a_pool_child_at_work(farm, job_id)
        view = wait_for_job(job_id, timeout=240)
        assert view["status"] == "done", view["error"]
        segment = records.get_segment(job_id, index)
        if not (segment.attempts == 1 and aware(segment.finished_at).timestamp() <= killed_at):
            break
    assert segment.attempts >= 2 and segment.status == "done"   # redelivered and re-run
    print(f"\nrecovery: segment taken again {aware(segment.started_at).timestamp() - killed_at:.1f} s after its "
          f"pool process was killed; job done {time.time() - killed_at:.1f} s after (job {attempt + 1})")
    results = json.loads(runtime.store().local_path(output_key(job_id, "results.json")).read_text())
    assert [f["index"] for f in results["frames"]] == list(range(clip.frames))   # no duplicates
    assert count_video_frames(runtime.store().local_path(output_key(job_id, "annotated.mp4"))) == clip.frames
    assert not farm.dead_processes()


def test_poison_segment_fails_its_job_after_retries_and_others_finish(tmp_path):
    """A segment that always fails: its job ends failed with the message; another job finishes."""
    with private_farm(tmp_path / "farm", VIDFARM_PLUGINS="tests.poison_plugin") as farm:
        clip = make_clip(tmp_path / "clip.mp4", seconds=3, fps=15, gop=15, face_windows=[])
        poisoned = submit_file(runtime.farm(), clip.path, name="poisoned.mp4", options={"analyzers": ["detect", "poison"]})
        healthy = submit_file(runtime.farm(), clip.path, name="healthy.mp4")
        view = wait_for_job(poisoned, timeout=180)
        assert view["status"] == "failed"
        assert "poisoned frame" in view["error"] and "\n" not in view["error"]
        assert max(s.attempts for s in runtime.records().segments(poisoned)) == 1 + runtime.settings().segment_retries
        assert wait_for_job(healthy, timeout=180)["status"] == "done"
        assert not farm.dead_processes()


# VIDFARM_STALL_AFTER_S in the Redis restart: short, so the job whose tasks were lost is failed
# soon after (the watchdog runs only in that case: the job with AOF is never handed to it).
STALL_S = 2


@pytest.mark.parametrize("persistent", [True, False], ids=["with AOF", "without AOF"])
def test_redis_restarted_in_the_middle_of_a_job(tmp_path, persistent):
    """With AOF the job completes; without, its tasks are lost and the watchdog fails it with
    a reason instead of leaving it hanging."""
    from tasks.watchdog import fail_stalled_jobs

    with private_farm(tmp_path / "farm", workers=1, appendonly=persistent, VIDFARM_STALL_AFTER_S=str(STALL_S)) as farm:
        clip = make_clip(tmp_path / "clip.mp4", seconds=12, fps=15, gop=15, face_windows=[])
        job_id = submit_file(runtime.farm(), clip.path, name="clip.mp4")
        deadline = time.monotonic() + 120
        while job_view(runtime.records(), job_id)["chunks_done"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        farm.redis.stop()                     # SIGTERM: with AOF, Redis writes everything first
        farm.redis.start()                    # same port, same folder
        restarted_at = time.monotonic()
        if persistent:
            view = wait_for_job(job_id, timeout=240)
            assert view["status"] == "done", view["error"]
            results = json.loads(runtime.store().local_path(output_key(job_id, "results.json")).read_text())
            assert len(results["frames"]) == clip.frames
            print(f"\nrecovery: job done {time.monotonic() - restarted_at:.1f} s after Redis restarted")
        else:
            deadline = time.monotonic() + 240
            while job_view(runtime.records(), job_id)["status"] not in ("done", "failed"):
                assert time.monotonic() < deadline, "the job hung"
                fail_stalled_jobs.apply()
                time.sleep(0.2)
            view = job_view(runtime.records(), job_id)
            assert view["status"] == "failed" and "lost" in view["error"]
            print(f"\nrecovery: job failed with its reason {time.monotonic() - restarted_at:.1f} s after Redis "
                  f"restarted (stall limit {STALL_S} s)")
        assert not farm.dead_processes()


def test_a_web_process_killed_mid_submit_leaves_a_job_the_watchdog_fails(tmp_path, monkeypatch):
    """A web process SIGKILLed in the middle of a submit, right after the store took the
    recording, before the job was queued. The recording was stored before the job's record
    was written: it stayed in the store under no job, a copy of people's faces that nothing
    would ever find, fail or delete. Now the record comes first: the job shows as queued, beat's
    watchdog fails it (nothing runs it), and deleting it deletes the recording."""
    from cli.redis_server import RedisServer
    from services.submit import delete_job
    from tasks.watchdog import fail_stalled_jobs

    clip = make_clip(tmp_path / "clip.mp4", seconds=4, fps=10, size=(320, 180))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with RedisServer(tmp_path / "redis") as redis:
        monkeypatch.setenv("VIDFARM_STALL_AFTER_S", "0.5")
        use_farm_environment(monkeypatch, redis.url, data_dir)
        killed = subprocess.run([sys.executable, "-m", "tests.killed_upload", "core.storage:LocalBlobStore.move_file",
                                 "SIGKILL", str(clip.path)], env=child_env(REDIS_URL=redis.url),
                                capture_output=True, text=True, timeout=120)
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
        stored = [p.relative_to(data_dir / "blobs" / "jobs") for p in (data_dir / "blobs" / "jobs").rglob("*")
                  if p.is_file()]
        assert len(stored) == 1 and stored[0].name == "source", stored
        job_id = stored[0].parts[0]
        assert (job_view(runtime.records(), job_id) or {}).get("status") == "queued", "its recording is under no job"
        assert wait_until(lambda: fail_stalled_jobs.apply().get(), 30, "the watchdog failing the job") == [job_id]
        view = job_view(runtime.records(), job_id)
        assert view["status"] == "failed" and "submit it again" in view["error"], view
        assert delete_job(runtime.farm(), job_id)
        assert not (data_dir / "blobs" / "jobs" / job_id).exists()


def _done_with_beats_watchdog(job_id: str, deadline: float) -> dict:
    """Until the job is done and drawn. The kill can also hit a drawing task the stitch had just
    queued, in the moment before it took its lease: beat's watchdog draws such a video again
    (``tasks.render.redraw_stale_videos``); this farm has no beat, so the test does its part."""
    from datetime import datetime, timedelta, timezone

    from tasks.render import redraw_stale_videos

    while True:
        try:
            return wait_for_job(job_id, timeout=20)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
            redraw_stale_videos(datetime.now(timezone.utc) - timedelta(seconds=20))


STITCH_ATTEMPTS = 5    # a missed stitch costs one more job (seconds); every one missed, a failure


def kill_the_stitch(farm, job_id: str) -> list[int]:
    """SIGKILL every pool process once the job is seen ``stitching`` (every segment done, so
    the only task running anywhere is the stitch); [] when the job ends first. The stitch
    only reads the segments' analyses and publishes (the drawing is ``tasks.render``'s), a
    fraction of a second: a poll on a loaded machine can miss it, and then sees the job end."""
    from core.models import ENDED_STATES

    records = runtime.records()
    while True:
        status = records.get_job(job_id).status
        if status == "stitching":
            killed = []
            for process in farm.processes:
                for child in pool_children(process.popen.pid):
                    os.kill(child, signal.SIGKILL)
                    killed.append(child)
            return killed
        if status in ENDED_STATES:
            return []
        time.sleep(0.01)


def test_stitch_crashing_once_is_retried(farm, tmp_path):
    """The process running the stitch dies; the stitch runs again and the job completes (acks_late
    redelivers it, and the chord's errback sends it again: either alone suffices). A job whose
    stitch the poll missed is waited for and another submitted: a job that ended unseen is a
    miss of the poll, not of the farm (waiting on for 240 s, as this did, only failed later)."""
    clip = make_clip(tmp_path / "long.mp4", seconds=24, fps=15, size=(640, 360), gop=15)
    killed = []
    for attempt in range(STITCH_ATTEMPTS):
        job_id = submit_file(runtime.farm(), clip.path, name=f"long-{attempt}.mp4", options={"analyzers": ["detect"]})
        killed = kill_the_stitch(farm, job_id)
        if killed:
            break
        # Drawn before the next job, so the next kill meets that job's stitch alone.
        assert wait_for_job(job_id)["status"] == "done"
    assert killed, f"the stitch was never seen running in {STITCH_ATTEMPTS} jobs"
    killed_at = time.monotonic()
    view = _done_with_beats_watchdog(job_id, killed_at + 240)
    assert view["status"] == "done", view["error"]
    print(f"\nrecovery: job done {time.monotonic() - killed_at:.1f} s after the stitch's process was killed "
          f"(job {attempt + 1} of the attempts)")
    results = json.loads(runtime.store().local_path(output_key(job_id, "results.json")).read_text())
    assert [f["index"] for f in results["frames"]] == list(range(clip.frames))
    assert count_video_frames(runtime.store().local_path(output_key(job_id, "annotated.mp4"))) == clip.frames
    assert not farm.dead_processes()


def test_a_chord_failure_after_every_segment_did_its_work_still_stitches(farm, face_clip):
    """The chord's errback reads the records: every segment done (a result Celery could not
    store, say) means nothing is lost, and the stitch runs; otherwise the job fails."""
    from tasks.jobs import job_failed

    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4", options={"analyzers": ["detect"]})
    assert wait_for_job(job_id)["status"] == "done"
    version = job_view(runtime.records(), job_id)["results_version"]
    runtime.records().set_job(job_id, status="processing")
    job_failed(None, ConnectionError("Redis went away"), None, job_id)
    view = wait_for_job(job_id)
    assert view["status"] == "done" and view["results_version"] == version + 1, view
    runtime.records().set_job(job_id, status="processing")
    runtime.records().set_segment(job_id, 1, status="processing")
    job_failed(None, ConnectionError("Redis went away"), None, job_id)
    view = job_view(runtime.records(), job_id)
    assert view["status"] == "failed" and "Redis went away" in view["error"]


def test_an_early_stitch_looks_again_less_often_until_the_job_ends(farm):
    """Called before every segment is done (a redelivered segment counted twice by the chord),
    the stitch re-queues itself, backing off to once a minute; it never fails a job whose
    segments may still come (queued behind others, or awaiting redelivery): the watchdog
    ends a job whose records stop changing, and the re-queued stitches then end quietly."""
    from tasks.jobs import MAX_STITCH_WAIT_S, stitch
    from tasks.watchdog import fail_stalled_jobs

    records = runtime.records()
    job_id = records.add_job("early.mp4", "nowhere").id
    records.record_split(job_id, [{"index": i, "start_frame": 10 * i, "frames": 10,
                                   "pts": list(range(10 * i, 10 * i + 10)), "end_pts": 10 * i + 10}
                                  for i in range(3)])
    records.set_segment(job_id, 0, status="done")
    records.set_job(job_id, status="processing")
    queued = []
    with pytest.MonkeyPatch.context() as mp:
        send = stitch.apply_async
        mp.setattr(stitch, "apply_async", lambda *a, **kw: queued.append((a, kw)) or send(*a, **kw))
        assert stitch(job_id) == {"waiting": [1, 2]}
        assert queued[-1] == (((job_id,), {"wait_s": 4.0}), {"countdown": 2.0})
        assert stitch(job_id, wait_s=48.0) == {"waiting": [1, 2]}
        assert queued[-1] == (((job_id,), {"wait_s": MAX_STITCH_WAIT_S}), {"countdown": 48.0})
    assert job_view(records, job_id)["status"] == "processing"       # waiting never fails the job
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDFARM_STALL_AFTER_S", "0.5")
        from core.settings import get_settings
        get_settings.cache_clear()
        try:
            time.sleep(1.0)
            fail_stalled_jobs.apply()
        finally:
            get_settings.cache_clear()
    view = job_view(records, job_id)
    assert view["status"] == "failed" and "\n" not in view["error"]
    assert stitch(job_id) == {"skipped": True}     # the re-queued ones end quietly on the farm


def test_a_recording_the_broker_cannot_take_leaves_no_job_behind(tmp_path):
    """Its Redis unreachable, a submission (an upload, `vidfarm process`) used to leave its job
    "queued" for ever in the list, and the recording's copy in the store."""
    from core.models import Job
    from cli.redis_server import free_port
    from tests.conftest import restore_environment, use_farm_environment

    clip = make_clip(tmp_path / "walk.mp4", seconds=2, fps=10)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    try:
        with pytest.MonkeyPatch.context() as mp:
            use_farm_environment(mp, f"redis://127.0.0.1:{free_port()}/0", data_dir)     # nobody listens
            with pytest.raises(Exception, match="Connection refused"):
                submit_file(runtime.farm(), clip.path, name="walk.mp4")
            with runtime.records().session() as s:
                assert s.query(Job).count() == 0
            assert runtime.store().list_keys("jobs/") == []
    finally:
        restore_environment()


def test_a_rename_the_broker_cannot_hear_of_is_made_all_the_same(tmp_path):
    """A rename queues the re-identification of stored recordings at once; with the broker away
    the rename (already written) must not answer as failed: beat's next pass re-identifies."""
    from cli.redis_server import free_port
    from services import gallery
    from tests.conftest import restore_environment, use_farm_environment

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    try:
        with pytest.MonkeyPatch.context() as mp:
            use_farm_environment(mp, f"redis://127.0.0.1:{free_port()}/0", data_dir)     # nobody listens
            runtime.records().add_embeddings("Ada", [bytes(2048)], ["ada.jpg"], [None])
            assert gallery.rename_identity(runtime.farm(), "Ada", "Ada L") == "Ada L"
            gallery.set_watchlist(runtime.farm(), "Ada L", True)
            assert [(i["name"], i["watchlist"]) for i in runtime.records().identities()] == [("Ada L", True)]
    finally:
        restore_environment()
