"""Two real ``vidfarm ingest`` processes sharing real RTSP cameras on the real farm: each camera
is owned by one of them, a replica killed (SIGKILL) loses its camera to the other within a
lease time, a replica frozen past its lease (SIGSTOP) wakes up to find its camera taken and
its writes refused, and the segment events of every camera come from one owner at a time
(fencing tokens never go back)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from core import live_costs
from core.camera_leases import CameraLeases
from core.cameras import CameraRegistry
from tests.clipmaker import make_clip
from tests.conftest import child_env, repo_root
from tests.rtsp_camera import RtspCamera, gstreamer_missing
from tests.waiting import wait_until

LEASE_S = 3.0


class Ingester:
    """One ``vidfarm ingest`` process on the farm, its output in a log file."""

    def __init__(self, farm, log_path):
        self.log_path = log_path
        env = child_env(REDIS_URL=farm.redis_url, VIDFARM_DATA_DIR=str(farm.data_dir),
                        VIDFARM_INGEST_LEASE_S=str(LEASE_S), PYTHONUNBUFFERED="1")
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "cli.main", "ingest"], cwd=repo_root(), env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        self._name: str | None = None

    @property
    def owner(self) -> str:
        """Its replica name, once it has started (waited for: several start at once)."""
        if self._name is None:
            self._name = wait_until(self._owner, 120, "the ingester to start")
        return self._name

    def _owner(self) -> str | None:
        assert self.process.poll() is None, self.log_path.read_text()
        for text in self.log_path.read_text().splitlines():
            if text.startswith("vidfarm ingest "):
                return text.split()[2].rstrip(":")
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def segments(registry: CameraRegistry, camera_id: str) -> list[dict]:
    return [data for _, kind, data in registry.events(camera_id, "0-0", block_ms=10) if kind == "segment"]


def holder(registry: CameraRegistry, camera_id: str) -> str | None:
    held = CameraLeases(registry.redis, "observer").holder(camera_id)
    return None if held is None else held[0]


def check_one_owner_at_a_time(events: list[dict]) -> None:
    """Tokens never go back, and each token belongs to one replica."""
    tokens = [e["lease"] for e in events]
    assert tokens == sorted(tokens), tokens
    owners = {}
    for e in events:
        assert owners.setdefault(e["lease"], e["ingester"]) == e["ingester"], events


@pytest.fixture
def registry(farm):
    registry = CameraRegistry.from_url(farm.redis_url)
    for other in registry.cameras():      # other tests' cameras: the ingesters would watch those too
        registry.delete(other["id"])
    yield registry
    for camera in registry.cameras():
        registry.delete(camera["id"])


def test_two_replicas_share_cameras_and_take_over_a_dead_ones(farm, registry, tmp_path):
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    clip = make_clip(tmp_path / "cam.mp4", seconds=240, fps=10, gop=10, size=(320, 180), photo_height=90,
                     face_windows=[(0, 240)], audio=False)
    ingesters: list[Ingester] = []
    with RtspCamera(clip.path, feeds=2) as camera:      # two cameras' addresses on one server
        try:
            ingesters = [Ingester(farm, tmp_path / f"ingest-{n}.log") for n in range(2)]
            by_owner = {i.owner: i for i in ingesters}
            cameras = [registry.add(f"Cam {n}", camera.feed_url(n))["id"] for n in (1, 2)]
            # Each replica takes its share: one camera each, and each camera sends segments.
            owners = wait_until(lambda: (lambda o: o if None not in o and len(set(o)) == 2 else None)(
                [holder(registry, c) for c in cameras]), 60, "each replica to own a camera")
            for camera_id in cameras:
                wait_until(lambda: segments(registry, camera_id), 120, "a processed segment of each camera")

            # SIGKILL the first camera's owner: the other replica takes it within a lease time.
            dead, survivor = by_owner[owners[0]], by_owner[owners[1]]
            dead.process.kill()
            dead.process.wait()
            # (the lease's expiry, the polls that see it, slack for a loaded machine)
            wait_until(lambda: holder(registry, cameras[0]) == survivor.owner, LEASE_S + 10, "the takeover")
            wait_until(lambda: [e for e in segments(registry, cameras[0]) if e["ingester"] == survivor.owner],
                       120, "a segment of the taken camera from the survivor")
            assert holder(registry, cameras[1]) == survivor.owner

            # A new replica joins: the survivor gives one camera up to it.
            newcomer = Ingester(farm, tmp_path / "ingest-2.log")
            ingesters.append(newcomer)
            moved = wait_until(lambda: next((c for c in cameras if holder(registry, c) == newcomer.owner), None),
                               30, "a camera handed to the new replica")
            wait_until(lambda: [e for e in segments(registry, moved) if e["ingester"] == newcomer.owner],
                       120, "a segment from the new replica")

            # Freeze the newcomer past its lease: the survivor takes the camera back; woken up,
            # the newcomer finds its lease gone and its late writes refused.
            newcomer.process.send_signal(signal.SIGSTOP)
            wait_until(lambda: holder(registry, moved) == survivor.owner, LEASE_S + 10, "the takeover of a frozen one")
            taken_at_count = len(segments(registry, moved))
            wait_until(lambda: [e for e in segments(registry, moved)[taken_at_count:]
                                if e["ingester"] == survivor.owner], 120, "the survivor's segments after the freeze")
            newcomer.process.send_signal(signal.SIGCONT)
            wait_until(lambda: "its lease was lost to another replica" in newcomer.log_path.read_text(), 30,
                       "the woken replica to drop the camera")
            for camera_id in cameras:
                check_one_owner_at_a_time(segments(registry, camera_id))
            # Each analysed segment told the autoscaler what it cost (its 20 frames, its seconds).
            costs = live_costs.finished_since(registry.redis, 0)
            assert costs and all(frames == 20 and seconds > 0 for frames, seconds in costs[-5:])
        finally:
            for ingester in ingesters:
                ingester.stop()
    # Stopped ingesters give their leases back and leave.
    assert all(holder(registry, c) is None for c in cameras)
    assert registry.redis.zcard("vidfarm:ingesters") == 0
