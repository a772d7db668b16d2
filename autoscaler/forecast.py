"""How long queued tasks will wait with n workers: the arithmetic behind ``size_by=wait``.

Pure functions, no clock: ``autoscaler.policy`` calls them with what one observation saw.

Work is measured in seconds of one worker. A task's work is its segment's frames times the
queue's cost per frame, learnt from finished tasks (``Cost``); a task whose frames are
unknown counts as the mean finished task. The forecast is a FIFO list schedule: every
worker has a time at which it can take its next task (a busy one when its task should end,
an idle one now, a starting one when its pod should be up, a new one after ``pod_start_s``),
and each queued task, head first, goes to the worker free first. That is what Celery does
with prefetch 1 and one process per worker, so with exact costs the forecast is exact until
the next arrival; arrivals after now are the business of the arrival rate
(``workers_for_rate``), not of the schedule.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

COST_SAMPLES = 50          # finished tasks the cost per frame is averaged over


@dataclass(frozen=True)
class Cost:
    """Seconds of work per frame of one queue, from its last finished tasks."""
    samples: tuple[tuple[int, float], ...] = ()     # (frames, seconds), oldest first

    def learn(self, finished: tuple[tuple[int, float], ...]) -> "Cost":
        kept = tuple((f, s) for f, s in self.samples + tuple(finished) if f > 0 and s >= 0)
        return Cost(kept[-COST_SAMPLES:])

    @property
    def known(self) -> bool:
        return bool(self.samples)

    @property
    def per_frame(self) -> float:
        return sum(s for _, s in self.samples) / sum(f for f, _ in self.samples)

    @property
    def mean_task_s(self) -> float:
        return sum(s for _, s in self.samples) / len(self.samples)

    def of(self, frames: int | None) -> float:
        return self.mean_task_s if frames is None else frames * self.per_frame


def forecast_waits(free_at: list[float], queued: list[tuple[float, float]], with_work: bool = False) -> list[float]:
    """Each of ``queued`` tasks' wait (``with_work``: wait + own work, the latency), given as
    (age so far, work) head first, when each is taken by the first free worker. No worker at
    all: infinite for every task."""
    if not free_at:
        return [math.inf] * len(queued)
    heap = list(free_at)
    heapq.heapify(heap)
    waits = []
    for age, work in queued:
        start = heapq.heappop(heap)
        waits.append(age + start + (work if with_work else 0.0))
        heapq.heappush(heap, start + work)
    return waits


def free_times(n: int, busy_left: list[float], idle: int, starting_left: list[float], pod_start_s: float) -> list[float]:
    """When each of ``n`` workers can take a task. Going below what exists removes starting
    workers first (the ReplicaSet deletes unready pods first, the local backend its newest),
    the latest asked for first, then idle ones; busy workers are never removed, but below
    their count only the ``n`` free first go on taking tasks (the others go once idle)."""
    busy = sorted(busy_left)
    if n <= len(busy):
        return busy[:n]
    keep = n - len(busy)
    starting = sorted(starting_left)                         # soonest ready first: the ones kept
    ready_idle = min(idle, keep)
    kept_starting = starting[:keep - ready_idle]
    new = keep - ready_idle - len(kept_starting)
    return busy + [0.0] * ready_idle + kept_starting + [pod_start_s] * new


def workers_for_wait(bound_s: float, lowest: int, highest: int, busy_left: list[float], idle: int,
                     starting_left: list[float], pod_start_s: float, queued: list[tuple[float, float]],
                     with_work: bool = False) -> tuple[int, float]:
    """The fewest workers in [lowest, highest] whose forecast starts each queued task within
    ``bound_s`` (``with_work``: ends it), or, for a task that cannot make it even with
    ``highest`` workers, as early as ``highest`` would. Task by task, not the worst wait
    alone: a task that already waited too long pushes nobody to waste workers, but neither
    does it hide the younger tasks behind it that more workers would still start in time
    (the worst wait, an old task's, does not move with the workers). Returns (workers, the
    forecast worst wait with them). More workers never make a task start later in a FIFO
    list schedule, so the search can stop at the first fit."""
    def forecast(n: int) -> list[float]:
        return forecast_waits(free_times(n, busy_left, idle, starting_left, pod_start_s), queued, with_work)

    best = forecast(highest)
    for n in range(lowest, highest):
        waits = forecast(n)
        if all(w <= max(bound_s, b) + 1e-9 for w, b in zip(waits, best)):
            return n, max(waits, default=0.0)
    return highest, max(best, default=0.0)


def workers_for_rate(arrived_work_s: float, window_s: float) -> int:
    """Workers that keep up with the work that arrived over the last ``window_s``: below
    that, the queue only grows until the next burst of scale-up."""
    rate = arrived_work_s / window_s
    return math.ceil(rate - 1e-9) if rate > 0 else 0
