"""Faults with real processes: a worker killed in the middle of a segment."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path


from tasks import runtime
from tasks.jobs import output_key
from tasks.submit import submit_file
from tests.clipmaker import count_video_frames, make_clip
from tests.conftest import wait_for_job


def pool_children(pid: int) -> list[int]:
    """The prefork pool processes of a Celery worker (its direct children)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def test_segment_survives_its_worker_being_killed(farm, tmp_path):
    clip = make_clip(tmp_path / "long.mp4", seconds=12, fps=15, gop=15)
    job_id = submit_file(clip.path, name="long.mp4")
    records = runtime.records()
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline:
        busy = [s for s in records.segments(job_id) if s.status == "processing"]
        if busy:
            worker_name = busy[0].worker.split("@")[0]
            process = next(p for p in farm.processes if p.name == worker_name)
            children = pool_children(process.popen.pid)
            if children:
                victim = (busy[0].index, children[0])
        time.sleep(0.05)
    assert victim, "no segment was seen processing"
    os.kill(victim[1], signal.SIGKILL)      # the pool child dies mid-segment; the worker lives

    view = wait_for_job(job_id, timeout=240)
    assert view["status"] == "done", view["error"]
    segment = records.get_segment(job_id, victim[0])
    assert segment.attempts >= 2 and segment.status == "done"   # redelivered and re-run
    results = json.loads(runtime.store().local_path(output_key(job_id, "results.json")).read_text())
    assert [f["index"] for f in results["frames"]] == list(range(clip.frames))   # no duplicates
    assert count_video_frames(runtime.store().local_path(output_key(job_id, "annotated.mp4"))) == clip.frames
    assert not farm.dead_processes()
