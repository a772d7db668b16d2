"""The real loop (``Autoscaler.run``) on a real queue (a private redis-server) and the
kubernetes backend against the API stand-in in fault mode: through each fault the
Deployment ends at the size the queue asks for, and the loop never exits. And its state
survives a restart."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from autoscaler.backends.kubernetes import KubernetesBackend, Retry, load_api_client
from autoscaler.forecast import Cost
from autoscaler.loop import STATE_KEY, Autoscaler, StateStore
from autoscaler.observe import QueueObserver
from autoscaler.policy import ScaleState
from cli.redis_server import RedisServer
from core.settings import ScaleSettings
from tests.kube_apiserver import Fault, FakeApiServer, FakeCluster
from tests.test_autoscaler_kubernetes import write_kubeconfig

CPU = ScaleSettings(deployment="vidfarm-worker-cpu", queue="cpu", size_by="tasks", max_replicas=8,
                    max_step_up=8, scale_down_window_s=0, idle_to_zero_s=0)
FAST = Retry(attempts=4, base_s=0.05, cap_s=0.2, timeout_s=(1.0, 0.5))
POLL_S = 0.2
GUARD_S = 60      # a hang guard only


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def queue(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def cluster():
    c = FakeCluster(namespace="farm")
    c.add_deployment("vidfarm-worker-cpu", replicas=0, app="worker-cpu")
    return c


@pytest.fixture
def api(cluster, tmp_path):
    with FakeApiServer(cluster) as url:
        yield str(write_kubeconfig(tmp_path / "kubeconfig", url))


def autoscaler(redis_url: str, kubeconfig: str, settings=CPU, clock=time.time) -> Autoscaler:
    api_client, namespace = load_api_client(kubeconfig)
    observer = QueueObserver(redis_url, inspect_timeout=0.1)
    return Autoscaler(KubernetesBackend(api_client, namespace, retry=FAST), observer, [settings], clock=clock)


class Running:
    """``Autoscaler.run`` in a thread, as `vidfarm autoscale` runs it; remembers how it ended."""

    def __init__(self, scaler: Autoscaler):
        self.stop, self.ended = threading.Event(), []
        self.thread = threading.Thread(target=self._run, args=(scaler,), daemon=True)
        self.thread.start()

    def _run(self, scaler):
        try:
            scaler.run(POLL_S, self.stop)
            self.ended.append("stopped")
        except BaseException as error:       # what would end `vidfarm autoscale`
            self.ended.append(repr(error))

    def close(self):
        self.stop.set()
        self.thread.join(10)


def until(condition, what: str, running: Running):
    deadline = time.monotonic() + GUARD_S
    while not condition():
        assert not running.ended, f"the loop ended: {running.ended}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting for {what} after {GUARD_S} s")
        time.sleep(0.05)


def replicas(cluster) -> int:
    return cluster.deployments["vidfarm-worker-cpu"]["replicas"]


FAULTS = {
    "429 burst (Retry-After 1)": lambda c: c.inject(Fault("429", retry_after="1"), times=3),
    "500s past one call's retries": lambda c: c.inject(Fault("500"), times=2 * FAST.attempts),
    "503s": lambda c: c.inject(Fault("503"), times=3),
    "slow replies": lambda c: c.inject(Fault("slow", delay_s=2.0), times=3),
    "dropped connections": lambda c: c.inject(Fault("drop"), times=3),
    "lost replies": lambda c: c.inject(Fault("lost"), times=3),
    "controller status writes": lambda c: setattr(c, "status_writes", 4),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_the_loop_rides_out_api_faults_and_the_deployment_ends_right(redis_url, queue, cluster, api, fault):
    scaler = autoscaler(redis_url, api)
    running = Running(scaler)
    try:
        FAULTS[fault](cluster)
        queue.lpush("cpu", *[b"{}"] * 3)           # three waiting messages (contents not read)
        started = time.monotonic()
        until(lambda: replicas(cluster) == 3 and not cluster.faults, "3 replicas", running)
        up_s = time.monotonic() - started
        FAULTS[fault](cluster)                       # and again on the way down
        queue.delete("cpu")
        started = time.monotonic()
        until(lambda: replicas(cluster) == 0 and not cluster.faults, "0 replicas", running)
        print(f"\nrecovery: {fault}: 3 replicas {up_s:.1f} s after the queue filled, 0 replicas "
              f"{time.monotonic() - started:.1f} s after it emptied (polling every {POLL_S} s)")
        time.sleep(3 * POLL_S)
        assert replicas(cluster) == 0 and not running.ended
    finally:
        running.close()
        scaler.observer.close()
        scaler.backend.close()
    assert running.ended == ["stopped"]
    assert any(f for _, _, f in cluster.arrivals) or cluster.status_writes


def restart_after_a_burst(redis_url, queue, api, forget_state: bool) -> tuple[Autoscaler, list[float]]:
    """4 waiting at t=1000 (4 replicas), the queue drained, the autoscaler replaced at t=1010."""
    windowed = CPU.model_copy(update={"scale_down_window_s": 60, "idle_to_zero_s": 120})
    now = [1000.0]
    first = autoscaler(redis_url, api, windowed, clock=lambda: now[0])
    queue.lpush("cpu", *[b"{}"] * 4)
    assert first.tick()[0].replicas == 4
    first.observer.close()                            # the autoscaler is gone (a pod replaced)
    queue.delete("cpu")
    if forget_state:
        queue.delete(STATE_KEY.format(deployment="vidfarm-worker-cpu"))
    now[0] = 1010.0
    return autoscaler(redis_url, api, windowed, clock=lambda: now[0]), now


def test_a_restarted_autoscaler_keeps_its_stabilisation_window(redis_url, queue, cluster, api):
    second, now = restart_after_a_burst(redis_url, queue, api, forget_state=False)
    held = second.tick()[0]
    assert held.replicas == 4 and held.reason.startswith("hold"), held.reason   # the window it remembered
    now[0] = 1070.0
    assert second.tick()[0].replicas == 1        # the window has passed: one kept warm for the idle period
    second.observer.close()


def test_without_the_stored_state_the_window_is_forgotten(redis_url, queue, cluster, api):
    # The control of the test above: the same restart with the state gone scales down at once.
    second, _ = restart_after_a_burst(redis_url, queue, api, forget_state=True)
    assert second.tick()[0].replicas == 0
    second.observer.close()


def test_an_unreadable_stored_state_starts_afresh(redis_url, queue, cluster, api):
    queue.set(STATE_KEY.format(deployment="vidfarm-worker-cpu"), b"{not json")
    scaler = autoscaler(redis_url, api)
    queue.lpush("cpu", b"{}")
    assert scaler.tick()[0].replicas == 1
    scaler.observer.close()


def test_an_autoscaler_back_after_an_outage_plans_with_its_poll_period(redis_url, queue, cluster, api):
    """Bursts of 4 tasks (10 s each) came every 300 s, the last at 940; a target of 10 s is
    below a cold start, so a standby is asked for a pod start and a poll (5 s) before the next
    burst is likely: at 1215. The autoscaler was down from its decision at 945 to 1100; back,
    it loads that state from Redis. Planning with the 155 s gap as its poll period, it asked
    for the standby at once, 115 s early."""
    waits = ScaleSettings(deployment="vidfarm-worker-cpu", queue="cpu", max_replicas=8, max_step_up=8,
                          target_wait_s=10, pod_start_s=20, rate_window_s=300)
    stored = ScaleState(cost=Cost(((100, 10.0),)), last_demand_at=940.0, arrivals=((940.0, (100,) * 4),),
                        bursts=((340.0, 340.0), (640.0, 640.0), (940.0, 940.0)), polled_at=945.0)
    StateStore(queue).save("vidfarm-worker-cpu", stored)
    now = [1100.0]
    scaler = autoscaler(redis_url, api, waits, clock=lambda: now[0])
    try:
        assert scaler.tick(poll_s=5.0)[0].replicas == 0
        now[0] = 1215.0
        assert scaler.tick(poll_s=5.0)[0].replicas == 2          # the standby, when it is due
    finally:
        scaler.observer.close()
