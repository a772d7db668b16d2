"""A lower bound on the worker-seconds any scaler needs for a trace, knowing its future.

``lower_bound(trace, bounds, wait_s)``: no scaler with the same pod start and cap can spend
fewer worker-seconds and keep the p95 wait within ``wait_s`` (``late_tasks=0``: every wait),
even one that knows every arrival in advance. It is the optimum of a linear program that
relaxes the simulator's world (``autoscaler.simulate.World``), so every real schedule maps
to a feasible point of no higher cost:

- Time is cut into slots of ``slot_s``. ``r[t]`` is the mean number of *ready* pods over slot
  t (at most the cap; zero before the first pod could be up, ``pod_start_s`` after t=0). A
  ready pod serves at most one second of work per second.
- A pod costs from the moment it is asked for: its ``pod_start_s`` of starting, then its
  time ready. Each rise of ``r`` needs pods that became ready, each of which spent
  ``pod_start_s`` starting, so cost >= sum(slot_s * r) + pod_start_s * sum(max(0, r[t] - r[t-1]))
  (the rises of a mean over slots add up to no more than the pods that became ready).
- A task on time (wait <= wait_s) starts by arrival + wait_s and runs ``task_s`` on one pod:
  its work lies within [arrival, arrival + wait_s + task_s]. Work is treated as divisible
  (a task may be spread over slots, and an upload's n tasks over at most n pods at once):
  any real schedule is one such division.
- p95 <= wait_s allows at most N - 1 - floor(0.95 (N - 1)) tasks to wait longer (numpy's
  interpolated percentile is at least the value of that rank). Late tasks only have to be
  served by some capacity, anywhere, or after the last slot at one worker-second per second.

What it leaves out makes it lower than what is reachable (so it is a bound, not a plan):
tasks are not cut across pods in reality, starting pods do not count against the cap here,
and the scaler would have to know the future. tests/test_autoscaler_optimum.py checks it
against brute force over every schedule of tiny traces.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from autoscaler.simulate import Bounds, Trace


def allowed_late(tasks: int, percentile: float = 95.0) -> int:
    """Tasks that may wait longer than the bound while numpy's percentile stays within it."""
    return tasks - 1 - math.floor(percentile / 100 * (tasks - 1)) if tasks else 0


def lower_bound(trace: Trace, bounds: Bounds, wait_s: float, slot_s: float = 2.0,
                late_tasks: int | None = None) -> float:
    groups = [(a.t, a.tasks, a.task_s) for a in trace.arrivals]
    total_tasks = sum(n for _, n, _ in groups)
    late = allowed_late(total_tasks) if late_tasks is None else late_tasks
    end = max(t + wait_s + d for t, _, d in groups)
    slots = int(math.ceil(end / slot_s)) + 1
    start_s, cap = bounds.pod_start_s, bounds.max_workers

    # Variables: r[0:S], inc[0:S], extra, z[0:G], then y[g, t] for the slots of each window.
    r0, inc0, extra, z0 = 0, slots, 2 * slots, 2 * slots + 1
    y_slots = []
    for t0, _, d in groups:
        first, last = int(t0 // slot_s), min(slots - 1, int(math.ceil((t0 + wait_s + d) / slot_s)) - 1)
        y_slots.append(range(first, max(first, last) + 1))
    y0 = z0 + len(groups)
    nvar = y0 + sum(len(s) for s in y_slots)

    cost = np.zeros(nvar)
    cost[r0:r0 + slots] = slot_s
    cost[inc0:inc0 + slots] = start_s
    cost[extra] = 1.0

    upper = np.full(nvar, np.inf)
    slot_ends = (np.arange(slots) + 1) * slot_s
    upper[r0:r0 + slots] = cap * np.clip((slot_ends - start_s) / slot_s, 0.0, 1.0)   # nothing ready before start
    for g, (_, n, _) in enumerate(groups):
        upper[z0 + g] = n

    rows, cols, vals, rhs_ub = [], [], [], []
    eq_rows, eq_cols, eq_vals, rhs_eq = [], [], [], []

    def ub(row_terms, bound):
        row = len(rhs_ub)
        for col, val in row_terms:
            rows.append(row), cols.append(col), vals.append(val)
        rhs_ub.append(bound)

    for t in range(slots):                      # r[t] - r[t-1] - inc[t] <= 0
        ub([(r0 + t, 1.0), (inc0 + t, -1.0)] + ([(r0 + t - 1, -1.0)] if t else []), 0.0)
    served = [[] for _ in range(slots)]
    col = y0
    for g, (t0, n, d) in enumerate(groups):
        window_end = t0 + wait_s + d
        row = len(rhs_eq)                       # sum_t y[g, t] + d z[g] = n d
        for t in y_slots[g]:
            overlap = min((t + 1) * slot_s, window_end) - max(t * slot_s, t0)
            upper[col] = n * max(0.0, overlap)  # an upload's n tasks run on at most n pods at once
            eq_rows.append(row), eq_cols.append(col), eq_vals.append(1.0)
            served[t].append(col)
            col += 1
        eq_rows.append(row), eq_cols.append(z0 + g), eq_vals.append(d)
        rhs_eq.append(n * d)
    for t in range(slots):                      # sum_g y[g, t] <= slot_s r[t]
        ub([(c, 1.0) for c in served[t]] + [(r0 + t, -slot_s)], 0.0)
    ub([(z0 + g, 1.0) for g in range(len(groups))], float(late))          # few enough late tasks
    total_work = sum(n * d for _, n, d in groups)                           # all work served somewhere
    ub([(r0 + t, -slot_s) for t in range(slots)] + [(extra, -1.0)], -total_work)

    a_ub = coo_matrix((vals, (rows, cols)), shape=(len(rhs_ub), nvar)).tocsr()
    a_eq = coo_matrix((eq_vals, (eq_rows, eq_cols)), shape=(len(rhs_eq), nvar)).tocsr()
    result = linprog(cost, A_ub=a_ub, b_ub=rhs_ub, A_eq=a_eq, b_eq=rhs_eq,
                     bounds=list(zip(np.zeros(nvar), upper)), method="highs")
    if result.status == 2:
        return math.inf                          # no schedule at all keeps that wait (the cap is too low)
    if not result.success:
        raise RuntimeError(f"the lower-bound LP failed: {result.message}")
    return float(result.fun)
