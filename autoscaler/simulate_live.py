"""Replays cameras and uploads together: live workers of their own versus one shared pool.

Trace (JSON, ``LiveTrace``): cameras that come and go (``{on_s, off_s?, fps}``), each sending
one segment of ``segment_s`` seconds every ``segment_s`` (its frames x ``cost_per_frame_s``
of work), and batch arrivals as in ``autoscaler.simulate`` (``{t, tasks, task_s}``), under
one cap on workers (``max_workers``) and one pod start.

Two farms see the same work:
- ``vidfarm``: what the chart runs. A live Deployment sized by ``decide`` with the cameras'
  floor (``autoscaler.live``) and size_by=latency, and a batch Deployment sized by ``decide``
  in what the cap leaves (``batch_room``); live workers serve only the live queue.
- ``shared``: one pool whose workers take live segments first (celeryconfig's priority
  order), sized by ``decide`` on both queues' tasks together, without the cameras' floor:
  what a farm with workers ``-Q live,cpu`` and one autoscaled Deployment does.

A segment's latency is capture to result: the ``segment_s`` it takes to record, then its wait
for a worker and its own work. The world is simulated in ``STEP_S`` steps (live work is
shorter than a second); a pod costs worker-seconds from when it is asked for until it is gone.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from autoscaler.live import batch_room
from autoscaler.policy import Observation, ScaleState, decide
from autoscaler.simulate import Arrival
from core.settings import LiveWorkerScaling, ScaleSettings

STEP_S = 0.1
TAIL_S = 600.0
FIRST_MINUTE_S = 60.0


class Camera(BaseModel):
    on_s: float = Field(ge=0)
    off_s: float | None = None
    fps: float = Field(gt=0)


class LiveTrace(BaseModel):
    name: str
    horizon_s: float = Field(gt=0)
    pod_start_s: float = Field(ge=0)
    segment_s: float = Field(default=2.0, gt=0)
    cost_per_frame_s: float = Field(gt=0)
    max_workers: int = Field(ge=1)
    cameras: list[Camera]
    batch: list[Arrival] = []


def load_live_trace(path: Path) -> LiveTrace:
    return LiveTrace.model_validate(json.loads(Path(path).read_text()))


@dataclass(eq=False)
class Job:
    arrived: float
    work: float
    frames: int
    live: bool
    captured: float = 0.0                  # live: when its first frame was captured
    seen_waiting: float | None = None
    seen_running: float | None = None


@dataclass(eq=False)
class Pod:
    pool: str
    ready_at: float
    job: Job | None = None
    ends_at: float = 0.0


@dataclass
class Pool:
    """Pods of one Deployment and the queues they serve, first queue first."""
    name: str
    queues: tuple[str, ...]
    pods: list[Pod] = field(default_factory=list)
    finished: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class LiveWorld:
    trace: LiveTrace
    pools: dict[str, Pool]
    queues: dict[str, deque] = field(default_factory=lambda: {"live": deque(), "cpu": deque()})
    latencies: list[float] = field(default_factory=list)
    batch_waits: list[float] = field(default_factory=list)
    worker_seconds: float = 0.0
    most_workers: int = 0

    def arrive(self, job: Job) -> None:
        self.queues["live" if job.live else "cpu"].append(job)

    def step(self, now: float) -> None:
        for pool in self.pools.values():
            for pod in pool.pods:
                if pod.job is not None and now >= pod.ends_at - 1e-9:
                    job = pod.job
                    if job.live:
                        self.latencies.append((job.captured, now - job.captured))
                    else:
                        self.batch_waits.append(job.seen_running - job.arrived)
                    pool.finished.append((job.frames, job.work))
                    pod.job = None
                for queue in pool.queues:
                    if pod.job is None and now >= pod.ready_at and self.queues[queue]:
                        pod.job = self.queues[queue].popleft()
                        pod.job.seen_running = now
                        pod.ends_at = now + pod.job.work
        pods = sum(len(p.pods) for p in self.pools.values())
        self.worker_seconds += pods * STEP_S
        self.most_workers = max(self.most_workers, pods)

    def observe(self, pool: Pool, now: float, cameras: tuple[float, ...], poll_s: float) -> Observation:
        waiting = [j for q in pool.queues for j in self.queues[q]]
        arrived = []
        for job in waiting + [p.job for p in pool.pods if p.job is not None]:
            if job.seen_waiting is None:
                job.seen_waiting = now
                arrived.append(job.frames)
        busy = [p for p in pool.pods if p.job is not None]
        finished, pool.finished = tuple(pool.finished), []
        return Observation(now=now, waiting=len(waiting), running=len(busy), replicas=len(pool.pods),
                           busy_workers=len(busy), queued=tuple((now - j.seen_waiting, j.frames) for j in waiting),
                           in_hand=tuple((now - p.job.seen_running, p.job.frames) for p in busy),
                           finished=finished, arrived=tuple(arrived), cameras=cameras, poll_s=poll_s)

    def resize(self, pool: Pool, replicas: int, now: float) -> None:
        change = replicas - len(pool.pods)
        pool.pods += [Pod(pool.name, now + self.trace.pod_start_s) for _ in range(max(0, change))]
        idle = sorted((p for p in pool.pods if p.job is None), key=lambda p: -p.ready_at)   # starting ones first
        for pod in idle[:max(0, -change)]:
            pool.pods.remove(pod)


def segments(trace: LiveTrace) -> list[Job]:
    """Every camera's segments; cameras start at different phases (as real ones do)."""
    jobs = []
    for n, camera in enumerate(trace.cameras):
        frames = round(camera.fps * trace.segment_s)
        phase = (n * 0.37 % 1.0) * trace.segment_s
        captured = camera.on_s + phase
        end = min(camera.off_s if camera.off_s is not None else trace.horizon_s, trace.horizon_s)
        while captured + trace.segment_s <= end:
            jobs.append(Job(arrived=captured + trace.segment_s, work=frames * trace.cost_per_frame_s, frames=frames,
                            live=True, captured=captured))
            captured += trace.segment_s
    return jobs


def cameras_at(trace: LiveTrace, now: float) -> tuple[float, ...]:
    return tuple(c.fps for c in trace.cameras if c.on_s <= now and (c.off_s is None or now < c.off_s))


def replay_live(trace: LiveTrace, live: ScaleSettings, batch: ScaleSettings, poll_s: float, layout: str) -> dict:
    """layout: ``vidfarm`` (a live Deployment of its own, first at the cap) or ``shared``."""
    pools = ({"live": Pool("live", ("live",)), "cpu": Pool("cpu", ("cpu",))} if layout == "vidfarm"
             else {"cpu": Pool("cpu", ("live", "cpu"))})
    world = LiveWorld(trace, pools)
    jobs = sorted(segments(trace) + [Job(a.t, a.task_s, a.frames or round(a.task_s * 10), False) for a in trace.batch
                                     for _ in range(a.tasks)], key=lambda j: j.arrived)
    states = {name: ScaleState() for name in pools}
    shared = batch.model_copy(update={"max_replicas": trace.max_workers, "pod_start_s": trace.pod_start_s})
    live = live.model_copy(update={"max_replicas": trace.max_workers, "pod_start_s": trace.pod_start_s})
    pending, now, next_poll = deque(jobs), 0.0, 0.0
    while now < trace.horizon_s + TAIL_S:
        while pending and pending[0].arrived <= now + 1e-9:
            world.arrive(pending.popleft())
        if now >= next_poll - 1e-9:
            next_poll += poll_s
            if layout == "vidfarm":
                seen = world.observe(pools["live"], now, cameras_at(trace, now), poll_s)
                decision = decide(seen, states["live"], live)
                states["live"] = decision.state
                world.resize(pools["live"], decision.replicas, now)
                room = batch_room(shared, decision.replicas, trace.max_workers)
                decision = decide(world.observe(pools["cpu"], now, (), poll_s), states["cpu"], room)
            else:
                decision = decide(world.observe(pools["cpu"], now, (), poll_s), states["cpu"], shared)
            states["cpu"] = decision.state
            world.resize(pools["cpu"], decision.replicas, now)
        world.step(now)
        if now >= trace.horizon_s and not pending and not any(world.queues.values()) and \
                all(p.job is None for pool in pools.values() for p in pool.pods):
            break
        now = round(now + STEP_S, 6)
    lat, waits = np.array([latency for _, latency in world.latencies]), np.array(world.batch_waits)
    # A farm at zero when the first cameras come waits one pod start whatever it does: the
    # first minute apart.
    warm = np.array([latency for captured, latency in world.latencies if captured >= FIRST_MINUTE_S])

    def pct(values, q):
        return round(float(np.percentile(values, q)), 2) if values.size else 0.0
    return {"live_p50_s": pct(lat, 50), "live_p95_s": pct(lat, 95), "live_max_s": pct(lat, 100),
            "live_max_after_first_minute_s": pct(warm, 100),
            "live_over_s": {f"{b:g}": int((lat > b).sum()) for b in (trace.segment_s + 2, trace.segment_s + 4)},
            "segments": int(lat.size), "batch_p95_wait_s": pct(waits, 95), "batch_max_wait_s": pct(waits, 100),
            "worker_seconds": round(world.worker_seconds), "most_workers": world.most_workers}


def compare_live(trace: LiveTrace, live: LiveWorkerScaling, batch: ScaleSettings, poll_s: float) -> dict:
    return {layout: replay_live(trace, live, batch, poll_s, layout) for layout in ("vidfarm", "shared")}
