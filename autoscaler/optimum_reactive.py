"""A lower bound for scalers that react: pods asked for only while a task is waiting.

``reactive_bound(trace, bounds, wait_s)``: no scaler of the class below spends fewer
worker-seconds in the simulator (``autoscaler.simulate.World``) and keeps the p95 wait within
``wait_s``, even one that knows every arrival in advance. The class: any scaler with the same
cap, pod start and grace that asks for a pod only at a poll that sees a task that has come
and not started (the queue not empty). ``autoscaler.optimum.lower_bound`` (the clairvoyant
bound) may have pods up before an upload comes; no scaler of this class can. (On the
benchmark's traces this bound is only 0-0.15 % above the clairvoyant one at KEDA's window-0
p95s, docs/benchmarks.md: within these relaxations reacting costs almost nothing, so it does
not tell how much of what both scalers pay above the bound is reacting.)

Who is in the class:
- KEDA's Redis list scaler (``autoscaler.keda``): its own loop wakes the Deployment only when
  LLEN > 0, and the HPA's recommendation ceil(LLEN / listLength) is above the current count
  only when LLEN > 0 (the stabilisation and the policies only hold a count or limit a rise).
- vidfarm's policy (``autoscaler.policy.decide``) at a target wait of a cold start (pod start
  + a poll) or more, as far as it was counted: the wait forecast asks for nothing on an empty
  queue, but the rate floor asks while tasks wait or run, so it could ask with the queue empty
  and a worker busy, which is outside the class. tests/test_autoscaler_optimum_reactive.py
  counts the asks on an empty queue in its runs: none. Below a cold start the policy keeps a
  standby for the next burst (``autoscaler.standby``), pods asked for on an empty queue: those
  targets are not in the class, and this bound says nothing about them.

Why it is a lower bound for the class. It is ``autoscaler.optimum``'s program (a linear
program and a dynamic program over whole pods, to which every real schedule maps at no higher
cost), with one more constraint that every schedule of the class satisfies. The steps are the
simulator's 1 s steps; a task that came at t is in the queue from step ceil(t), and on time
if it starts by step floor(t + wait_s) (its window). A pod asked for at step a is ready at
a + P (P = ceil(pod_start_s)), so the ready pods may rise at step τ only if a pod was asked for
at τ - P, at a poll that saw the queue not empty.

- W, the union of every task's window. At a step a in W a task may be waiting: asking is free.
- A step a outside W at which the queue is not empty: the head h of the queue (the first task
  in queue order not yet started; no task here outlasts the grace, so none is cut and tasks
  start in queue order) came by a and starts at a or later, and its window does not hold a:
  it is late (it starts after its latest start).
- Each gap (a maximal run of steps outside W) in which some pod is asked for needs a late task
  of its own: for the k-th such gap, with an ask at step a_k, take x_k, the last task in queue
  order among the head at a_k and the tasks after it whose latest start is before a_k. Every
  one of those starts at a_k or later (queue order), after its latest start: late. Between the
  (k-1)-th gap and this one lies a run of W that ends at some task y's latest start v, with
  a_(k-1) < v < a_k. If y is the head at a_k or after it, it is among them, so x_k's latest
  start is at least v; if y is before the head, the head's latest start is at least v (latest
  starts grow in queue order). Either way x_k's latest start lies in (a_(k-1), a_k): the x_k
  are different tasks, so the gaps used are at most the late tasks, at most
  ``allowed_late``. Before the first task comes, no gap can be used.

Both halves of ``autoscaler.optimum`` take this constraint. The linear program: the pods
that become ready in a slot (its up[k]) were asked for P steps before; where none of those
steps is a poll at or after the first arrival, up[k] = 0; where all of them lie in gaps,
up[k] <= (ready cap) x (o[g] summed over those gaps), o[g] in [0, 1] whether gap g is used,
and, for every gap g, the o of the gaps up to g add up to at most the late tasks (the
program's z) whose latest start comes before g ends (the x_k above). Every schedule of the
class is a solution (o[g] = 1 for the gaps it asks in). The dynamic program over whole pods lets its pods rise
only at the polls after the first arrival (it counts no gaps: the program prices nothing per
gap). The bound is the higher of the two and of the clairvoyant bound (a bound for this
class as for any). Where some task outlasts the grace the queue's order may not stand (a cut
task goes back to the head), and the clairvoyant bound is returned as it is.
tests/test_autoscaler_optimum_reactive.py checks it against brute force over every schedule
of tiny traces whose asks see a waiting task.
"""

from __future__ import annotations

import numpy as np

from autoscaler.optimum import EPS, RiseLimits, latest_start, lower_bound, slot_ranges, steps, work_horizon
from autoscaler.simulate import Bounds, Trace

FREE, NEVER = -1, -2    # ``AskSteps.code``: a pod may be asked for at no cost / not at all (else: a gap's id)


class AskSteps:
    """Where a pod may be asked for, per step a: ``FREE`` (in W, at a poll), ``NEVER`` (not a
    poll, or before the first arrival), else the id of its gap (0, 1, ... in time order;
    ``gaps`` of them, the last one from the last window's end on)."""

    def __init__(self, trace: Trace, wait_s: float, poll_s: float = 1.0):
        arrivals = [(steps(a.t), latest_start(a.t, wait_s)) for a in trace.arrivals]
        self.first, self.poll_s = min(f for f, _ in arrivals), poll_s
        size = max(max(f, latest) for f, latest in arrivals) + 2       # its last step is in the last gap
        covered = np.zeros(size + 1, dtype=np.int64)
        for f, latest in arrivals:
            if latest >= f:                          # else late whatever is done: no window
                covered[f] += 1
                covered[latest + 1] -= 1
        self.in_window = np.cumsum(covered)[:size] > 0
        outside = ~self.in_window
        outside[:self.first] = False
        opens = outside & ~np.concatenate([[False], outside[:-1]])
        self.gap = np.cumsum(opens) - 1
        self.gaps = int(opens.sum())
        closes = outside & ~np.concatenate([outside[1:], [False]])
        # Where each gap ends (its last step + 1); the last one never does.
        self.gap_ends = [float(step + 1) for step in np.flatnonzero(closes)][:self.gaps - 1] + [np.inf]

    def code(self, step: int) -> int:
        polled = abs(step / self.poll_s - round(step / self.poll_s)) < EPS
        if step < self.first or not polled:
            return NEVER
        at = min(step, self.in_window.size - 1)
        return FREE if self.in_window[at] else int(self.gap[at])

    def rise_limits(self, horizon: int, start: int, slot_s: float) -> RiseLimits:
        """Where the ready pods may rise (asked for P = ``start`` steps before), as
        ``autoscaler.optimum.lower_bound`` takes it for slots of ``slot_s`` up to ``horizon``."""
        slot_gaps = []
        for steps_k in slot_ranges(horizon, slot_s):    # rises in a slot: pods ready at its steps after the first
            codes = {self.code(tau - start) for tau in range(steps_k.start + 1, steps_k.stop + 1)}
            slot_gaps.append(None if FREE in codes else tuple(sorted(codes - {NEVER})))
        return RiseLimits(ready_at_zero=self.code(-start) != NEVER, slot_gaps=slot_gaps, gap_ends=self.gap_ends,
                          may_rise=np.array([self.code(tau - start) != NEVER for tau in range(horizon)]))


def reactive_bound(trace: Trace, bounds: Bounds, wait_s: float, poll_s: float = 1.0, slot_s: float = 5.0,
                   late_tasks: int | None = None, clairvoyant: float | None = None) -> float:
    """``poll_s``: the scalers' poll (they ask only at its multiples); ``clairvoyant``:
    ``lower_bound(trace, bounds, wait_s, slot_s, late_tasks)`` where the caller has it."""
    if clairvoyant is None:
        clairvoyant = lower_bound(trace, bounds, wait_s, slot_s=slot_s, late_tasks=late_tasks)
    if clairvoyant == np.inf or max(a.task_s for a in trace.arrivals) > bounds.grace_s:
        return clairvoyant
    rises = AskSteps(trace, wait_s, poll_s).rise_limits(work_horizon(trace, wait_s), steps(bounds.pod_start_s), slot_s)
    return max(clairvoyant, lower_bound(trace, bounds, wait_s, slot_s=slot_s, late_tasks=late_tasks, rises=rises))
