"""The real loop with the live Deployment: cameras in a real Redis registry, live segment costs
recorded as the live task records them, the kubernetes backend against the API stand-in.
Registering cameras scales the live workers before any segment is queued; at a cap shared
with batch, the live workers come first."""

from __future__ import annotations

import time

import pytest
import redis

from autoscaler.backends.kubernetes import KubernetesBackend, load_api_client
from autoscaler.live_work import LiveWork, camera_rates, live_frames
from autoscaler.loop import Autoscaler
from autoscaler.observe import QueueObserver
from core import live_costs
from core.cameras import CameraRegistry
from core.settings import LiveWorkerScaling, ScaleSettings
from tests.kube_apiserver import FakeApiServer, FakeCluster
from tests.test_autoscaler_kubernetes import write_kubeconfig
from tests.test_autoscaler_loop import FAST, queue, redis_url  # noqa: F401 (fixtures: a private Redis, emptied)

LIVE = LiveWorkerScaling(max_replicas=8, max_step_up=8, scale_down_window_s=0, idle_to_zero_s=0)
CPU = ScaleSettings(deployment="vidfarm-worker-cpu", queue="cpu", size_by="tasks", max_replicas=8, max_step_up=8)


@pytest.fixture
def client(queue):
    return queue


@pytest.fixture
def cluster():
    c = FakeCluster(namespace="farm")
    c.add_deployment("vidfarm-worker-live", replicas=0, app="worker-live")
    c.add_deployment("vidfarm-worker-cpu", replicas=0, app="worker-cpu")
    return c


@pytest.fixture
def scaler(redis_url, client, cluster, tmp_path):
    registry = CameraRegistry.from_url(redis_url)
    with FakeApiServer(cluster) as url:
        api_client, namespace = load_api_client(str(write_kubeconfig(tmp_path / "kubeconfig", url)))
        observer = QueueObserver(redis_url, inspect_timeout=0.1, work=LiveWork(redis.Redis.from_url(redis_url)))
        yield Autoscaler(KubernetesBackend(api_client, namespace, retry=FAST), observer, [LIVE, CPU],
                         cameras=lambda: camera_rates(registry), shared_max=6), registry
        observer.close()


def replicas(cluster, name: str) -> int:
    return cluster.deployments[f"vidfarm-worker-{name}"]["replicas"]


def test_cameras_scale_the_live_workers_before_any_segment_and_come_first_at_the_cap(scaler, cluster, client):
    autoscaler, registry = scaler
    client.lpush("cpu", *[b"{}"] * 10)                 # a batch backlog: it would take all 6
    autoscaler.tick()
    assert (replicas(cluster, "live"), replicas(cluster, "cpu")) == (0, 6)

    cameras = [registry.add(f"Cam {n}", f"rtsp://cam/{n}")["id"] for n in range(4)]
    autoscaler.tick()                                  # no live segment queued, none finished: one each
    # ... and batch gets what is left of the cap: its idle workers go (busy ones would stay).
    assert (replicas(cluster, "live"), replicas(cluster, "cpu")) == (4, 2)

    # The ingesters measured 15 frames/s; live segments cost 20 ms a frame: with room for one
    # more camera at 30 frames/s, (60 + 30) x 0.02 = 1.8 workers busy, 3 at 80 %.
    for camera_id in cameras:
        registry.segment_done(camera_id, {"segment": 0, "first_frame": 0, "frames": 30, "captured_at": 1.0,
                                          "ready_at": 3.0, "latency_s": 2.0, "faces": 0, "alerts": []}, 15.0)
    for _ in range(3):
        live_costs.record(client, 30, 0.6)
    decisions = autoscaler.tick()
    assert replicas(cluster, "live") == 3 and "4 cameras + 1 spare (90 frames/s x 20 ms" in decisions[0].reason


def test_live_costs_are_read_once_and_in_order(client):
    now = time.time()
    for n, at in enumerate((now - 30, now - 20, now - 10)):
        live_costs.record(client, 30 + n, 1.0 + n, now=at)
    assert live_costs.finished_since(client, now - 25) == [(31, 2.0), (32, 3.0)]
    assert live_costs.finished_since(client, now) == []
    client.lpush(live_costs.LIVE_COSTS, b"not json")
    assert live_costs.finished_since(client, now - 15) == [(32, 3.0)]


def test_a_live_message_carries_its_frames():
    from fractions import Fraction

    from core.segment_job import SegmentJob, SourceMedia

    def message(frames: int) -> list:
        media = SourceMedia(Fraction(1, 90000), 15.0, 0, 64, 48, False, timed=True)
        return [SegmentJob("watch", 3, tuple(range(frames)), media).to_message()]

    assert live_frames(message(3)) == 3
    # the old (watch_id, index, {pts, fps}) arguments, or none: not a count
    assert live_frames(["watch", 3, {"pts": [0, 1, 2], "fps": 15.0}]) is None and live_frames(["watch", 3]) is None
    work = LiveWork(client=None)
    assert work.frames([("vidfarm.live_segment", message(30)), ("vidfarm.segment", ["job", 1])]) == [30, None]
