"""The embedded farm's workers come from one fork server (tasks/forkserver.py): what it checks
before any worker exists, what happens when it dies, and a farm stopped while it still loads."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.clipmaker import make_clip
from tests.conftest import child_env, private_farm
from tests.test_cli import VIDFARM, processes_with_env


def test_a_bad_analyzer_config_is_one_line_and_starts_no_worker_and_no_job(tmp_path):
    """A built-in analyzer's bad config is a settings error as the settings load (the fork
    server checks again, for plugins' configs, before it forks anything): `vidfarm process` says
    why in one line, with status 2, forks no worker, and leaves no job and nothing running."""
    clip = make_clip(tmp_path / "clip.mp4", seconds=1, fps=15, size=(320, 180))
    data_dir = tmp_path / "data"
    env = child_env(VIDFARM_DATA_DIR=str(data_dir), VIDFARM_ANALYZER_CONFIG__THERMAL__PERCENTILE="10")
    run = subprocess.run(VIDFARM + ["process", str(clip.path), "--out", str(tmp_path / "out")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("vidfarm: error: bad setting analyzer_config.thermal.percentile: "), run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    log = data_dir / "logs" / "forkserver.log"
    assert not log.exists() or "forked" not in log.read_text(), "a worker was started"
    assert not (data_dir / "blobs" / "jobs").exists() or not any((data_dir / "blobs" / "jobs").iterdir())
    assert processes_with_env(f"VIDFARM_DATA_DIR={data_dir}") == []


def test_workers_forked_from_the_server_end_with_it_and_come_back(tmp_path):
    """A SIGKILLed fork server takes its workers down with it (no worker outlives a farm killed
    outright), and the farm's supervisor forks them again from a new server."""
    from tasks.app import app

    with private_farm(tmp_path, workers=1) as farm:
        farm.wait_ready(app)
        worker = farm.processes[0]
        old_pid, server = worker.popen.pid, farm.forkserver.popen
        assert psutil.Process(old_pid).ppid() == server.pid
        os.kill(server.pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while worker.alive:
            assert time.monotonic() < deadline, "the worker outlived its fork server"
            time.sleep(0.2)
        assert farm.supervise() == []
        farm.wait_ready(app)
        assert worker.popen.pid != old_pid and farm.forkserver.popen.pid != server.pid
        assert psutil.Process(worker.popen.pid).ppid() == farm.forkserver.popen.pid


def test_a_farm_stopped_while_its_fork_server_loads_leaves_nothing(tmp_path):
    """Stopping does not wait for the server's imports, and no worker is forked after the stop."""
    from cli.farm import EmbeddedFarm

    farm = EmbeddedFarm(tmp_path, workers=2)
    farm.start()
    farm.stop()
    time.sleep(1)    # what a server killed mid-load would have forked by now
    assert processes_with_env(f"VIDFARM_DATA_DIR={tmp_path}") == []
    assert "forked" not in (tmp_path / "logs" / "forkserver.log").read_text()


def test_a_stop_signal_while_a_worker_pid_is_read_leaves_the_farm_able_to_stop(tmp_path):
    """A stop signal (``cli.signals``: Stopped, raised where the main thread is) that lands
    while the farm reads a new worker's pid from the fork server (the server stopped here, so
    that it does; `vidfarm up` reads them as it starts): before, the worker was taken off the
    waiting list and its answer lost, and stopping the farm raised a TypeError (os.kill(None))
    half-way, the rest of its processes left to the orphan guards, the exit status 1."""
    import threading

    from cli.farm import EmbeddedFarm
    from cli.signals import Stopped, stop_on_signals

    farm = EmbeddedFarm(tmp_path, workers=1)
    with stop_on_signals():
        try:
            farm.start().started()
            server = farm.forkserver.popen.pid
            os.kill(server, signal.SIGSTOP)       # it answers nothing until SIGCONT
            worker, second = farm.add_worker(), farm.add_worker()
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
            threading.Timer(0.8, os.kill, (server, signal.SIGCONT)).start()
            with pytest.raises(Stopped):
                worker.popen.pid  # noqa: B018  (blocks on its answer)
            time.sleep(1)      # past the SIGCONT
            # Each still gets its own pid: the answer the stop cut short was not lost, nor given
            # to the next worker in line.
            pids = [worker.popen.pid, second.popen.pid]
            forked = [int(pid) for pid in re.findall(r"forked the worker logging to \S+ \(pid (\d+)\)", farm.forkserver.log_path.read_text())]
            assert pids == forked[-2:], (pids, forked)
        finally:
            farm.stop()
    deadline = time.monotonic() + 5
    while processes_with_env(f"VIDFARM_DATA_DIR={tmp_path}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with_env(f"VIDFARM_DATA_DIR={tmp_path}") == []


def test_a_database_it_may_not_upgrade_ends_the_server_with_the_reason_and_leaves_nothing(tmp_path):
    """A child of the fork server brings the schema up to date beside its imports: a database
    of an older vidfarm that it may not upgrade (VIDFARM_DB_AUTO_UPGRADE=false) ends the server
    before any worker, with the reason as its answer (the command's one line; it was "the
    worker fork server exited with status 1 (see ...)") and in its log, and leaves no child behind."""
    from core.processes import FarmStartError, ForkServer
    from tests.test_migrations import build_0_1

    data_dir = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'old.db'}"
    build_0_1(url).dispose()
    env = child_env(VIDFARM_DATA_DIR=str(data_dir), DATABASE_URL=url, VIDFARM_DB_AUTO_UPGRADE="false",
                    VIDFARM_THREADS="1")
    server = ForkServer(env, data_dir / "logs" / "forkserver.log")
    try:
        with pytest.raises(FarmStartError, match=r"^the database is at revision none, this vidfarm needs "
                                                 r".*: run `vidfarm db upgrade` first$"):
            server.ready()
    finally:
        server.close()
    log = (data_dir / "logs" / "forkserver.log").read_text()
    assert "SchemaOutOfDate" in log and "vidfarm db upgrade" in log, log[-3000:]     # the child's attempt
    assert processes_with_env(f"VIDFARM_DATA_DIR={data_dir}") == []



# Starts a group leader, prints its pid and exits: the leader is nobody's child here.
STRANGER = """
import subprocess
print(subprocess.Popen(["sleep", "30"], start_new_session=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL).pid)
"""


def test_the_server_kills_only_its_own_workers_when_a_pid_has_gone_to_another_process():
    """A worker's pid, reaped the moment it ended, may be another process's by the time the farm
    dies: a group leader the server never forked must survive ``kill_orphans``."""
    from tasks.forkserver import kill_orphans, running

    stranger = int(subprocess.run([sys.executable, "-c", STRANGER], capture_output=True, text=True,
                                  check=True, timeout=30).stdout)
    own = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert os.getpgid(stranger) == stranger
        kill_orphans([stranger, own.pid])
        assert own.wait(5) == -signal.SIGKILL
        time.sleep(0.2)
        assert psutil.Process(stranger).status() != psutil.STATUS_ZOMBIE, "another process's group was killed"
        assert not running(stranger)
    finally:
        own.kill()
        os.kill(stranger, signal.SIGKILL)


def test_forked_workers_leave_no_temporary_folder_behind(tmp_path):
    """A forked worker ends with os._exit, which skips the hook removing its pool's "pymp-*"
    folder: one was left in TMPDIR by every worker ever started (weeks of autoscaling)."""
    from tasks.app import app

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with private_farm(tmp_path / "data", workers=1, TMPDIR=str(tmp)) as farm:
        farm.wait_ready(app)
        worker = farm.processes[0]
        worker.request_stop()       # Celery's warm shutdown: the worker ends as it would when scaled down
        deadline = time.monotonic() + 60
        while worker.alive:
            assert time.monotonic() < deadline, "the worker did not stop"
            time.sleep(0.2)
        worker.restart()            # as the supervisor starts a dead worker again
        farm.wait_ready(app)
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith(("pymp-", "vidfarm-worker-"))) == []
