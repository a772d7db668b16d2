"""Replays an arrival trace through our policy and through a KEDA/HPA reference model.

Trace (JSON): ``{"name", "horizon_s", "pod_start_s", "arrivals": [{"t", "tasks", "task_s"}]}``:
at time ``t``, ``tasks`` tasks of ``task_s`` seconds each join the queue.

The world, the same for both scalers: one task per worker at a time (prefetch 1), FIFO queue,
a new pod serves ``pod_start_s`` after it is asked for, and a pod costs worker-seconds from
that moment until it is removed. Time advances in 1 s steps until the horizon and then until
the last task is done and the scaler has gone back to zero, so each pays for its own tail.

vidfarm: ``autoscaler.policy.decide`` (the code the real loop runs) every ``poll_s`` on
waiting + running; scale-down removes starting pods, then idle ones, never a busy one (what
pod-deletion-cost and the busy floor give on a cluster).

KEDA (Redis list scaler + HPA), as issue 5 describes it: the metric is LLEN, the waiting
tasks only. Every 30 s (pollingInterval) KEDA's own loop activates the Deployment (0 -> 1
replica) on a non-empty list, and after 300 s (cooldownPeriod) without one sends it to zero.
In between, every 15 s (the HPA's sync period, reading LLEN through KEDA's metrics server),
HPA desired = ceil(LLEN / listLength) with listLength = our tasks_per_worker, no change
within a 0.1 tolerance, scale-up by at most max(100 %, 4 pods), scale-down to the highest
recommendation of the last 300 s, never below 1. Scale-down removes random pods; a busy
one's task goes back to the head of the queue and restarts (an interrupted task).
"""

from __future__ import annotations

import json
import math
import random
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from autoscaler.policy import Observation, ScaleState, decide
from core.errors import first_problem
from core.settings import ScaleSettings

STEP_S = 1.0
TAIL_LIMIT_S = 4 * 3600.0          # after the horizon, stop waiting for a scaler that never settles


class Arrival(BaseModel):
    t: float = Field(ge=0)
    tasks: int = Field(ge=1)
    task_s: float = Field(gt=0)


class Trace(BaseModel):
    name: str
    horizon_s: float = Field(gt=0)
    pod_start_s: float = Field(ge=0)
    arrivals: list[Arrival]


class TraceError(ValueError):
    """A trace file that cannot be replayed: one line that says why."""


def load_trace(path: Path) -> Trace:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file")
    except (OSError, UnicodeDecodeError) as error:
        raise TraceError(f"{path}: cannot read it ({error})")
    except json.JSONDecodeError as error:
        raise TraceError(f"{path}: not JSON (line {error.lineno}, column {error.colno}: {error.msg})")
    try:
        trace = Trace.model_validate(data)
    except ValidationError as error:
        where, what = first_problem(error)
        raise TraceError(f"{path}: not a trace: {where or 'top level'}: {what} "
                         f"(expected {{name, horizon_s, pod_start_s, arrivals: [{{t, tasks, task_s}}]}})")
    late = [a.t for a in trace.arrivals if a.t > trace.horizon_s]
    if late:
        raise TraceError(f"{path}: an arrival at t={late[0]} lies after horizon_s={trace.horizon_s}")
    return trace


@dataclass
class Task:
    arrived: float
    duration: float
    started: float | None = None


@dataclass
class Pod:
    ready_at: float
    task: Task | None = None
    finishes_at: float = 0.0


@dataclass
class World:
    """Pods, the queue and the bill; the scalers only choose how many pods exist."""
    pod_start_s: float
    pods: list[Pod] = field(default_factory=list)
    queue: deque = field(default_factory=deque)
    waits: list[float] = field(default_factory=list)    # arrival -> the start of the run that finished
    worker_seconds: float = 0.0
    interrupted: int = 0

    def busy(self) -> int:
        return sum(p.task is not None for p in self.pods)

    def add_pods(self, now: float, count: int) -> None:
        self.pods += [Pod(ready_at=now + self.pod_start_s) for _ in range(count)]

    def remove(self, pod: Pod) -> None:
        if pod.task is not None:              # killed mid-task: it restarts from scratch
            pod.task.started = None
            self.queue.appendleft(pod.task)
            self.interrupted += 1
        self.pods.remove(pod)

    def step(self, now: float) -> None:
        for pod in self.pods:
            if pod.task is not None and now >= pod.finishes_at:
                self.waits.append(pod.task.started - pod.task.arrived)
                pod.task = None
        for pod in self.pods:
            if pod.task is None and now >= pod.ready_at and self.queue:
                task = self.queue.popleft()
                task.started = now
                pod.task, pod.finishes_at = task, now + task.duration
        self.worker_seconds += len(self.pods) * STEP_S

    def idle(self) -> bool:
        return not self.queue and self.busy() == 0


class VidfarmScaler:
    def __init__(self, settings: ScaleSettings, poll_s: float):
        self.settings, self.poll_s, self.state = settings, poll_s, ScaleState()

    def poll(self, world: World, now: float) -> None:
        obs = Observation(now=now, waiting=len(world.queue), running=world.busy(),
                          replicas=len(world.pods), busy_workers=world.busy())
        decision = decide(obs, self.state, self.settings)
        self.state = decision.state
        change = decision.replicas - len(world.pods)
        if change > 0:
            world.add_pods(now, change)
        # Starting pods first, then idle ones; the policy never asks for fewer than the busy.
        for pod in sorted(world.pods, key=lambda p: (p.ready_at <= now, p.task is not None))[:max(0, -change)]:
            world.remove(pod)


class KedaScaler:
    POLLING_INTERVAL_S, COOLDOWN_S, STABILISATION_S, TOLERANCE = 30.0, 300.0, 300.0, 0.1
    HPA_SYNC_S = 15.0      # the HPA reads LLEN through KEDA's metrics server at its own period

    def __init__(self, settings: ScaleSettings, seed: int = 0):
        self.list_length, self.max_replicas = settings.tasks_per_worker, settings.max_replicas
        self.poll_s = self.HPA_SYNC_S
        self.recommendations: list[tuple[float, int]] = []
        self.last_active: float | None = None
        self.random = random.Random(seed)

    def _hpa(self, llen: int, current: int, now: float) -> int:
        desired = math.ceil(llen / self.list_length)
        if current and abs(llen / (current * self.list_length) - 1) <= self.TOLERANCE:
            desired = current                                  # within tolerance: no change
        desired = max(1, min(self.max_replicas, desired, max(2 * current, current + 4)))
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - self.STABILISATION_S]
        self.recommendations.append((now, desired))
        return desired if desired > current else min(current, max(r for _, r in self.recommendations))

    def poll(self, world: World, now: float) -> None:
        llen, current = len(world.queue), len(world.pods)
        keda_poll = now % self.POLLING_INTERVAL_S == 0    # KEDA's own loop: activation and cooldown
        if keda_poll and llen > 0:
            self.last_active = now
        if current == 0:
            desired = 1 if keda_poll and llen > 0 else 0       # KEDA's activation
        elif keda_poll and llen == 0 and (self.last_active is None or now - self.last_active >= self.COOLDOWN_S):
            desired = 0                                        # cooldownPeriod over: to zero
        else:
            desired = self._hpa(llen, current, now)
        if desired > current:
            world.add_pods(now, desired - current)
        for _ in range(current - desired):
            world.remove(self.random.choice(world.pods))
        if desired == 0:
            self.recommendations.clear()


def replay(trace: Trace, scaler) -> dict:
    world = World(pod_start_s=trace.pod_start_s)
    arrivals = sorted(trace.arrivals, key=lambda a: a.t)
    total = sum(a.tasks for a in arrivals)
    now, next_arrival, next_poll = 0.0, 0, 0.0
    while True:
        while next_arrival < len(arrivals) and arrivals[next_arrival].t <= now:
            a = arrivals[next_arrival]
            world.queue.extend(Task(arrived=a.t, duration=a.task_s) for _ in range(a.tasks))
            next_arrival += 1
        if now >= next_poll:
            scaler.poll(world, now)
            next_poll += scaler.poll_s
        world.step(now)
        finished = len(world.waits) >= total and world.idle()
        if now >= trace.horizon_s and ((finished and not world.pods) or now > trace.horizon_s + TAIL_LIMIT_S):
            break
        now += STEP_S
    waits = np.array(world.waits, dtype=float)
    return {"worker_seconds": round(world.worker_seconds, 1),
            "p50_wait_s": round(float(np.percentile(waits, 50)), 1) if waits.size else 0.0,
            "p95_wait_s": round(float(np.percentile(waits, 95)), 1) if waits.size else 0.0,
            "max_wait_s": round(float(waits.max()), 1) if waits.size else 0.0,
            "interrupted_tasks": world.interrupted}


def compare(trace: Trace, settings: ScaleSettings, poll_s: float) -> dict:
    return {"vidfarm": replay(trace, VidfarmScaler(settings, poll_s)),
            "keda": replay(trace, KedaScaler(settings))}
