"""The whole-pod half of the offline bound: a dynamic program over (ready pods, backlog).

The linear program in ``autoscaler.optimum`` may run 2.67 pods where the simulator runs 2 or
3: a mix of a schedule too slow and one too idle is, on average, neither. This program keeps
the pods whole, step by step, and carries the backlog in its state, so a path only counts if
it keeps up. It relaxes the same world (the 1 s steps, P, D and the ready cap of
``autoscaler.optimum``) so that every real schedule is a path of no higher cost:

- State after step τ: r, the ready pods (whole, at most the ready cap, none before step P),
  and B, the pod-steps of work that have come and are not done.
- Each step costs r, and each pod more than the step before costs P more (it spent P billed
  steps starting; falls are free). Work left after the last step costs a pod-step each.
- Work is divisible and any ready pod may do any of it: B falls by up to r a step (by min(B, r):
  doing work early never hurts here). A real pod does at most one step of one task a step.
- Deadlines: after step τ every on-time task due by step τ + 1 is done, so B is at most the
  work that has come and is due later (``due_later``, every task counted) plus the work of
  the late tasks, at most the ``late`` longest ones (``slack``).

The late tasks, counted in the queue's order (``FifoLate``). The backlog above lets the late
tasks' work wait forever, as if they could be set aside; the simulator's queue is FIFO, so a
backlog that stays overdue makes every task behind it late too. What a real schedule
satisfies: the tasks that have started are the first S in arrival order (pods take the head
of the queue; a task cut past its grace goes back to the head, so the order stands, and
``FifoLate`` is only used where no task outlasts the grace, so none is cut and a task's one
start is the start its wait counts). After step τ the work done, A(τ) - B (A: the work come
by τ), is the work of those S tasks less what their running ones still have to do; a task
running after step τ is on a pod ready at τ (at most r of them, pods told to stop included)
with at most D_max - 1 steps left. So the first j tasks (cumulative work C_j) have all
started only if C_j <= A(τ) - B + r (D_max - 1); a task whose latest start is step τ and for
which that fails has not started by its latest start: late. Each task has one latest start,
so these counts, added over the steps, count different tasks, and with the tasks late by
construction (their latest start before their first step) they are at most ``late``. The
count only grows with B, so the path that does its work as early as it can (the one this
program follows for a real schedule) counts no more late tasks than the schedule has.
Counting them in the state would multiply it by ``late`` + 1; instead each such task costs a
price λ >= 0 and the bound is the path's cost + λ x (late tasks) - λ x ``late``: for every
path that keeps to ``late`` this is at most its cost, so each λ gives a lower bound (λ = 0:
the program without this count), and the highest of a few is taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

INF = math.inf


@dataclass(frozen=True)
class FifoLate:
    """The late tasks in the queue's order: per step τ, the tasks whose latest start is τ as
    (C_j of the first of them less its own D, how many, D) blocks, the work come by each
    step (A), the most steps a running task has left (D_max - 1), the tasks late by
    construction and how many may be late in all."""
    due: dict[int, list[tuple[int, int, int]]]
    come_by: np.ndarray
    left_max: int
    late_anyway: int
    allowed: int

    def late_at(self, tau: int, top: int, limit: int) -> np.ndarray | None:
        """Tasks due to start by step τ that have not, per (r, B) after step τ (None: none due)."""
        blocks = self.due.get(tau)
        if not blocks:
            return None
        backlog = np.arange(limit)[None, :]
        done = int(self.come_by[tau]) - backlog + self.left_max * np.arange(top + 1)[:, None]   # the bound on C_S
        late = np.zeros((top + 1, limit), dtype=np.int64)
        for before, n, d in blocks:
            # the block's i-th task (i = 1..n) has C = before + i d; it is late where C > done
            started = np.clip(np.floor_divide(done - before, d), 0, n)
            late += n - started
        return late


def fifo_late(ordered, late: int) -> FifoLate:
    """``ordered``: (first step, latest start step, tasks, steps per task) of each upload, in
    the simulator's queue order (arrivals sorted by time, stably)."""
    due: dict[int, list[tuple[int, int, int]]] = {}
    horizon = max(max(first, latest) for first, latest, _, _ in ordered) + 1
    come_by = np.zeros(horizon + 1, dtype=np.int64)
    cumulative, anyway = 0, 0
    for first, latest, n, d in ordered:
        if latest < first:
            anyway += n                          # cannot start in time at all
        else:
            due.setdefault(latest, []).append((cumulative, n, d))
        come_by[min(first, horizon):] += n * d
        cumulative += n * d
    return FifoLate(due, come_by, max(d for _, _, _, d in ordered) - 1, anyway, late)


def dp_bound(groups, horizon: int, start: int, most: int, slack: int,
             fifo: FifoLate | None = None, price: float = 0.0, may_rise: np.ndarray | None = None) -> float:
    """groups: (first step, end step of the on-time work, tasks, steps per task). With
    ``fifo`` and ``price`` λ > 0: the bound with each late task in queue order priced λ.
    With ``may_rise`` (per step; ``autoscaler.optimum_reactive``): the ready pods rise only
    at the steps where it is true."""
    arriving: dict[int, int] = {}
    due_later = np.zeros(horizon + 1, dtype=np.int64)
    for first, end, n, d in groups:
        arriving[first] = arriving.get(first, 0) + n * d
        due_later[first:max(first, end - 1)] += n * d
    priced = fifo is not None and price > 0
    rise = start * np.arange(most + 1)
    value = np.full((most + 1, 1), INF)                      # value[r, B]
    value[0, 0] = 0.0
    # Before the first work comes the cheapest path has no pods (each would cost a step and
    # rising later costs the same P), so the program starts there.
    for tau in range(min(arriving, default=horizon), horizon):
        top = most if tau >= start else 0
        # Choose this step's ready pods r2 from r: keep or fall for free, or pay P per pod added.
        best = np.minimum.accumulate(value[::-1], axis=0)[::-1].copy()
        if may_rise is None or may_rise[tau]:
            rising = np.minimum.accumulate(value - rise[:, None], axis=0)
            best[1:] = np.minimum(best[1:], rising[:-1] + rise[1:, None])
        best[top + 1:] = INF
        # Work that comes now joins the backlog.
        come = arriving.get(tau, 0)
        if come:
            best = np.concatenate([np.full((most + 1, come), INF), best], axis=1)
        # Serve: r2 pods take up to r2 pod-steps; the deadlines cap the backlog.
        limit = int(due_later[tau]) + slack + 1
        served = np.full((most + 1, limit), INF)
        pods = np.arange(top + 1)
        width = best.shape[1]
        before = pods[:, None] + np.arange(limit)[None, :]      # backlog b after serving: b + r2 before
        served[:top + 1] = np.where(before < width, best[pods[:, None], np.minimum(before, width - 1)], INF)
        # ... or none left, from any backlog of at most r2
        served[:top + 1, 0] = np.minimum.accumulate(best[:top + 1], axis=1)[pods, np.minimum(pods, width - 1)]
        served[:top + 1] += pods[:, None]
        if priced:
            late = fifo.late_at(tau, top, limit)
            if late is not None:
                served[:top + 1] += price * late
        value = served
    left = value.min(axis=0)
    total = float((left + np.arange(left.size)).min())
    if priced:
        total += price * (fifo.late_anyway - fifo.allowed)
    return total
