"""`vidfarm up` and `vidfarm process` stop every process they started on SIGTERM, SIGINT or
SIGHUP, in the foreground or the background, and leave no port held; killed outright (SIGKILL),
they (and `vidfarm watch`) leave nothing running either. (What a stopped `vidfarm process` does
with its job: tests/test_shutdown_process.py, a file of its own so that two test processes
share these slow tests, each starting a farm of its own.)"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from cli.redis_server import free_port
from tests.clipmaker import make_clip
from tests.conftest import child_env
from tests.net import wait_for_http
from tests.test_cli import VIDFARM, processes_with_env

STOP_WITHIN_S = 30


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ignore_sigint():
    """What a shell does to a command started in the background with `&`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def working_in(folder: Path) -> list[int]:
    """PIDs whose working directory is in ``folder`` (redis-server runs in its data folder, and
    writes its title over its environment, where processes_with_env would look)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cwd").resolve().is_relative_to(folder):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def stopped_cleanly(command: subprocess.Popen, sig: int, data_dir: Path) -> None:
    command.send_signal(sig)
    ended_cleanly(command, sig, data_dir, STOP_WITHIN_S)


def ended_cleanly(command: subprocess.Popen, sig: int, data_dir: Path, within_s: float) -> None:
    """The command, stopped by ``sig``, exits with 128 + sig within ``within_s`` and leaves nothing running."""
    try:
        code = command.wait(within_s)
    except subprocess.TimeoutExpired:
        command.kill()
        pytest.fail(f"still running {within_s} s after {signal.Signals(sig).name}")
    assert code == 128 + sig, command.stderr.read() if command.stderr else code     # what it said, if it was kept

    def left() -> list[int]:
        return processes_with_env(f"VIDFARM_DATA_DIR={data_dir}") + working_in(data_dir)

    deadline = time.monotonic() + 2            # the last children are being reaped
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left() == [], "processes left running"


def start_up(data_dir: Path, port: int, flower_port: int, **popen) -> tuple[subprocess.Popen, str]:
    """`vidfarm up --workers 1` and its banner (read up to its last line)."""
    env = child_env(VIDFARM_DATA_DIR=str(data_dir), VIDFARM_FLOWER_PORT=str(flower_port))
    up = subprocess.Popen(VIDFARM + ["up", "--workers", "1", "--port", str(port)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    banner = ""
    while "stops every process" not in banner:
        line = up.stdout.readline()
        if not line:
            up.kill()
            pytest.fail(f"vidfarm up ended early: {banner}")
        banner += line
    return up, banner


@pytest.mark.parametrize("sig, background", [
    (signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGINT, True), (signal.SIGTERM, True)],
    ids=["SIGTERM", "SIGHUP", "SIGINT-background", "SIGTERM-background"])
def test_up_stops_everything_on_a_signal(tmp_path, sig, background):
    data_dir = tmp_path / "data"
    port, flower_port = free_port(), free_port()
    up, banner = start_up(data_dir, port, flower_port, preexec_fn=ignore_sigint if background else None,
                          start_new_session=background)
    try:
        redis_port = int(re.search(r"redis://127\.0\.0\.1:(\d+)", banner).group(1))
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        wait_for_http(f"http://127.0.0.1:{flower_port}/healthcheck")
        assert all(listening(p) for p in (port, flower_port, redis_port))
        stopped_cleanly(up, sig, data_dir)
        assert not any(listening(p) for p in (port, flower_port, redis_port)), "a port is still held"
    finally:
        up.kill()       # a test that failed before its signal leaves nothing running (its children die with it)
        up.wait()
        up.stdout.close()


@pytest.fixture(scope="module")
def long_small_clip(tmp_path_factory):
    """20 s at 15 fps, 320x180, a keyframe every 2 s: 10 segments of 2 s (made once for the
    tests here that read it)."""
    return make_clip(tmp_path_factory.mktemp("shutdown-clip") / "long.mp4", seconds=20, fps=15, gop=30,
                     size=(320, 180))


def test_process_stops_everything_on_sigterm_mid_job(tmp_path, long_small_clip):
    # 10 segments of 2 s, small: the stop comes after the first, with 9 still to run on one worker.
    data_dir = tmp_path / "data"
    env = child_env(VIDFARM_DATA_DIR=str(data_dir), VIDFARM_SEGMENT_SECONDS="2")
    run = subprocess.Popen(VIDFARM + ["process", str(long_small_clip.path), "--out", str(tmp_path / "out"),
                                      "--workers", "1"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    analysed = data_dir / "blobs" / "jobs"
    deadline = time.monotonic() + 120
    try:
        # A segment's analysis is stored as its task ends. (This waited for annotated/*.json,
        # which a segment with a face now gets only when the whole job's video is drawn: the
        # stop came once every segment had run, not mid-job.)
        while not list(analysed.glob("*/analysis/*.json")):
            assert run.poll() is None and time.monotonic() < deadline, "the job never got going"
            time.sleep(0.1)
    except AssertionError:
        run.kill()          # nothing left running after a failure either (its children die with it)
        raise
    stopped_cleanly(run, signal.SIGTERM, data_dir)
    assert "stopped (SIGTERM)" in run.stderr.read()
    assert not (tmp_path / "out" / "results.json").exists()
    assert len(list(analysed.glob("*/analysis/*.json"))) < 10, "the stop came once every segment had run"


# Killed outright (SIGKILL, the OOM killer, a crash): the command has no way out, so its
# children must end on their own (core.orphan_guard), with their graceful stop.
ORPHANS_GONE_S = 15


class ProcessTree:
    """Every process seen below ``root`` while it ran, by pid and start time (a pid used again
    later is not taken for one of them)."""

    def __init__(self, root: int):
        self.root = root
        self.seen: dict[int, tuple[float, str]] = {}

    def look(self) -> None:
        try:
            children = psutil.Process(self.root).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for child in children:
            try:
                self.seen[child.pid] = (child.create_time(), " ".join(child.cmdline()))
            except psutil.Error:
                continue

    def commands(self) -> str:
        return "\n".join(command for _, command in self.seen.values())

    def running(self) -> list[psutil.Process]:
        found = []
        for pid, (started, _) in self.seen.items():
            try:
                process = psutil.Process(pid)
                if process.create_time() == started and process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except psutil.Error:
                continue
        return found


def killed_outright_leaves_nothing(command: subprocess.Popen, tree: ProcessTree, data_dir: Path,
                                   ports: tuple[int, ...]) -> None:
    tree.look()
    command.kill()
    command.wait()

    def left() -> list[str]:
        pids = {p.pid for p in tree.running()} | set(processes_with_env(f"VIDFARM_DATA_DIR={data_dir}"))
        return sorted(f"{pid}: {tree.seen.get(pid, (0, '?'))[1][:120]}"
                      for pid in pids | set(working_in(data_dir)))

    # The processes seen first, by pid; the whole of /proc (environments, working folders) only
    # once they are gone, and then once a second. Scanning all of it five times a second ran
    # while another test process's browser exited, and the kernel's reaping of it (which clears
    # its /proc entries) spun for minutes: busy entries are the likely cause.
    killed = time.monotonic()
    while tree.running() and time.monotonic() < killed + ORPHANS_GONE_S:
        time.sleep(0.2)
    while left() and time.monotonic() < killed + ORPHANS_GONE_S:
        time.sleep(1.0)
    leftovers = left()
    print(f"{len(tree.seen)} processes seen; {len(leftovers)} left {time.monotonic() - killed:.1f} s after the SIGKILL")
    for pid in [int(line.split(":")[0]) for line in leftovers]:     # a failed test leaves nothing either
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leftovers, f"still running {ORPHANS_GONE_S} s after the command was SIGKILLed:\n" + "\n".join(leftovers)
    assert not any(listening(p) for p in ports), "a port is still held"


def test_up_killed_outright_leaves_nothing_running(tmp_path):
    """`vidfarm up --workers 1` SIGKILLed once its web app and Flower answer: Redis, the web app,
    the workers, their fork servers, the autoscaler, beat, Flower and the camera ingester end."""
    data_dir = tmp_path / "data"
    port, flower_port = free_port(), free_port()
    up, banner = start_up(data_dir, port, flower_port)
    tree = ProcessTree(up.pid)
    try:
        redis_port = int(re.search(r"redis://127\.0\.0\.1:(\d+)", banner).group(1))
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        wait_for_http(f"http://127.0.0.1:{flower_port}/healthcheck")
        tree.look()
        for part in ("redis-server", "tasks.forkserver", "gunicorn", "autoscale", "ingest", "beat", "flower"):
            assert part in tree.commands(), f"no {part} among\n{tree.commands()}"
        killed_outright_leaves_nothing(up, tree, data_dir, (port, flower_port, redis_port))
    finally:
        up.kill()
        up.stdout.close()


def killed_outright_mid_task_leaves_nothing(args: list[str], data_dir: Path, task: str, **env) -> None:
    """Run ``vidfarm ARGS`` with one worker, SIGKILL it once the worker has started a ``task``
    (its name as the worker logs it), and check that nothing it started is left."""
    run = subprocess.Popen(VIDFARM + args + ["--workers", "1"], env=child_env(VIDFARM_DATA_DIR=str(data_dir), **env),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tree = ProcessTree(run.pid)
    try:
        deadline = time.monotonic() + 120
        while not any(f"{task}[" in log.read_text() for log in (data_dir / "logs").glob("worker*.log")):
            assert run.poll() is None and time.monotonic() < deadline, f"no {task} ever reached the worker"
            tree.look()
            time.sleep(0.1)
        assert "redis-server" in tree.commands() and "tasks.forkserver" in tree.commands(), tree.commands()
        killed_outright_leaves_nothing(run, tree, data_dir, ())
    finally:
        run.kill()


def test_process_killed_outright_mid_segment_leaves_nothing_running(tmp_path, long_small_clip):
    """`vidfarm process` SIGKILLed while its worker holds a segment: Redis, the fork server, the
    worker and its pool child end (the worker is killed: with its Redis gone, a warm shutdown
    would retry storing the segment's result for minutes)."""
    killed_outright_mid_task_leaves_nothing(["process", str(long_small_clip.path), "--out", str(tmp_path / "out")],
                                            tmp_path / "data", "vidfarm.segment", VIDFARM_SEGMENT_SECONDS="2")


def test_watch_killed_outright_mid_segment_leaves_nothing_running(tmp_path):
    """`vidfarm watch` runs the same embedded farm as `process` and reads the camera in its own
    process: SIGKILLed while its worker analyses a live segment, it leaves nothing running."""
    from tests.rtsp_camera import RtspCamera

    clip = make_clip(tmp_path / "clip.mp4", seconds=20, fps=15, size=(320, 180), gop=15)
    with RtspCamera(clip.path) as camera:
        killed_outright_mid_task_leaves_nothing(["watch", camera.url, "--out", str(tmp_path / "out")],
                                                tmp_path / "data", "vidfarm.live_segment")
