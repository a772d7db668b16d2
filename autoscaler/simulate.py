"""Replays an arrival trace through our policy and through the KEDA/HPA reference model.

Trace (JSON): ``{"name", "horizon_s", "pod_start_s", "arrivals": [{"t", "tasks", "task_s",
"frames"?}], "max_workers"?, "grace_s"?}``: at time ``t``, ``tasks`` tasks of ``task_s``
seconds each join the queue, each a segment of ``frames`` frames (default: proportional to
its seconds, i.e. one cost per frame for the whole trace).

The world, the same for both scalers (``World``): the same tasks, one task per worker at a
time (prefetch 1), a FIFO queue, the same cap on workers, a pod that serves ``pod_start_s``
after it is asked for and costs worker-seconds from then until it is gone. A pod asked to
stop goes at once when idle; a busy one stops taking tasks and finishes the one in hand if
that fits in the termination grace (Celery's warm shutdown on SIGTERM), costing
worker-seconds until it does; only a task longer than the grace is cut, and it restarts from
the head of the queue (an interrupted task). Time advances in 1 s steps until the horizon
and then until every task is done and the scaler has gone back to zero, so each pays for its
own tail.

vidfarm: ``autoscaler.policy.decide`` (the code the real loop runs) every ``poll_s``, on
what the real observer sees: the queue with each task's frames and how long it has been seen
waiting, the tasks in hand, the tasks finished since the last poll; scale-down stops starting
pods, then idle ones, never a busy one (pod-deletion-cost and the busy floor on a cluster).
KEDA: ``autoscaler.keda``.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from autoscaler.keda import KedaScaler, KedaSettings
from autoscaler.policy import Observation, ScaleState, decide
from core.errors import first_problem
from core.settings import ScaleSettings

STEP_S = 1.0
TAIL_LIMIT_S = 4 * 3600.0          # after the horizon, stop waiting for a scaler that never settles
FRAMES_PER_TASK_SECOND = 10        # a trace without frames: one cost per frame (0.1 s) for all tasks
DEFAULT_GRACE_S = 30.0             # Kubernetes' default terminationGracePeriodSeconds


class Arrival(BaseModel):
    t: float = Field(ge=0)
    tasks: int = Field(ge=1)
    task_s: float = Field(gt=0)
    frames: int | None = Field(default=None, ge=1)


class Trace(BaseModel):
    name: str
    horizon_s: float = Field(gt=0)
    pod_start_s: float = Field(ge=0)
    arrivals: list[Arrival]
    max_workers: int | None = Field(default=None, ge=1)
    grace_s: float | None = Field(default=None, ge=0)
    held_out: bool = False          # made by bench/traces/generate.py; nothing was tuned on it


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


@dataclass(frozen=True)
class Bounds:
    """What both scalers share besides the tasks: the cap, pod start and termination grace."""
    max_workers: int
    pod_start_s: float
    grace_s: float

    @classmethod
    def of(cls, trace: Trace, max_workers: int | None = None, grace_s: float | None = None,
           default_max_workers: int = 8) -> "Bounds":
        """The command line's value, else the trace's, else the default."""
        return cls(max_workers or trace.max_workers or default_max_workers, trace.pod_start_s,
                   grace_s if grace_s is not None else trace.grace_s if trace.grace_s is not None else DEFAULT_GRACE_S)


@dataclass(eq=False)
class Task:
    arrived: float
    duration: float
    frames: int
    started: float | None = None
    seen_waiting: float | None = None      # the first poll that saw it (what the real observer knows)
    seen_running: float | None = None


@dataclass(eq=False)
class Pod:
    asked: float
    ready_at: float
    task: Task | None = None
    finishes_at: float = 0.0
    stop_by: float | None = None           # asked to stop: killed then if still busy


@dataclass
class World:
    """Pods, the queue and the bill; the scalers only choose how many pods exist."""
    bounds: Bounds
    pods: list[Pod] = field(default_factory=list)
    queue: deque = field(default_factory=deque)
    waits: list[float] = field(default_factory=list)    # arrival -> the start of the run that finished
    finished: list[tuple[int, float]] = field(default_factory=list)   # since the scaler last looked
    worker_seconds: float = 0.0
    interrupted: int = 0
    replica_log: list[tuple[float, int]] = field(default_factory=list)   # (time, replicas) at each change

    def replicas(self) -> list[Pod]:
        return [p for p in self.pods if p.stop_by is None]

    def busy(self) -> int:
        return sum(p.task is not None for p in self.pods)

    def add_pods(self, now: float, count: int) -> None:
        room = self.bounds.max_workers - len(self.replicas())
        self.pods += [Pod(asked=now, ready_at=now + self.bounds.pod_start_s) for _ in range(min(count, room))]

    def stop(self, pod: Pod, now: float) -> None:
        if pod.task is None:
            self.pods.remove(pod)
        else:
            pod.stop_by = now + self.bounds.grace_s

    def finish(self, now: float) -> None:
        """Tasks that end by ``now`` end, before the scaler looks; pods told to stop go once
        idle, or when their grace is over."""
        for pod in list(self.pods):
            if pod.task is not None and now >= pod.finishes_at:
                self.waits.append(pod.task.started - pod.task.arrived)
                self.finished.append((pod.task.frames, pod.task.duration))
                pod.task = None
            if pod.stop_by is not None and (pod.task is None or now >= pod.stop_by):
                if pod.task is not None:          # past the grace: cut, it restarts from scratch
                    pod.task.started = pod.task.seen_running = None
                    self.queue.appendleft(pod.task)
                    self.interrupted += 1
                self.pods.remove(pod)

    def serve(self, now: float) -> None:
        """Idle ready pods take the head of the queue; every pod that exists costs this second."""
        for pod in self.pods:
            if pod.task is None and pod.stop_by is None and now >= pod.ready_at and self.queue:
                task = self.queue.popleft()
                task.started = now
                pod.task, pod.finishes_at = task, now + task.duration
        self.worker_seconds += len(self.pods) * STEP_S
        replicas = len(self.replicas())
        if not self.replica_log or self.replica_log[-1][1] != replicas:
            self.replica_log.append((now, replicas))

    def idle(self) -> bool:
        return not self.queue and self.busy() == 0


class VidfarmScaler:
    def __init__(self, settings: ScaleSettings, poll_s: float):
        self.settings, self.poll_s, self.state = settings, poll_s, ScaleState()

    def observe(self, world: World, now: float) -> Observation:
        """What ``autoscaler.observe`` would report: ages from the first poll that saw a task."""
        arrived = []
        for task in world.queue:
            if task.seen_waiting is None:
                task.seen_waiting = now
                arrived.append(task.frames)
        replicas = world.replicas()
        in_hand = []
        for pod in sorted(world.pods, key=lambda p: p.stop_by is not None):    # replicas' tasks first
            if pod.task is not None:
                task = pod.task
                if task.seen_waiting is None:                   # came and was taken between two polls
                    task.seen_waiting = now
                    arrived.append(task.frames)
                if task.seen_running is None:
                    task.seen_running = now
                in_hand.append((now - task.seen_running, task.frames))
        finished, world.finished = tuple(world.finished), []
        return Observation(now=now, waiting=len(world.queue), running=world.busy(), replicas=len(replicas),
                           busy_workers=sum(p.task is not None for p in replicas),
                           queued=tuple((now - t.seen_waiting, t.frames) for t in world.queue),
                           in_hand=tuple(in_hand), finished=finished, arrived=tuple(arrived), poll_s=self.poll_s)

    def poll(self, world: World, now: float) -> None:
        decision = decide(self.observe(world, now), self.state, self.settings)
        self.state = decision.state
        replicas = world.replicas()
        change = decision.replicas - len(replicas)
        if change > 0:
            world.add_pods(now, change)
        # Starting pods first (the latest asked first), then idle ones; never a busy one.
        idle = [p for p in replicas if p.task is None]
        for pod in sorted(idle, key=lambda p: (p.ready_at <= now, -p.asked))[:max(0, -change)]:
            world.stop(pod, now)


def replay(trace: Trace, scaler, bounds: Bounds, world: World | None = None) -> dict:
    """``world``: where the pods live (default a fresh ``World(bounds)``; a bench passes one
    that counts more)."""
    world = World(bounds) if world is None else world
    arrivals = sorted(trace.arrivals, key=lambda a: a.t)
    total = sum(a.tasks for a in arrivals)
    now, next_arrival, next_poll = 0.0, 0, 0.0
    while True:
        while next_arrival < len(arrivals) and arrivals[next_arrival].t <= now:
            a = arrivals[next_arrival]
            frames = a.frames or max(1, round(a.task_s * FRAMES_PER_TASK_SECOND))
            world.queue.extend(Task(arrived=a.t, duration=a.task_s, frames=frames) for _ in range(a.tasks))
            next_arrival += 1
        world.finish(now)
        if now >= next_poll:
            scaler.poll(world, now)
            next_poll += scaler.poll_s
        world.serve(now)
        finished = len(world.waits) >= total and world.idle()
        if now >= trace.horizon_s and ((finished and not world.pods) or now > trace.horizon_s + TAIL_LIMIT_S):
            break
        now += STEP_S
    waits = np.array(world.waits, dtype=float)
    return {"worker_seconds": round(world.worker_seconds, 1),
            "p50_wait_s": round(float(np.percentile(waits, 50)), 1) if waits.size else 0.0,
            "p95_wait_s": round(float(np.percentile(waits, 95)), 1) if waits.size else 0.0,
            "max_wait_s": round(float(waits.max()), 1) if waits.size else 0.0,
            "interrupted_tasks": world.interrupted,
            "replicas": world.replica_log}


def metrics_only(result: dict) -> dict:
    """The five figures of contract 7 (``replay`` also returns the replica log)."""
    return {k: result[k] for k in ("worker_seconds", "p50_wait_s", "p95_wait_s", "max_wait_s", "interrupted_tasks")}


def run_vidfarm(trace: Trace, settings: ScaleSettings, poll_s: float, bounds: Bounds) -> dict:
    ours = settings.model_copy(update={"max_replicas": bounds.max_workers, "pod_start_s": bounds.pod_start_s,
                                       "min_replicas": min(settings.min_replicas, bounds.max_workers)})
    return replay(trace, VidfarmScaler(ours, poll_s), bounds)


def run_keda(trace: Trace, keda: KedaSettings, bounds: Bounds) -> dict:
    return replay(trace, KedaScaler(keda, bounds.max_workers), bounds)


def compare(trace: Trace, settings: ScaleSettings, poll_s: float, keda: KedaSettings = KedaSettings(),
            bounds: Bounds | None = None) -> dict:
    bounds = bounds or Bounds.of(trace, default_max_workers=settings.max_replicas)
    return {"vidfarm": metrics_only(run_vidfarm(trace, settings, poll_s, bounds)),
            "keda": metrics_only(run_keda(trace, keda, bounds))}
