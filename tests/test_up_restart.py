"""`vidfarm up` stopped and started again on the same data folder carries on where it was:
the cameras registered with it are still registered (its Redis keeps them on disk); a second
`up` on a folder one already runs on refuses to start; an ingester that crashes is started
again while the rest of the farm serves on, and said so on `up`'s console; a process's restarts
count within a window, so rare crashes never add up to the end of a long-running farm."""

from __future__ import annotations

import os
import re
import signal
import stat
import time
from contextlib import contextmanager
from pathlib import Path

import subprocess

import psutil
import requests

from cli.redis_server import free_port
from tests.conftest import child_env, private_farm
from tests.test_cli import VIDFARM
from tests.net import wait_for_http
from tests.test_shutdown import start_up, stopped_cleanly


@contextmanager
def serving_up(data_dir: Path):
    """`vidfarm up --workers 1` on ``data_dir``: ``(up, base_url, banner)`` once its web app
    answers; a test that fails leaves nothing running (its children die with it)."""
    port, flower_port = free_port(), free_port()
    up, banner = start_up(data_dir, port, flower_port)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz")
        yield up, base, banner
    finally:
        up.kill()
        up.wait()
        up.stdout.close()


def up_once(data_dir, then) -> object:
    """Start `vidfarm up` on ``data_dir``, call ``then(base_url, banner)`` once its web app
    answers, stop it with SIGTERM (nothing left running) and return what ``then`` gave."""
    with serving_up(data_dir) as (up, base, banner):
        result = then(base, banner)
        stopped_cleanly(up, signal.SIGTERM, data_dir)
        return result


def register_camera(base: str, banner: str, url: str) -> tuple[dict, dict]:
    """With the first admin's token (shown once, in the first start's banner)."""
    auth = {"Authorization": "Bearer " + re.search(r"token\s*:\s*(\S+)", banner).group(1)}
    created = requests.post(f"{base}/api/v1/cameras", json={"name": "Gate", "url": url}, headers=auth, timeout=30)
    assert created.status_code == 201, created.text
    return auth, created.json()


def cameras_listed(base: str, auth: dict) -> list[dict]:
    answer = requests.get(f"{base}/api/v1/cameras", headers=auth, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_up_keeps_its_registered_cameras_across_a_restart(tmp_path):
    data_dir = tmp_path / "data"
    # Nothing answers at this address: the camera is registered all the same (and reconnecting).
    url = f"rtsp://127.0.0.1:{free_port()}/gate"
    auth, camera = up_once(data_dir, lambda base, banner: register_camera(base, banner, url))
    cameras = up_once(data_dir, lambda base, _banner: cameras_listed(base, auth))
    assert [(c["id"], c["name"], c["url"]) for c in cameras] == [(camera["id"], "Gate", url)]
    # Camera addresses carry their passwords: the folder that keeps them is its user's only.
    assert stat.S_IMODE((data_dir / "redis").stat().st_mode) == 0o700


def test_a_second_up_on_the_same_data_dir_refuses_while_the_first_serves(tmp_path):
    data_dir = tmp_path / "data"
    with serving_up(data_dir) as (first, base, _banner):
        # Its own ports: only the data folder is shared. The old code started a second farm
        # (and ran until the timeout): two Redis servers appending to one AOF folder.
        second = subprocess.run(VIDFARM + ["up", "--workers", "1", "--port", str(free_port())],
                                env=child_env(VIDFARM_DATA_DIR=str(data_dir), VIDFARM_FLOWER_PORT=str(free_port())),
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert second.stderr.splitlines() == [
            f"vidfarm: error: data dir {data_dir} is in use by another `vidfarm up` (pid {first.pid}); "
            "stop it first, or give this one another VIDFARM_DATA_DIR"]
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200, "the first stopped serving"
        stopped_cleanly(first, signal.SIGTERM, data_dir)
    # The lock went with the first: a new `up` starts on the folder.
    assert up_once(data_dir, lambda base, _banner: requests.get(f"{base}/healthz", timeout=10).status_code) == 200


def ingesters_of(up: subprocess.Popen) -> list[psutil.Process]:
    return [child for child in psutil.Process(up.pid).children(recursive=True)
            if child.cmdline()[-2:] == ["cli.main", "ingest"]]


def wait_for_line(log: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"{log} never said {text!r}"
        time.sleep(0.5)


def test_up_restarts_a_crashed_camera_ingester_and_its_cameras_are_watched_again(tmp_path, monkeypatch):
    """The ingester reads every camera through FFmpeg; one crash of it (SIGKILL here, as the OOM
    killer or a segfault ends it) used to end the whole `vidfarm up`, web app and cameras with it."""
    monkeypatch.setenv("VIDFARM_INGEST_LEASE_S", "3")     # the dead one's camera is free 3 s on
    data_dir = tmp_path / "data"
    with serving_up(data_dir) as (up, base, banner):
        auth, camera = register_camera(base, banner, f"rtsp://127.0.0.1:{free_port()}/gate")
        ingest_log = data_dir / "logs" / "ingest.log"
        wait_for_line(ingest_log, f"camera {camera['id']}: taken (fencing token 1)")
        [ingester] = ingesters_of(up)
        ingester.kill()
        wait_for_line(ingest_log, f"camera {camera['id']}: taken (fencing token 2)")
        assert up.poll() is None, up.stdout.read()
        assert [p.pid for p in ingesters_of(up)] != [ingester.pid]
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
        assert [c["id"] for c in cameras_listed(base, auth)] == [camera["id"]]
        stopped_cleanly(up, signal.SIGTERM, data_dir)
        # On up's console (stderr), not only in the ingester's own log.
        assert ("vidfarm: ingest killed by SIGKILL; restarted (1 of 5 restarts allowed within 10 min)\n"
                in up.stdout.read())


def kill_and_supervise(farm, worker) -> list[str]:
    """SIGKILL ``worker`` (as the OOM killer would), and supervise the farm once it is gone.
    Its main process: one forked just now may not lead its own group yet."""
    os.kill(worker.popen.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while worker.alive:
        assert time.monotonic() < deadline, f"{worker.name} outlived its SIGKILL"
        time.sleep(0.05)
    return farm.supervise()


def test_deaths_spaced_beyond_the_restart_window_never_end_the_farm(tmp_path):
    """Before, every restart counted for the farm's whole life: the 6th death, however many days
    after the 5th, ended it (a camera stream that crashes the ingester once a week, a month)."""
    with private_farm(tmp_path, workers=1) as farm:
        farm.RESTART_WINDOW_S = 0.5       # 10 min in `vidfarm up`; shrunk so the deaths fall beyond it
        said = []
        farm.report = said.append
        [worker] = farm.processes
        for _ in range(farm.MAX_RESTARTS + 2):
            assert kill_and_supervise(farm, worker) == []
            time.sleep(farm.RESTART_WINDOW_S + 0.1)
        assert worker.alive
        assert len(said) == farm.MAX_RESTARTS + 2
        assert set(said) == {f"{worker.name} ended (a forked worker: its exit status is not known here); "
                             "restarted (1 of 5 restarts allowed within 0.5 s)"}


def test_a_process_that_dies_max_restarts_times_within_the_window_ends_the_farm(tmp_path):
    """A worker that keeps dying (a broken install) is still reported, not looped on."""
    with private_farm(tmp_path, workers=1) as farm:
        said = []
        farm.report = said.append
        [worker] = farm.processes
        for _ in range(farm.MAX_RESTARTS):
            assert kill_and_supervise(farm, worker) == []
        assert kill_and_supervise(farm, worker) == [worker.name]
        assert [line.split("restarted ")[1] for line in said] == [
            f"({count} of 5 restarts allowed within 10 min)" for count in range(1, 6)]
