"""A `vidfarm process` stopped (SIGTERM) says what became of its job: failed, or its results
kept and its video not drawn, in the shared jobs list; taken back when the stop came as it was
submitted; one line when the database refuses the ending. (Split from tests/test_shutdown.py so
that two test processes share these slow tests: each starts a farm of its own.)"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.redis_server import RedisServer
from tests.clipmaker import make_clip
from tests.conftest import child_env
from tests.test_cli import VIDFARM
from tests.test_shutdown import ended_cleanly, stopped_cleanly

STOPPED = "stopped (SIGTERM) before it was finished: the `vidfarm process` that ran it was stopped"


def job_state(data_dir: Path) -> tuple | None:
    """(status, error, results version, video version, video error) of the one job, or None."""
    try:
        with sqlite3.connect(f"file:{data_dir / 'vidfarm.db'}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT j.status, j.error, j.results_version, v.version, v.error FROM jobs j "
                              "LEFT JOIN job_videos v ON v.job_id = j.id").fetchone()
    except sqlite3.OperationalError:     # not made yet
        return None


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """The clips of this file, each made once for the tests that read it (none writes to it)."""
    return tmp_path_factory.mktemp("stopped-process-clips")


@pytest.fixture(scope="module")
def face_throughout_clip(clips):
    """12 s at 960x540 with a face throughout: see process_until."""
    return make_clip(clips / "long.mp4", seconds=12, fps=15, gop=30, size=(960, 540), face_windows=[(0, 12)])


@pytest.fixture(scope="module")
def forty_seconds_clip(clips):
    return make_clip(clips / "forty.mp4", seconds=40, fps=15, gop=30, face_windows=[(0, 40)])


@pytest.fixture(scope="module")
def short_clip(clips):
    return make_clip(clips / "clip.mp4", seconds=4, fps=10, size=(320, 180))


def process_until(tmp_path: Path, clip, moment: str) -> tuple[subprocess.Popen, Path]:
    """`vidfarm process` of ``clip`` (12 s with a face throughout), running until its job is at
    ``moment``: "analysing" (processing) or "drawing" (done, its video not drawn yet); then
    (the command, its data folder). Its 6 segments, each with a face to draw, on one worker,
    large enough (960x540) that drawing them takes about a second even on an idle machine
    (0.95 s measured; a 40 s clip at 480x270 gave 1.1 s for twice the analysis): the command
    checks for a stop every 0.2 s, and a stop that lands after the video is drawn has
    nothing to say."""
    data_dir = tmp_path / "data"
    # To stop it while its video is drawn after the results, none may be drawn ahead: with the
    # GOPs copied, the worker that analysed a segment with faces draws it from its own frames
    # while later ones are analysed, so all but the last is drawn before the results.
    copy = {"VIDFARM_STREAM_COPY": "false"} if moment == "drawing" else {}
    env = child_env(VIDFARM_DATA_DIR=str(data_dir), VIDFARM_SEGMENT_SECONDS="2", **copy)
    run = subprocess.Popen(VIDFARM + ["process", str(clip.path), "--out", str(tmp_path / "out"),
                                      "--workers", "1"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def at_the_moment() -> bool:
        state = job_state(data_dir)
        if moment == "analysing":
            return state is not None and state[0] == "processing"
        return state is not None and state[0] == "done" and (state[3] or 0) < state[2]

    deadline = time.monotonic() + 180
    try:
        while not at_the_moment():
            assert run.poll() is None and time.monotonic() < deadline, f"never {moment}: {job_state(data_dir)}"
            time.sleep(0.05)
    except AssertionError:
        run.kill()
        raise
    return run, data_dir


@pytest.mark.parametrize("moment", ["analysing", "drawing"])
def test_a_job_stopped_with_process_says_so(tmp_path, face_throughout_clip, moment):
    """Before, a `vidfarm process` stopped mid-job left its job "processing" (or its video "being
    drawn") in the shared jobs list, with no worker left to finish it, until an `up`'s watchdog
    failed it 40 minutes later (if one ran on that data folder)."""
    run, data_dir = process_until(tmp_path, face_throughout_clip, moment)
    stopped_cleanly(run, signal.SIGTERM, data_dir)
    status, error, _, _, video_error = job_state(data_dir)
    if moment == "analysing":
        assert (status, error) == ("failed", f"{STOPPED}; submit it again")
    else:       # its results stand; its video will not come
        assert (status, video_error) == ("done", f"the video was {STOPPED}")


def test_a_database_error_while_a_stopped_process_ends_its_job_is_one_line(tmp_path, face_throughout_clip):
    """Ending the job of a stopped `vidfarm process` is a database write; when the database
    refused it, the command printed a raw traceback. Here SQLite itself refuses it (a trigger
    aborts any update that fails a job, as a full disk or a locked database would refuse the
    write): the command says so in one line, naming the job, and exits as stopped, with nothing
    left running."""
    run, data_dir = process_until(tmp_path, face_throughout_clip, "analysing")
    with sqlite3.connect(data_dir / "vidfarm.db", timeout=30) as db:
        db.execute("CREATE TRIGGER refuse_failing BEFORE UPDATE OF status ON jobs WHEN NEW.status = 'failed' "
                   "BEGIN SELECT RAISE(ABORT, 'the test refuses to fail jobs'); END")
    stopped_cleanly(run, signal.SIGTERM, data_dir)
    said = run.stderr.read()
    job_id = re.search(r"its job ([0-9a-f]{32}) ", said)
    assert "Traceback" not in said and job_id, said
    assert said.strip().splitlines()[-1] == (
        f"vidfarm: error: stopped (SIGTERM), but its job {job_id.group(1)} could not be ended and may stay listed "
        "as unfinished until a watchdog fails it: database: the test refuses to fail jobs")
    assert job_state(data_dir)[0] == "processing"


@pytest.mark.parametrize("module", ["services.jobs", "rich.progress"])
def test_a_stop_that_cuts_an_import_short_still_fails_the_job(tmp_path, forty_seconds_clip, module):
    """Under load, the test above once sent its SIGTERM as `vidfarm process`, its job submitted,
    was importing what follows the job (the job view, and with it these modules' ORM tables).
    The import, cut short, was forgotten but its tables were not; failing the job imported it
    again: "Table 'appearances' is already defined", a traceback, exit status 1, the job left
    "processing". Here the signal comes from the command itself, as that import ends. (Those
    two modules now come with core.records, before the stop signals are handled, as does every
    module that declares tables: a stop then ends the command as SIGTERM does, with no job yet.
    The moments here are the imports that still come while the job is followed.)"""
    data_dir = tmp_path / "data"
    env = child_env(VIDFARM_DATA_DIR=str(data_dir), VIDFARM_SEGMENT_SECONDS="2")
    run = subprocess.Popen([sys.executable, "-m", "tests.at_a_moment", module, "SIGTERM", "--", "process",
                            str(forty_seconds_clip.path), "--out", str(tmp_path / "out"), "--workers", "1"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ended_cleanly(run, signal.SIGTERM, data_dir, 180)
    assert "stopped (SIGTERM)" in run.stderr.read()
    assert job_state(data_dir)[:2] == ("failed", f"{STOPPED}; submit it again")


def jobs_left(data_dir: Path) -> tuple[list, list[str]]:
    """(the jobs' rows, the job folders in the blob store)."""
    with sqlite3.connect(f"file:{data_dir / 'vidfarm.db'}?mode=ro", uri=True, timeout=5) as db:
        rows = db.execute("SELECT id, status, error FROM jobs").fetchall()
    return rows, sorted(p.name for p in (data_dir / "blobs" / "jobs").glob("*"))


@pytest.mark.parametrize("moment", ["core.storage:LocalBlobStore.put_file", "core.records:Records.add_job"],
                         ids=["recording-stored", "record-written"])
def test_a_stop_as_the_job_is_submitted_leaves_no_job_behind(tmp_path, short_clip, moment):
    """A stop that landed in the submit, its record written and its task not yet sent, left the
    job "queued" for good in the shared jobs list (its embedded farm gone, nothing would run
    it); one that landed once the recording was copied into the store left that copy there,
    with no job to find or delete it by. No worker had begun the job: it is taken back."""
    data_dir = tmp_path / "data"
    run = subprocess.Popen([sys.executable, "-m", "tests.at_a_moment", moment, "SIGTERM", "--", "process",
                            str(short_clip.path), "--out", str(tmp_path / "out"), "--workers", "1"],
                           env=child_env(VIDFARM_DATA_DIR=str(data_dir)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ended_cleanly(run, signal.SIGTERM, data_dir, 180)
    assert "stopped (SIGTERM)" in run.stderr.read()
    assert jobs_left(data_dir) == ([], [])


def test_a_stop_as_the_job_is_submitted_to_a_running_farm_leaves_no_job_behind(tmp_path, short_clip):
    """With REDIS_URL, the farm runs on after the command and so does a job submitted to it;
    but one whose record was written and whose task was never sent stayed "queued" in its
    jobs list for good."""
    data_dir = tmp_path / "data"
    with RedisServer(tmp_path / "redis") as redis:      # a farm's broker, its workers away
        run = subprocess.run([sys.executable, "-m", "tests.at_a_moment", "core.records:Records.add_job", "SIGTERM",
                              "--", "process", str(short_clip.path), "--out", str(tmp_path / "out")],
                             env=child_env(VIDFARM_DATA_DIR=str(data_dir), REDIS_URL=redis.url),
                             capture_output=True, text=True, timeout=120)
    assert run.returncode == 128 + signal.SIGTERM and "stopped (SIGTERM)" in run.stderr, run.stderr
    assert jobs_left(data_dir) == ([], [])
