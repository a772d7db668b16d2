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
"""

from __future__ import annotations

import math

import numpy as np

INF = math.inf


def dp_bound(groups, horizon: int, start: int, most: int, slack: int) -> float:
    """groups: (first step, end step of the on-time work, tasks, steps per task)."""
    arriving: dict[int, int] = {}
    due_later = np.zeros(horizon + 1, dtype=np.int64)
    for first, end, n, d in groups:
        arriving[first] = arriving.get(first, 0) + n * d
        due_later[first:max(first, end - 1)] += n * d
    rise = start * np.arange(most + 1)
    value = np.full((most + 1, 1), INF)                      # value[r, B]
    value[0, 0] = 0.0
    for tau in range(horizon):
        top = most if tau >= start else 0
        # Choose this step's ready pods r2 from r: keep or fall for free, or pay P per pod added.
        best = np.minimum.accumulate(value[::-1], axis=0)[::-1].copy()
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
        for r2 in range(top + 1):
            row = best[r2]
            served[r2, 0] = row[:r2 + 1].min()
            tail = row[r2 + 1:r2 + limit]
            served[r2, 1:1 + tail.size] = tail
            served[r2] += r2
        value = served
    left = value.min(axis=0)
    return float((left + np.arange(left.size)).min())
