"""A lower bound on the worker-seconds any scaler needs for a trace, knowing its future.

``lower_bound(trace, bounds, wait_s)``: no schedule the simulator (``autoscaler.simulate.World``)
can produce spends fewer worker-seconds and keeps the p95 wait within ``wait_s``
(``late_tasks=0``: every wait), even one chosen knowing every arrival in advance. It is the
proven dual bound of a mixed-integer program that every real schedule maps to a feasible
point of no higher cost. The world it relaxes runs in 1 s steps: a pod asked for at step a
bills every step from a, is ready at a + P (P = ``ceil(pod_start_s)``: the first step at or
after its ``ready_at``), and a task of ``task_s`` started at step a holds its pod for the steps
a .. a + D - 1 (D = ``ceil(task_s)``: it ends at the first step at or after a + task_s).

What every real schedule satisfies, and so the program asks:

- Whole pods: ``r[τ]``, the pods that are ready and alive at step τ, is an integer, and zero
  before step P. Each does at most one step of one task per step.
- Cost: every step bills every pod, so cost = sum(r) + P x (pods that ever became ready) +
  (pods stopped while starting) >= sum(r) + P x sum(b), where b[τ] >= r[τ] - r[τ-1]: the
  ready count only rises by pods becoming ready.
- The cap counts replicas (``World.add_pods``): pods asked for and not told to stop, starting
  ones included, but not a busy pod told to stop, which keeps working on its task until it
  ends or its grace runs out. Such a pod, alive at τ, was stopped at a step s > τ - L, with
  L = min(grace_s, the longest D): before that its task or its grace would have ended.
  When ceil(L) <= P, take v = τ - ceil(L): every pod ready at τ was asked by τ - P <= v and
  was not yet told to stop at v, and every pod that becomes ready in (τ, v + P] was asked in
  (τ - P, v], idle and starting, so still a replica at v: r[τ] + sum(b over (τ, τ + P -
  ceil(L)]) <= cap (when P = ceil(L), as on clockwork, that is r <= cap alone). When ceil(L) >
  P, a pod can be told to stop while busy and replaced before its task ends, so the ready
  pods can outnumber the cap: each was a replica at some step of the window [τ - ceil(L), τ -
  P], at most cap at a time, and a replica that was ready before it was stopped lived at
  least max(P, 1) steps, so at most m = 2 + (|window| - 2) // max(P, 1) of them follow one
  another in one of the cap's places: r[τ] <= m x cap.
- A task on time (wait <= wait_s) is in the queue from step ceil(t) and starts by step
  floor(t + wait_s): its D steps of work lie in [ceil(t), floor(t + wait_s) + D - 1]. Work is
  divisible here (spread over steps and pods, an upload's n tasks over at most n pods at
  once): every real schedule is one such division. The steps are grouped into slots of
  ``slot_s`` for the work only (the work of a slot <= the ready pod-steps in it), which keeps
  the program small; the pods stay whole per step.
- p95 <= wait_s allows at most N - 1 - floor(0.95 (N - 1)) tasks to wait longer (numpy's
  interpolated percentile is at least the value of that rank). Late tasks only need D steps
  of some pod, at any step, or after the last one at one worker-second each.

What it leaves out makes it lower than what is reachable (so it is a bound, not a plan): a
task is not cut across pods or steps in reality, the queue is FIFO, and the scaler would
have to know the future. The solver may stop before it has closed the gap (``node_limit``):
what it returns is then its proven dual bound, never a schedule it found. ``whole_pods=False``
solves the same program with fractional pods (a linear program: faster, lower).
tests/test_autoscaler_optimum.py checks it against brute force over every schedule of tiny
traces, busy pods told to stop included.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import Bounds as VariableBounds
from scipy.optimize import LinearConstraint, milp
from scipy.sparse import coo_matrix

from autoscaler.simulate import Bounds, Trace

EPS = 1e-9
NODE_LIMIT = 2000          # branch-and-bound nodes before the solver's proven bound is taken as it is


def allowed_late(tasks: int, percentile: float = 95.0) -> int:
    """Tasks that may wait longer than the bound while numpy's percentile stays within it."""
    return tasks - 1 - math.floor(percentile / 100 * (tasks - 1)) if tasks else 0


def steps(seconds: float) -> int:
    """The whole 1 s steps something of ``seconds`` takes in the simulator (it ends at the
    first step at or after it is due)."""
    return max(0, math.ceil(seconds - EPS))


def ready_cap(bounds: Bounds, longest_task: int) -> tuple[int, int]:
    """(most ready pods at one step, steps after a step whose becoming-ready pods share the
    cap with it): see the module docstring."""
    start, lag = steps(bounds.pod_start_s), min(steps(bounds.grace_s), longest_task)
    if lag <= start:
        return bounds.max_workers, start - lag
    window = lag - start + 1
    return bounds.max_workers * min(window, 2 + (window - 2) // max(start, 1)), 0


class _Rows:
    """A sparse constraint matrix built a row at a time."""

    def __init__(self):
        self.rows, self.cols, self.vals, self.lo, self.hi = [], [], [], [], []

    def add(self, terms, lo, hi) -> None:
        row = len(self.lo)
        for col, val in terms:
            self.rows.append(row), self.cols.append(col), self.vals.append(val)
        self.lo.append(lo), self.hi.append(hi)

    def constraint(self, nvar: int) -> LinearConstraint:
        matrix = coo_matrix((self.vals, (self.rows, self.cols)), shape=(len(self.lo), nvar)).tocsr()
        return LinearConstraint(matrix, self.lo, self.hi)


def lower_bound(trace: Trace, bounds: Bounds, wait_s: float, slot_s: float = 5.0,
                late_tasks: int | None = None, whole_pods: bool = True, node_limit: int = NODE_LIMIT) -> float:
    # Each upload: (first step in the queue, last step of its on-time work + 1, tasks, steps per task).
    groups = []
    for a in trace.arrivals:
        first, d = steps(a.t), steps(a.task_s)
        latest_start = math.floor(a.t + wait_s + EPS)
        groups.append((first, max(first, latest_start + d), a.tasks, d))
    total_tasks = sum(n for _, _, n, _ in groups)
    late = allowed_late(total_tasks) if late_tasks is None else late_tasks
    horizon = max(end for _, end, _, _ in groups)
    start = steps(bounds.pod_start_s)
    most, shared = ready_cap(bounds, max(d for *_, d in groups))
    slots = math.ceil(horizon / slot_s)

    def slot_steps(k: int) -> range:
        return range(math.ceil(k * slot_s - EPS), min(horizon, math.ceil((k + 1) * slot_s - EPS)))

    # Variables: r[0:H] ready pods per step, b[0:H] pods becoming ready, extra (work after the
    # last step), z[0:G] late tasks per upload, then y[g, k] for the slots of each on-time window.
    r0, b0, extra, z0 = 0, horizon, 2 * horizon, 2 * horizon + 1
    y0 = z0 + len(groups)
    y_index = []
    col = y0
    for first, end, _, _ in groups:
        k_first, k_last = int(first // slot_s), int(math.ceil(end / slot_s)) - 1 if end > first else -1
        y_index.append((col, k_first, k_last))
        col += max(0, k_last - k_first + 1)
    nvar = col

    cost = np.zeros(nvar)
    cost[r0:r0 + horizon] = 1.0
    cost[b0:b0 + horizon] = start
    cost[extra] = 1.0
    lower, upper = np.zeros(nvar), np.full(nvar, np.inf)
    upper[r0:r0 + horizon] = [most if tau >= start else 0 for tau in range(horizon)]
    upper[b0:b0 + horizon] = most
    integrality = np.zeros(nvar)
    if whole_pods:
        integrality[r0:r0 + horizon] = 1

    rows = _Rows()
    for tau in range(horizon):                  # b[τ] >= r[τ] - r[τ-1]
        rows.add([(r0 + tau, 1.0), (b0 + tau, -1.0)] + ([(r0 + tau - 1, -1.0)] if tau else []), -np.inf, 0.0)
        if shared:                              # starting pods share the cap with the ready ones
            later = range(tau + 1, min(horizon, tau + shared + 1))
            rows.add([(r0 + tau, 1.0)] + [(b0 + s, 1.0) for s in later], -np.inf, bounds.max_workers)
    served = [[] for _ in range(slots)]
    for g, (first, end, n, d) in enumerate(groups):
        upper[z0 + g] = n
        col, k_first, k_last = y_index[g]
        terms = [(z0 + g, float(d))]            # sum_k y[g, k] + d z[g] = n d
        for k in range(k_first, k_last + 1):
            overlap = sum(1 for tau in slot_steps(k) if first <= tau < end)
            upper[col] = n * overlap            # an upload's n tasks run on at most n pods at once
            terms.append((col, 1.0))
            served[k].append(col)
            col += 1
        rows.add(terms, n * d, n * d)
    for k in range(slots):                      # the work of a slot <= its ready pod-steps
        rows.add([(c, 1.0) for c in served[k]] + [(r0 + tau, -1.0) for tau in slot_steps(k)], -np.inf, 0.0)
    rows.add([(z0 + g, 1.0) for g in range(len(groups))], -np.inf, float(late))      # few enough late tasks
    total_work = sum(n * d for _, _, n, d in groups)                                   # all work served somewhere
    rows.add([(r0 + tau, 1.0) for tau in range(horizon)] + [(extra, 1.0)], total_work, np.inf)

    result = milp(cost, integrality=integrality, bounds=VariableBounds(lower, upper),
                  constraints=rows.constraint(nvar), options={"node_limit": node_limit})
    if result.status == 2:
        return math.inf                          # no schedule at all keeps that wait (the cap is too low)
    if not whole_pods:
        if not result.success:
            raise RuntimeError(f"the lower-bound LP failed: {result.message}")
        return float(result.fun)
    if result.mip_dual_bound is None or not math.isfinite(result.mip_dual_bound):
        raise RuntimeError(f"the lower-bound MILP gave no bound: {result.message}")
    return float(result.mip_dual_bound)          # proven, even where the solver stopped early
