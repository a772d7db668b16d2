"""`vidfarm up` and `vidfarm process` stop every process they started on SIGTERM, SIGINT or
SIGHUP, in the foreground or the background, and leave no port held."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time

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


def stopped_cleanly(command: subprocess.Popen, sig: int, marker: str) -> None:
    command.send_signal(sig)
    try:
        code = command.wait(STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        command.kill()
        pytest.fail(f"still running {STOP_WITHIN_S} s after {signal.Signals(sig).name}")
    assert code == 128 + sig
    deadline = time.monotonic() + 2            # the last children are being reaped
    while processes_with_env(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with_env(marker) == [], "processes left running"


@pytest.mark.parametrize("sig, background", [
    (signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGINT, True), (signal.SIGTERM, True)],
    ids=["SIGTERM", "SIGHUP", "SIGINT-background", "SIGTERM-background"])
def test_up_stops_everything_on_a_signal(tmp_path, sig, background):
    data_dir = tmp_path / "data"
    port, flower_port = free_port(), free_port()
    env = child_env(VIDFARM_DATA_DIR=str(data_dir), VIDFARM_FLOWER_PORT=str(flower_port))
    up = subprocess.Popen(VIDFARM + ["up", "--workers", "1", "--port", str(port)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          preexec_fn=ignore_sigint if background else None,
                          start_new_session=background)
    banner = ""
    while "stops every process" not in banner:
        line = up.stdout.readline()
        if not line:
            up.kill()
            pytest.fail(f"vidfarm up ended early: {banner}")
        banner += line
    redis_port = int(re.search(r"redis://127\.0\.0\.1:(\d+)", banner).group(1))
    wait_for_http(f"http://127.0.0.1:{port}/healthz")
    wait_for_http(f"http://127.0.0.1:{flower_port}/healthcheck")
    assert all(listening(p) for p in (port, flower_port, redis_port))
    stopped_cleanly(up, sig, f"VIDFARM_DATA_DIR={data_dir}")
    assert not any(listening(p) for p in (port, flower_port, redis_port)), "a port is still held"
    up.stdout.close()


def test_process_stops_everything_on_sigterm_mid_job(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", seconds=40, fps=15, gop=30)
    data_dir = tmp_path / "data"
    env = child_env(VIDFARM_DATA_DIR=str(data_dir), VIDFARM_SEGMENT_SECONDS="2")
    run = subprocess.Popen(VIDFARM + ["process", str(clip.path), "--out", str(tmp_path / "out"),
                                      "--workers", "1"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((data_dir / "blobs" / "jobs").glob("*/annotated/*.json")):   # a segment is done
        assert run.poll() is None and time.monotonic() < deadline, "the job never got going"
        time.sleep(0.2)
    stopped_cleanly(run, signal.SIGTERM, f"VIDFARM_DATA_DIR={data_dir}")
    assert "stopped (SIGTERM)" in run.stderr.read()
    assert not (tmp_path / "out" / "results.json").exists()
