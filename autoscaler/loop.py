"""The running autoscaler: observe every queue, decide, scale, log and export each decision."""

from __future__ import annotations

import logging
import threading
import time

from kombu.exceptions import OperationalError
from redis.exceptions import RedisError
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from autoscaler.backends import ScaleBackend
from autoscaler.observe import QueueObserver
from autoscaler.policy import Decision, Observation, ScaleState, decide
from core.settings import ScaleSettings

# Redis restarting or a network blip: worth another try at the next poll.
TRANSIENT_ERRORS = (RedisError, OperationalError, OSError)

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


class Autoscaler:
    def __init__(self, backend: ScaleBackend, observer: QueueObserver, targets: list[ScaleSettings],
                 metrics: ScaleMetrics | None = None, clock=time.monotonic):
        self.backend = backend
        self.observer = observer
        self.targets = targets
        self.metrics = metrics or ScaleMetrics()
        self.clock = clock
        self.states: dict[str, ScaleState] = {t.deployment: ScaleState() for t in targets}

    def tick(self) -> list[Decision]:
        loads = self.observer.observe([t.queue for t in self.targets])
        decisions = []
        for target in self.targets:
            load = loads[target.queue]
            current = self.backend.replicas(target)
            busy = self.backend.busy_workers(target, load.busy_nodes)
            # No worker answered the inspection: count every task in hand as a busy worker.
            busy_count = len(busy) if load.inspected else min(load.running, current)
            obs = Observation(now=self.clock(), waiting=load.waiting, running=load.running,
                              replicas=current, busy_workers=busy_count)
            decision = decide(obs, self.states[target.deployment], target)
            self.states[target.deployment] = decision.state
            if decision.replicas != current:
                self.backend.scale(target, decision.replicas, busy if load.inspected else None)
                log.info("%s: %d -> %d replicas (%s)", target.deployment, current, decision.replicas, decision.reason)
            else:
                log.debug("%s: %d replicas (%s)", target.deployment, current, decision.reason)
            self.metrics.record(target, obs, decision)
            decisions.append(decision)
        return decisions

    def run(self, poll_s: float, stop: threading.Event) -> None:
        while not stop.is_set():
            started = self.clock()
            try:
                self.tick()
            except TRANSIENT_ERRORS as error:
                log.warning("autoscaler poll failed, retrying in %.0f s: %s", poll_s, error)
            stop.wait(max(0.0, poll_s - (self.clock() - started)))
