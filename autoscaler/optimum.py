"""A lower bound on the worker-seconds any scaler needs for a trace, knowing its future.

``lower_bound(trace, bounds, wait_s)``: no schedule the simulator (``autoscaler.simulate.World``)
can produce spends fewer worker-seconds and keeps the p95 wait within ``wait_s``
(``late_tasks=0``: every wait), even one chosen knowing every arrival in advance. It is the
optimum of a linear program that every real schedule maps to, at no higher cost. The world it
relaxes runs in 1 s steps: a pod asked for at step a bills every step from a and is ready at
a + P (P = ``ceil(pod_start_s)``, the first step at or after its ``ready_at``); a task of
``task_s`` started at step a holds its pod for steps a .. a + D - 1 (D = ``ceil(task_s)``: it
is over at the first step at or after a + task_s), so it costs D pod-steps, not ``task_s``.

What every real schedule satisfies, and so the program asks. r[τ] is the pods that are ready
and alive at step τ; the program keeps, per slot k of ``slot_s`` (whole steps), s[k] = r at
the slot's first step, up[k] / down[k] the rises and falls of r from there to the next slot's
first step, and R[k] = the sum of r over the slot (its ready pod-steps):

- Within a slot r lies between s[k] - down[k] and s[k] + up[k], so (B steps in the slot)
  B s[k] - (B - 1) down[k] <= R[k] <= B s[k] + (B - 1) up[k], and up[k] - down[k] = s[k+1] - s[k].
  Nothing is ready before step P.
- Cost: each step bills every pod, ready or starting, so cost >= sum(R) + P x (pods that
  became ready) >= sum(R) + P (s[0] + sum(up)): r only rises by pods becoming ready.
- The cap counts replicas (``World.add_pods``): pods asked for and not told to stop, starting
  ones included, but not a busy pod told to stop, which works on until its task ends or its
  grace runs out. Such a pod, alive at τ, was told at a poll s with its task started by s - 1
  (tasks are taken after the poll), so s > τ - (D - 1); and s > τ - grace_s, or s = τ where the
  grace is under a step (a pod told to stop works the step it is told in, its place in the cap
  already free): s > τ - L with L = min(max(1, grace_s), longest D - 1), counted in whole steps.
  When ceil(L) <= P: at v = τ - ceil(L) every pod ready at τ (asked by τ - P <= v, told to stop,
  if at all, after v) and every pod that becomes ready in (τ, v + P] (asked in (τ - P, v], and
  a starting pod told to stop is gone, so it never was) was a replica: r[τ] + (pods becoming
  ready in (τ, τ + P - ceil(L)]) <= cap. Per slot: s[k] + up[k] + ... + up[k + j - 1] <= cap
  for j = floor((P - ceil(L)) / slot_s) slots (on clockwork P - ceil(L) is 1 step: only r <= cap;
  a fractional program seldom gains by it anyway, as keeping a pod costs less than starting one).
  When ceil(L) > P a busy pod can be told to stop and replaced before its task ends, and the
  ready pods can outnumber the cap: each was a replica at some step of the window
  [τ - ceil(L), τ - P] (c = ceil(L) - P + 1 steps), at most cap at a time, and one that was told
  to stop while busy was a replica at least P + 1 steps, so at most min(c, 2 + (c - 2) // (P + 1))
  of them follow one another in one of the cap's places: r <= that x cap.
- A task on time (wait <= wait_s) is queued from step ceil(t) and starts by step
  floor(t + wait_s) (one that cannot is late): its D pod-steps lie in [ceil(t), floor(t +
  wait_s) + D - 1]. Work is
  divisible here (spread over slots and pods, an upload's n tasks over at most n pods at once):
  every real schedule is one such division, and a slot's work is at most R[k].
- p95 <= wait_s allows at most N - 1 - floor(0.95 (N - 1)) tasks to wait longer (numpy's
  interpolated percentile is at least the value of that rank). Late tasks only need D pod-steps
  somewhere, or after the last slot at one worker-second each.

What it leaves out makes it lower than what is reachable (so it is a bound, not a plan): pods
are fractional here (a mix of 2 and 3 pods is 2.67 pods, never idle, never rising), a task is
not cut across pods or steps in reality, the queue is FIFO, and the scaler would have to know
the future. The bound returned is the higher of this program's and that of
``autoscaler.optimum_dp``, which keeps pods whole but relaxes the deadlines to one backlog
(both are bounds, so the higher is); that program also counts the late tasks in the queue's
order, which this one leaves out (a late task here may be set aside while the ones after it
keep their deadlines; in the FIFO queue it holds them back). Integer s[k] in this program,
with the solver's proven dual bound, was tried: on clockwork 2000 branch-and-bound nodes (105 s) moved it by 9
worker-seconds, where the dynamic program moves it by 29 in about a second.
tests/test_autoscaler_optimum.py checks it against brute force over every schedule of tiny
traces, busy pods told to stop included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds as VariableBounds
from scipy.optimize import LinearConstraint, milp
from scipy.sparse import coo_matrix

from autoscaler.optimum_dp import dp_bound, fifo_late
from autoscaler.simulate import Bounds, Trace

EPS = 1e-9
PRICED_NEAR = 0.85      # price late tasks only where the unpriced program is this near the LP
# λ per late task in queue order (autoscaler.optimum_dp). Any λ >= 0 gives a bound; each is a
# pass of the program. Of 0.5-64, clockwork's peaks at 1 and steady's at 8 (hand-made traces).
LATE_PRICES = (1.0, 8.0)


def allowed_late(tasks: int, percentile: float = 95.0) -> int:
    """Tasks that may wait longer than the bound while numpy's percentile stays within it."""
    return tasks - 1 - math.floor(percentile / 100 * (tasks - 1)) if tasks else 0


def steps(seconds: float) -> int:
    """The whole 1 s steps something of ``seconds`` takes in the simulator (it ends at the
    first step at or after it is due)."""
    return max(0, math.ceil(seconds - EPS))


def ready_cap(bounds: Bounds, longest_task_s: float) -> tuple[int, int]:
    """(most ready pods at one step, steps after a step whose becoming-ready pods share the
    cap with it): see the module docstring. Rounded so that a float's error can only loosen it."""
    start = steps(bounds.pod_start_s)
    lag = min(max(1, math.ceil(bounds.grace_s)), math.ceil(longest_task_s) - 1)
    if lag <= start:
        return bounds.max_workers, start - lag
    window = lag - start + 1
    return bounds.max_workers * min(window, 2 + (window - 2) // (start + 1)), 0


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


def latest_start(t: float, wait_s: float) -> int:
    """The last step at which a task that came at ``t`` starts within ``wait_s``."""
    return math.floor(t + wait_s + EPS)


def on_time_work(trace: Trace, wait_s: float) -> list[tuple[int, int, int, int]]:
    """Each upload: (first step in the queue, last step of its on-time work + 1, tasks, steps per task)."""
    groups = []
    for a in trace.arrivals:
        first, d, latest = steps(a.t), steps(a.task_s), latest_start(a.t, wait_s)
        groups.append((first, latest + d if latest >= first else first, a.tasks, d))   # else late
    return groups


def queue_order(trace: Trace, wait_s: float) -> list[tuple[int, int, int, int]]:
    """Each upload in the simulator's queue order (by arrival, stably): (first step, latest
    start step, tasks, steps per task)."""
    return [(steps(a.t), latest_start(a.t, wait_s), a.tasks, steps(a.task_s))
            for a in sorted(trace.arrivals, key=lambda a: a.t)]


def work_horizon(trace: Trace, wait_s: float) -> int:
    """The step after the last one at which on-time work can run: the programs' horizon."""
    return max(end for _, end, _, _ in on_time_work(trace, wait_s))


def slot_ranges(horizon: int, slot_s: float) -> list[range]:
    """The steps of each slot of ``slot_s`` up to ``horizon``."""
    return [range(math.ceil(k * slot_s - EPS), min(horizon, math.ceil((k + 1) * slot_s - EPS)))
            for k in range(math.ceil(horizon / slot_s))]


@dataclass(frozen=True)
class RiseLimits:
    """Where the ready pods may rise, for scalers that may ask for pods only at some steps
    (``autoscaler.optimum_reactive`` builds it; here it is plain data, per step and per slot)."""
    ready_at_zero: bool                      # whether pods may be ready at step 0 (asked for at -P)
    slot_gaps: list[tuple[int, ...] | None]  # per slot of ``slot_ranges``: None where its rises are free;
                                             # else the gaps they need used (none: no rise at all)
    gap_ends: list[float]                    # per gap (in time order), its last step + 1
    may_rise: np.ndarray                     # per step τ < horizon: whether pods may become ready at τ


def late_slack(groups, late: int) -> int:
    """The pod-steps of the ``late`` longest tasks: the most work late tasks can leave behind."""
    longest = sorted((d for _, _, n, d in groups for _ in range(n)), reverse=True)
    return sum(longest[:late])


def lower_bound(trace: Trace, bounds: Bounds, wait_s: float, slot_s: float = 5.0,
                late_tasks: int | None = None, rises: RiseLimits | None = None) -> float:
    """``rises``: where the ready pods may rise (``autoscaler.optimum_reactive``, built for the same
    ``wait_s`` and ``slot_s``); None: anywhere."""
    groups = on_time_work(trace, wait_s)
    total_tasks = sum(n for _, _, n, _ in groups)
    late = allowed_late(total_tasks) if late_tasks is None else late_tasks
    horizon = work_horizon(trace, wait_s)
    start = steps(bounds.pod_start_s)
    most, shared = ready_cap(bounds, max(a.task_s for a in trace.arrivals))
    ranges = slot_ranges(horizon, slot_s)
    slots = len(ranges)

    # Variables per slot k: s[k] ready pods at its first step (whole), up[k] / down[k] the rises and
    # falls from there to the next slot's first step, R[k] its ready pod-steps; then extra (work
    # after the last step), z[0:G] late tasks per upload, y[g, k] for the slots of each window.
    s0, up0, down0, R0 = 0, slots, 2 * slots, 3 * slots
    extra, z0 = 4 * slots, 4 * slots + 1
    y0 = z0 + len(groups)
    y_index = []
    col = y0
    for first, end, _, _ in groups:
        k_first, k_last = int(first // slot_s), int(math.ceil(end / slot_s)) - 1 if end > first else -1
        y_index.append((col, k_first, k_last))
        col += max(0, k_last - k_first + 1)
    gaps = len(rises.gap_ends) if rises is not None else 0
    gap0 = col                                  # then, with ``rises``, o[g]: whether gap g is used
    slack0 = col + gaps                         # and D[g]: late tasks not yet used to open gaps
    nvar = slack0 + gaps

    cost = np.zeros(nvar)
    cost[R0:R0 + slots] = 1.0
    cost[up0:up0 + slots] = start
    cost[s0] = start                            # the first slot's pods rose from none
    cost[extra] = 1.0
    lower, upper = np.zeros(nvar), np.full(nvar, np.inf)

    rows = _Rows()
    for k in range(slots):
        ready = [tau for tau in ranges[k] if tau >= start]
        width = len(ranges[k])
        upper[s0 + k] = most if ranges[k].start >= start else 0
        upper[R0 + k] = most * len(ready)
        # R[k] <= width s[k] + (width - 1) up[k]; R[k] >= width s[k] - (width - 1) down[k]
        rows.add([(R0 + k, 1.0), (s0 + k, -width), (up0 + k, -(width - 1))], -np.inf, 0.0)
        rows.add([(R0 + k, 1.0), (s0 + k, -width), (down0 + k, width - 1)], 0.0, np.inf)
        # up[k] - down[k] = s[k+1] - s[k] (none after the last slot)
        rows.add([(up0 + k, 1.0), (down0 + k, -1.0), (s0 + k, 1.0)] + ([(s0 + k + 1, -1.0)] if k + 1 < slots else []),
                 0.0, 0.0)
        # Pods that become ready within ``shared`` steps of a slot's first step share the cap with it.
        ahead = [up0 + j for j in range(k, min(slots, k + int(shared // slot_s)))]
        if ahead:
            rows.add([(s0 + k, 1.0)] + [(c, 1.0) for c in ahead], -np.inf, bounds.max_workers)
    served = [[] for _ in range(slots)]
    for g, (first, end, n, d) in enumerate(groups):
        upper[z0 + g] = n
        col, k_first, k_last = y_index[g]
        terms = [(z0 + g, float(d))]            # sum_k y[g, k] + d z[g] = n d
        for k in range(k_first, k_last + 1):
            overlap = sum(1 for tau in ranges[k] if first <= tau < end)
            upper[col] = n * overlap            # an upload's n tasks run on at most n pods at once
            terms.append((col, 1.0))
            served[k].append(col)
            col += 1
        rows.add(terms, n * d, n * d)
    for k in range(slots):                      # the work of a slot <= its ready pod-steps
        rows.add([(c, 1.0) for c in served[k]] + [(R0 + k, -1.0)], -np.inf, 0.0)
    rows.add([(z0 + g, 1.0) for g in range(len(groups))], -np.inf, float(late))      # few enough late tasks
    if rises is not None:
        if not rises.ready_at_zero:
            upper[s0] = 0
        for k, needed in enumerate(rises.slot_gaps):   # rises in slot k: pods ready at its steps after the first
            if needed is None:
                continue
            if not needed:
                upper[up0 + k] = 0
            else:
                rows.add([(up0 + k, 1.0)] + [(gap0 + g, -float(most)) for g in needed], -np.inf, 0.0)
        # Each gap used needs a late task of its own whose latest start comes before the gap ends
        # (autoscaler.optimum_reactive): the gaps used up to gap g are at most the late tasks due
        # before its end, D[g] = D[g-1] + (late tasks due in between) - o[g] >= 0.
        latest = [latest_start(a.t, wait_s) for a in trace.arrivals]
        upper[gap0:slack0] = 1.0
        for g, end in enumerate(rises.gap_ends):
            begin = rises.gap_ends[g - 1] if g else -math.inf
            due = [(z0 + u, -1.0) for u, step in enumerate(latest) if begin <= step < end]
            rows.add([(gap0 + g, 1.0), (slack0 + g, 1.0)] + ([(slack0 + g - 1, -1.0)] if g else []) + due, 0.0, 0.0)
    total_work = sum(n * d for _, _, n, d in groups)                                   # all work served somewhere
    rows.add([(R0 + k, 1.0) for k in range(slots)] + [(extra, 1.0)], total_work, np.inf)

    result = milp(cost, bounds=VariableBounds(lower, upper), constraints=rows.constraint(nvar))
    if result.status == 2:
        return math.inf                          # no schedule at all keeps that wait (the cap is too low)
    if not result.success:
        raise RuntimeError(f"the lower-bound LP failed: {result.message}")
    slack = late_slack(groups, late)
    may_rise = None if rises is None else rises.may_rise
    unpriced = dp_bound(groups, horizon, start, most, slack, may_rise=may_rise)
    best = max(float(result.fun), unpriced)
    # Late tasks in the queue's order (autoscaler.optimum_dp): where no task outlasts the grace,
    # none is ever cut and the queue's order stands. Each price is another pass of the program,
    # so they are tried only where the program without them comes near the LP (on the hand-made
    # traces they raised it by 16 % at most; office-hours' is 17 % below it).
    if max(a.task_s for a in trace.arrivals) <= bounds.grace_s and unpriced >= PRICED_NEAR * best:
        fifo = fifo_late(queue_order(trace, wait_s), late)
        best = max([best] + [dp_bound(groups, horizon, start, most, slack, fifo, price, may_rise)
                             for price in LATE_PRICES])
    return best
