"""A worker lost whole (its main process and pool child SIGKILLed, as an OOM kill or a pod
deleted without grace): its segment is re-run by another worker within the lease time, not
Redis's visibility timeout, and counted once. Real Celery workers, real Redis, real video."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from core.models import aware
from services import runtime
from core.storage import output_key
from tasks.leases import stitch_without_chord
from services.submit import submit_file
from tests.clipmaker import count_video_frames, make_clip
from tests.conftest import child_env, pointed_at, wait_for_job

# Short, so the test is quick; VIDFARM_TEST_LEASE_S=30 measures the default (docs/robustness.md).
LEASE_S = os.environ.get("VIDFARM_TEST_LEASE_S", "5")
# 3 segments of 6 s (90 frames), the detector on every frame (the motion gate makes a quiet
# segment take a fraction of a second on an idle machine): long enough that a kill seen
# mid-segment lands inside it. Three, one more than the workers, so the survivor has work of
# its own besides the segment it takes over; each more is only analysis to wait for.
LONG_SEGMENTS = {"VIDFARM_SEGMENT_SECONDS": "6", "VIDFARM_MIN_SEGMENTS": "3", "VIDFARM_MOTION_GATE": "false"}
CLIP_S = 18
LEASED_FARM = {"VIDFARM_SEGMENT_LEASE_S": LEASE_S, **LONG_SEGMENTS}


@pytest.fixture(scope="module")
def started_leased_farm(tmp_path_factory):
    """One private farm with short leases for the tests that kill one of its workers: a farm
    takes seconds to start, a worker forked again from its fork server a fraction of that."""
    from cli.farm import EmbeddedFarm

    with EmbeddedFarm(tmp_path_factory.mktemp("leased-farm"), workers=2, extra_env=LEASED_FARM) as farm:
        yield farm


@pytest.fixture
def leased_farm(started_leased_farm):
    """That farm as a test of its own would find it: both workers alive (the one an earlier
    test killed started again, same name), no lease held, this process pointed at it."""
    from tasks.app import app
    from tasks.leases import HOLDERS, client

    farm = started_leased_farm
    for process in farm.processes:
        if not process.alive:
            process.restart()
    with pointed_at(farm, **LEASED_FARM):
        farm.wait_ready(app)
        deadline = time.monotonic() + 60
        while client().hlen(HOLDERS):     # an earlier test's work still winding down
            assert time.monotonic() < deadline, client().hgetall(HOLDERS)
            time.sleep(0.1)
        yield farm


def kill_whole(pid: int) -> None:
    """SIGKILL a worker's process group: its main process and its pool child, at once."""
    os.killpg(pid, signal.SIGKILL)


def busy_segment(job_id: str, timeout: float = 120.0):
    """The first segment of the job seen processing (after its worker took it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Only one that started just now: a kill then lands well inside it (one seen near its
        # end could be done before the kill, and nothing would be lost to re-run).
        busy = [s for s in runtime.records().segments(job_id)
                if s.status == "processing" and time.time() - aware(s.started_at).timestamp() < 0.3]
        if busy:
            return busy[0]
        time.sleep(0.05)
    raise AssertionError("no segment was seen processing")


def test_a_killed_workers_segment_is_rerun_by_another_within_the_lease(leased_farm, tmp_path):
    farm = leased_farm
    clip = make_clip(tmp_path / "clip.mp4", seconds=CLIP_S, fps=15, gop=15, size=(960, 540))
    job_id = submit_file(runtime.farm(), clip.path, name="clip.mp4")
    segment = busy_segment(job_id)
    victim = next(p for p in farm.processes if p.name == segment.worker.split("@")[0])
    kill_whole(victim.popen.pid)
    killed_at = time.time()

    view = wait_for_job(job_id, timeout=120)      # the visibility timeout is 35 min
    assert view["status"] == "done", view["error"]
    again = runtime.records().get_segment(job_id, segment.index)
    assert again.status == "done" and again.attempts >= 2
    assert again.worker.split("@")[0] != victim.name     # the other worker did it
    results = json.loads(runtime.store().local_path(output_key(job_id, "results.json")).read_text())
    assert [f["index"] for f in results["frames"]] == list(range(clip.frames))   # once each
    assert count_video_frames(runtime.store().local_path(output_key(job_id, "annotated.mp4"))) == clip.frames
    assert not stitch_without_chord(job_id)     # stitched: a re-analysis has its whole chord again
    # Nobody restarted it, and no beat runs: the other worker's own timer reclaimed the work.
    assert farm.dead_processes() == [victim.name]
    print(f"\nrecovery: segment {segment.index} taken again {aware(again.started_at).timestamp() - killed_at:.1f} s"
          f" and done {aware(again.finished_at).timestamp() - killed_at:.1f} s after its worker was killed "
          f"(lease {LEASE_S} s); job done {time.time() - killed_at:.1f} s after")


def test_a_worker_killed_before_its_task_started_has_it_rerun_within_the_lease(leased_farm, tmp_path):
    """The gap between a worker fetching a task from Redis and the task taking its lease: the
    worker takes the lease on receipt. Here the victim's pool process is stopped, so what the
    victim receives never starts; then the victim is killed whole."""
    from tasks.leases import HOLDERS, client
    from tests.test_faults import pool_children

    farm = leased_farm
    victim = next(p for p in farm.processes if p.name.startswith("worker"))
    stopped = pool_children(victim.popen.pid)
    assert stopped
    for child in stopped:
        os.kill(child, signal.SIGSTOP)      # receives tasks, runs none
    clip = make_clip(tmp_path / "clip.mp4", seconds=CLIP_S, fps=15, gop=15, size=(480, 270))
    job_id = submit_file(runtime.farm(), clip.path, name="clip.mp4")
    deadline = time.monotonic() + 120
    while not (held := [name.decode() for name, holder in client().hgetall(HOLDERS).items()
                        if json.loads(holder)["worker"].startswith(f"{victim.name}@")]):
        assert time.monotonic() < deadline, "the victim took no lease of a task it received"
        time.sleep(0.05)
    kill_whole(victim.popen.pid)
    killed_at = time.time()

    view = wait_for_job(job_id, timeout=120)      # the visibility timeout is 35 min
    assert view["status"] == "done", view["error"]
    results = json.loads(runtime.store().local_path(output_key(job_id, "results.json")).read_text())
    assert [f["index"] for f in results["frames"]] == list(range(clip.frames))   # once each
    assert count_video_frames(runtime.store().local_path(output_key(job_id, "annotated.mp4"))) == clip.frames
    assert farm.dead_processes() == [victim.name]
    print(f"\nrecovery: {held[0]}, received but not started by the killed worker: job done "
          f"{time.time() - killed_at:.1f} s after the kill (lease {LEASE_S} s)")


def forked_worker_pid(log_dir: Path, name: str) -> int | None:
    """The pid of worker ``name``'s Celery main process, as the farm's fork server logged it
    when it forked the worker (a forked worker's command line is the fork server's)."""
    log = log_dir / "forkserver.log"
    forked = re.findall(rf"forked the worker logging to \S*/{re.escape(name)}\.log \(pid (\d+)\)",
                        log.read_text() if log.exists() else "")
    return int(forked[-1]) if forked else None


def processing_segment(db: Path) -> tuple[str, int, str] | None:
    """(job id, index, worker) of a segment processing now, read with a fresh connection each time (the
    command creates and migrates the database as this looks: a connection of the records kept
    from before then saw no segment at all)."""
    if not db.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            row = con.execute('SELECT job_id, "index", worker FROM segments WHERE status = \'processing\' '
                              'LIMIT 1').fetchone()
    except sqlite3.OperationalError:       # no such table yet
        return None
    return tuple(row) if row else None


def test_process_restarts_a_killed_worker_and_ends_frame_exact(tmp_path):
    """`vidfarm process --workers 2`: SIGKILL one worker's main process mid-job; the command's
    supervisor restarts it, hands its segment to a live worker and the job ends frame-exact."""
    from core.records import open_records
    from core.settings import Settings

    clip = make_clip(tmp_path / "walk.mp4", seconds=CLIP_S, fps=15, gop=15, size=(960, 540))
    data_dir = tmp_path / "data"
    env = child_env(VIDFARM_DATA_DIR=str(data_dir), **LONG_SEGMENTS)
    run = subprocess.Popen([sys.executable, "-m", "cli.main", "process", str(clip.path), "--out",
                            str(tmp_path / "out"), "--workers", "2"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        victim = busy = None
        while victim is None:
            assert time.monotonic() < deadline and run.poll() is None, "no segment was seen processing"
            time.sleep(0.1)
            busy = processing_segment(data_dir / "vidfarm.db")
            if busy:
                victim = forked_worker_pid(data_dir / "logs", busy[2].split("@")[0])
        os.kill(victim, signal.SIGKILL)     # the main process; its pool child follows it (PDEATHSIG)
        killed_at, killed_wall = time.monotonic(), time.time()
        out, err = run.communicate(timeout=240)     # the visibility timeout is 35 min
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [f["index"] for f in results["frames"]] == list(range(clip.frames))
    assert count_video_frames(tmp_path / "out" / "annotated.mp4") == clip.frames
    log = (data_dir / "logs" / f"{busy[2].split('@')[0]}.log").read_text()
    assert "restarted" in log
    again = open_records(Settings(data_dir=data_dir).sqlalchemy_url, upgrade=False).get_segment(busy[0], busy[1])
    assert again.attempts >= 2     # the killed one ran again
    print(f"\nrecovery: segment {again.index} taken again {aware(again.started_at).timestamp() - killed_wall:.1f} s "
          f"after its worker was killed; vidfarm process ended {time.monotonic() - killed_at:.1f} s after it")
