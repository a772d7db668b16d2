"""`vidfarm ingest` and `vidfarm autoscale` stop on SIGTERM, with one line, while what they wait
on does not answer: the database, the farm's Redis gone while the ingester watches a camera. (As PID 1 of a
container a process without a handler ignores SIGTERM; and before, a watch that could not hand
over its last segment held the stop for a minute and more: a pod's grace ran out first.)"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from cli.farm import EmbeddedFarm
from cli.redis_server import RedisServer
from core.cameras import CameraRegistry
from tests.clipmaker import make_clip
from tests.conftest import child_env, repo_root
from tests.rtsp_camera import RtspCamera, SilentServer
from tests.waiting import wait_until

INGEST = [sys.executable, "-m", "cli.main", "ingest"]
STOP_WITHIN_S = 30     # what a pod's grace could wait (the chart gives 90 s): not a timing, a bound


@pytest.mark.parametrize("command", [["ingest"], ["autoscale", "--backend", "local"]], ids=lambda c: c[0])
def test_a_stop_while_the_database_does_not_answer_is_one_line(tmp_path, command):
    """The ingester as it starts, the autoscaler at its first poll: each waited on a database
    that accepts and never answers (a hung server) past any SIGTERM."""
    with RedisServer(tmp_path / "redis") as redis_server, SilentServer() as database:
        env = child_env(REDIS_URL=redis_server.url, VIDFARM_DATA_DIR=str(tmp_path / "data"),
                        DATABASE_URL=f"postgresql+psycopg://vidfarm:secret@127.0.0.1:{database.port}/vidfarm")
        process = subprocess.Popen([sys.executable, "-m", "cli.main", *command], cwd=repo_root(), env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: database.connections or process.poll() is not None, 120, "the database connection")
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=STOP_WITHIN_S)
        finally:
            process.kill()
    assert (process.returncode, out, err.splitlines()[-1:]) == (128 + signal.SIGTERM, "", ["vidfarm: stopped (SIGTERM)"])


def test_a_stop_after_redis_went_away_mid_stream_does_not_wait_for_the_watches(tmp_path):
    clip = make_clip(tmp_path / "cam.mp4", seconds=240, fps=10, gop=10, size=(320, 180), photo_height=90,
                     face_windows=[(0, 240)], audio=False)
    log_path = tmp_path / "ingest.log"
    with EmbeddedFarm(tmp_path / "farm", workers=1) as farm, RtspCamera(clip.path) as camera:
        registry = CameraRegistry.from_url(farm.redis_url)
        camera_id = registry.add("Door", camera.url)["id"]
        env = child_env(REDIS_URL=farm.redis_url, VIDFARM_DATA_DIR=str(farm.data_dir), PYTHONUNBUFFERED="1")
        with open(log_path, "wb") as log:
            ingest = subprocess.Popen(INGEST, cwd=repo_root(), env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: [kind for _, kind, _ in registry.events(camera_id, "0-0", block_ms=10)
                                if kind == "segment"], 180, "a processed segment")
            farm.redis.stop()
            ingest.send_signal(signal.SIGTERM)
            ingest.wait(STOP_WITHIN_S)
        finally:
            ingest.kill()
    lines = log_path.read_text().splitlines()
    assert ingest.returncode == 0, lines
    assert any("the farm's Redis does not answer" in line and "not waiting for the watches of 1 camera to end" in line
               for line in lines), lines
    assert any(line.startswith("vidfarm ingest ") and line.endswith(": stopped") for line in lines), lines
