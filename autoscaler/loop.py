"""The running autoscaler: observe every queue, decide, scale, log and export each decision.

The policy's state (its scale-down window, when it last saw demand, the workers it is
waiting for, the cost per frame and the arrivals it learnt) is kept in Redis after each
decision that took effect (``StateStore``), in wall-clock time, so an autoscaler that
restarts, or a new pod that replaces it, carries on where the old one stopped instead of
forgetting its window and scaling down at once.

A poll that fails (Redis restarting, the Kubernetes API unavailable after the backend's own
retries) is logged and tried again at the next poll: the loop itself only ends when asked to,
or on a ``ScaleError`` a person must fix (RBAC, a missing Deployment, no credentials).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable

from kombu.exceptions import OperationalError
from redis.exceptions import RedisError
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from autoscaler.backends import ApiUnavailable, ScaleBackend
from autoscaler.live import BATCH_QUEUE, LIVE_QUEUE, batch_room
from autoscaler.observe import QueueLoad, QueueObserver
from autoscaler.policy import Decision, Observation, ScaleState, decide
from core.settings import ScaleSettings

# Redis restarting, a network blip, the API down for longer than the backend retries: worth
# another try at the next poll.
TRANSIENT_ERRORS = (RedisError, OperationalError, OSError, ApiUnavailable)
STATE_KEY = "vidfarm:autoscaler:state:{deployment}"
STATE_TTL_S = 24 * 3600          # an autoscaler gone for a day starts afresh

log = logging.getLogger("vidfarm.autoscaler")


# (observation or decision field, metric name, help): one gauge each, labelled by deployment and queue.
GAUGES = (
    ("waiting", "vidfarm_autoscaler_waiting_tasks", "Tasks in the queue lists."),
    ("running", "vidfarm_autoscaler_running_tasks", "Tasks reserved or running (unacked)."),
    ("busy_workers", "vidfarm_autoscaler_busy_workers", "Workers with a task in hand."),
    ("replicas", "vidfarm_autoscaler_current_replicas", "Replicas before the decision."),
    ("desired", "vidfarm_autoscaler_desired_replicas", "Replicas the decision set."),
    ("target", "vidfarm_autoscaler_target_replicas", "Unstabilised target from the queue."),
)


class ScaleMetrics:
    """Prometheus series of the autoscaler's view and decisions, on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        labels = ["deployment", "queue"]
        self.gauges = {field: Gauge(name, doc, labels, registry=self.registry) for field, name, doc in GAUGES}
        self.decisions = Counter("vidfarm_autoscaler_decisions", "Decisions by direction (up, down, hold, steady).",
                                 labels + ["direction"], registry=self.registry)
        self.failures = Counter("vidfarm_autoscaler_failed_polls", "Polls that failed and were tried again.",
                                registry=self.registry)

    def record(self, target: ScaleSettings, obs: Observation, decision: Decision) -> None:
        key = (target.deployment, target.queue)
        values = {"waiting": obs.waiting, "running": obs.running, "busy_workers": obs.busy_workers,
                  "replicas": obs.replicas, "desired": decision.replicas, "target": decision.target}
        for field, value in values.items():
            self.gauges[field].labels(*key).set(value)
        self.decisions.labels(*key, decision.direction).inc()

    def serve(self, port: int, addr: str = "0.0.0.0"):
        """Serve /metrics on ``port``; returns the server (``shutdown()`` stops it)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server


class StateStore:
    """Each Deployment's ScaleState as JSON in Redis (the broker the autoscaler watches)."""

    def __init__(self, redis_client):
        self.redis = redis_client

    def load(self, deployment: str) -> ScaleState:
        raw = self.redis.get(STATE_KEY.format(deployment=deployment))
        if raw is None:
            return ScaleState()
        try:
            return ScaleState.from_json(json.loads(raw))
        except (ValueError, TypeError, KeyError) as error:
            log.warning("%s: stored autoscaler state unreadable (%s): starting afresh", deployment, error)
            return ScaleState()

    def save(self, deployment: str, state: ScaleState) -> None:
        self.redis.set(STATE_KEY.format(deployment=deployment), json.dumps(state.to_json()), ex=STATE_TTL_S)


def observation(load: QueueLoad, now: float, replicas: int, busy_count: int,
                cameras: tuple[float | None, ...] = (), poll_s: float | None = None) -> Observation:
    return Observation(now=now, waiting=load.waiting, running=load.running, replicas=replicas,
                       busy_workers=busy_count, queued=load.queued, in_hand=load.in_hand,
                       finished=load.finished, arrived=load.arrived, cameras=cameras, poll_s=poll_s)


class Autoscaler:
    def __init__(self, backend: ScaleBackend, observer: QueueObserver, targets: list[ScaleSettings],
                 metrics: ScaleMetrics | None = None, clock=time.time,
                 cameras: Callable[[], tuple[float | None, ...]] | None = None, shared_max: int = 0):
        """cameras: the registered cameras' frames/s, for the live queue's floor; shared_max:
        a cap on live + cpu workers, live first (``autoscaler.live``)."""
        self.backend = backend
        self.cameras = cameras or (lambda: ())
        self.shared_max = shared_max
        self.observer = observer
        self.targets = targets
        self.metrics = metrics or ScaleMetrics()
        self.clock = clock
        self.store = StateStore(observer.redis)
        self.states: dict[str, ScaleState] = {t.deployment: self.store.load(t.deployment) for t in targets}

    def tick(self, poll_s: float | None = None) -> list[Decision]:
        """One poll of every target; ``poll_s``: the configured period between polls, so that the
        first decision after polls failed or a restart plans with it, not with the outage
        (``policy.poll_period``)."""
        loads = self.observer.observe([t.queue for t in self.targets])
        decisions = []
        live_replicas = 0
        for target in self.targets:
            load = loads[target.queue]
            if target.queue == BATCH_QUEUE:
                target = batch_room(target, live_replicas, self.shared_max)
            current = self.backend.replicas(target)
            busy = self.backend.busy_workers(target, load.busy_nodes)
            # A worker whose answer to the inspection was late still holds its task: never fewer
            # busy workers than tasks in hand (that a worker being stopped may hold one only
            # keeps a worker more for a poll).
            busy_count = max(len(busy), min(load.running, current))
            cameras = self.cameras() if target.queue == LIVE_QUEUE else ()
            obs = observation(load, self.clock(), current, busy_count, cameras, poll_s)
            decision = decide(obs, self.states[target.deployment], target)
            if target.queue == LIVE_QUEUE:
                live_replicas = decision.replicas
            if decision.replicas != current:
                self.backend.scale(target, decision.replicas, busy if load.inspected else None)
                log.info("%s: %d -> %d replicas (%s)", target.deployment, current, decision.replicas, decision.reason)
            else:
                log.debug("%s: %d replicas (%s)", target.deployment, current, decision.reason)
            # Remembered only once it took effect: a scale that failed is decided again next poll.
            self.states[target.deployment] = decision.state
            self.store.save(target.deployment, decision.state)
            self.metrics.record(target, obs, decision)
            decisions.append(decision)
        return decisions

    def run(self, poll_s: float, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.tick(poll_s)
            except TRANSIENT_ERRORS as error:
                self.metrics.failures.inc()
                log.warning("autoscaler poll failed, retrying in %.0f s: %s", poll_s, error)
            stop.wait(max(0.0, poll_s - (time.monotonic() - started)))
