"""The offline lower bound (autoscaler/optimum.py) against brute force: on tiny traces, every
schedule of replica counts a clairvoyant scaler could follow (and, at any one step, telling a
busy pod to stop so that it works on past the cap while a new one starts) is replayed through
the simulator's own world, and the bound must never exceed the cheapest schedule that keeps
the wait; where the relaxation loses nothing (whole tasks on whole pods), it equals it."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from autoscaler.optimum import allowed_late, lower_bound
from autoscaler.simulate import Bounds, Trace, replay


class Scripted:
    """Follows a replica count per second, then keeps what it has (at least one) until the
    work is done: a schedule that leaves tasks behind pays for them late. At step ``let_go``
    it first tells one busy pod to stop: it finishes its task within the grace, outside the
    cap, so the schedule's count can start a new pod beside it."""
    poll_s = 1.0

    def __init__(self, schedule: tuple[int, ...], let_go: int | None = None):
        self.schedule, self.let_go = schedule, let_go

    def poll(self, world, now: float) -> None:
        step = int(now)
        busy = [p for p in world.replicas() if p.task is not None]
        if step == self.let_go and busy:
            world.stop(busy[0], now)
        replicas = world.replicas()
        if step < len(self.schedule):
            wanted = self.schedule[step]
        else:
            wanted = 0 if world.idle() else max(1, len(replicas))
        if wanted > len(replicas):
            world.add_pods(now, wanted - len(replicas))
        # Otherwise it stops idle pods only, starting ones first (a ready one is worth more).
        idle = sorted((p for p in replicas if p.task is None), key=lambda p: (p.ready_at <= now, -p.asked))
        for pod in idle[:max(0, len(replicas) - wanted)]:
            world.stop(pod, now)


def cheapest(trace: Trace, bounds: Bounds, steps: int, wait_s: float, key: str, let_go: bool = False) -> float:
    best = math.inf
    for schedule in itertools.product(range(bounds.max_workers + 1), repeat=steps):
        for step in (None, *range(1, steps)) if let_go else (None,):
            result = replay(trace, Scripted(schedule, step), bounds)
            if result[key] <= wait_s + 1e-9:
                best = min(best, result["worker_seconds"])
    return best


def tiny(arrivals, pod_start_s, horizon_s=6.0) -> Trace:
    return Trace(name="tiny", horizon_s=horizon_s, pod_start_s=pod_start_s,
                 arrivals=[{"t": t, "tasks": n, "task_s": d} for t, n, d in arrivals])


# (case, arrivals (t, tasks, task_s), pod start, cap, wait bound, the cheapest schedule's cost)
EXACT = [
    ("one task: its pod's start and its work", [(0, 1, 2)], 1, 1, 1, 3.0),
    ("no wait: a pod each, started before they come", [(2, 2, 2)], 2, 2, 0, 8.0),
    ("a 2 s wait: one pod serves both in turn", [(2, 2, 2)], 2, 2, 2, 6.0),
]


@pytest.mark.parametrize("case,arrivals,pod_start,cap,wait,cost", EXACT, ids=[c[0] for c in EXACT])
def test_the_bound_is_exact_where_whole_tasks_fill_whole_pods(case, arrivals, pod_start, cap, wait, cost):
    trace, bounds = tiny(arrivals, pod_start), Bounds(max_workers=cap, pod_start_s=pod_start, grace_s=30)
    assert cheapest(trace, bounds, 6, wait, "max_wait_s") == cost
    assert lower_bound(trace, bounds, wait, slot_s=1.0, late_tasks=0) == pytest.approx(cost)


def random_cases(count: int, seed: int = 17, durations=(1, 2, 3, 0.5, 1.5, 2.5)):
    rng = random.Random(seed)
    for _ in range(count):
        arrivals = sorted({(rng.randrange(0, 4), rng.randint(1, 2), rng.choice(durations)) for _ in range(rng.randint(1, 2))})
        yield arrivals, rng.randint(0, 2), rng.choice((0, 1, 3))


@pytest.mark.parametrize("arrivals,pod_start,wait", list(random_cases(8)))
def test_the_bound_never_exceeds_the_cheapest_schedule(arrivals, pod_start, wait):
    trace, bounds = tiny(arrivals, pod_start), Bounds(max_workers=2, pod_start_s=pod_start, grace_s=30)
    for key, late in (("max_wait_s", 0), ("p95_wait_s", None)):
        best = cheapest(trace, bounds, 6, wait, key)
        bound = lower_bound(trace, bounds, wait, slot_s=1.0, late_tasks=late)
        assert bound <= best + 1e-6, (key, bound, best)
        assert bound >= sum(n * math.ceil(d) for _, n, d in arrivals)   # at least the work, in whole steps


@pytest.mark.parametrize("arrivals,pod_start,wait", list(random_cases(6, seed=4, durations=(2, 3, 4, 2.5))))
def test_the_bound_holds_when_a_busy_pod_is_let_go_past_the_cap(arrivals, pod_start, wait):
    # one pod allowed: only letting a busy one go puts two to work at once
    trace, bounds = tiny(arrivals, pod_start), Bounds(max_workers=1, pod_start_s=pod_start, grace_s=30)
    for key, late in (("max_wait_s", 0), ("p95_wait_s", None)):
        best = cheapest(trace, bounds, 6, wait, key, let_go=True)
        assert lower_bound(trace, bounds, wait, slot_s=1.0, late_tasks=late) <= best + 1e-6, key


# (arrivals, pod start, wait at p95, the bound without the queue's order): two pods allowed;
# p95 of 3-4 tasks lets one be late. Found by a search over random tiny traces for the cases
# where counting late tasks in the queue's order (autoscaler/optimum_dp.py) raises the bound.
FIFO_TIGHTER = [
    ([(0, 2, 3), (2, 1, 1)], 2, 3, 9.0),
    ([(1, 2, 2), (2, 1, 1)], 2, 2, 7.0),
    ([(0, 2, 1.5), (2, 1, 1.5)], 2, 2, 8.0),
    ([(0, 2, 1.5), (1, 1, 1)], 2, 3, 7.0),
]


@pytest.mark.parametrize("arrivals,pod_start,wait,unordered", FIFO_TIGHTER)
def test_late_tasks_counted_in_queue_order_raise_the_bound_and_keep_it_one(arrivals, pod_start, wait, unordered):
    trace, bounds = tiny(arrivals, pod_start), Bounds(max_workers=2, pod_start_s=pod_start, grace_s=30)
    best = cheapest(trace, bounds, 6, wait, "p95_wait_s", let_go=True)       # busy pods let go included
    assert unordered < lower_bound(trace, bounds, wait, slot_s=1.0) <= best + 1e-6


def test_a_late_task_cannot_be_set_aside_in_a_fifo_queue():
    # Two 2 s tasks at 1 s and one at 2 s, pods take 2 s to start, two allowed, a 2 s wait at
    # p95: one of three may be late. Without the queue's order the bound let that task's work
    # wait until it was cheapest (8 worker-seconds); in the FIFO queue a task left behind
    # holds back the ones after it, and pricing late tasks in that order gives 9. The
    # cheapest schedule costs 10.
    trace, bounds = tiny([(1, 2, 2), (2, 1, 2)], pod_start_s=2), Bounds(max_workers=2, pod_start_s=2, grace_s=30)
    assert allowed_late(3) == 1
    assert cheapest(trace, bounds, 6, 2, "p95_wait_s") == 10.0
    assert lower_bound(trace, bounds, 2, slot_s=1.0) == pytest.approx(9.0)


def test_a_busy_pod_let_go_works_on_outside_the_cap():
    # Two 3 s tasks, one pod allowed, a 3 s wait: one pod alone starts the second at 4 s. Told
    # to stop at 2 s while busy, the first pod finishes its task outside the cap while a second
    # pod starts: both waits within 3 s. main's LP (ready pods <= cap) called this impossible.
    trace, bounds = tiny([(0, 2, 3)], pod_start_s=1), Bounds(max_workers=1, pod_start_s=1, grace_s=30)
    result = replay(trace, Scripted((1, 1, 1, 1, 1, 1), let_go=2), bounds)
    assert result["max_wait_s"] == 3.0
    assert cheapest(trace, bounds, 6, 3, "max_wait_s") == math.inf       # not without letting one go
    assert lower_bound(trace, bounds, 3, slot_s=1.0, late_tasks=0) <= result["worker_seconds"]


def test_a_task_holds_its_pod_for_whole_steps():
    # A 1.5 s task holds its pod for 2 steps (it is over at the first step after 1.5 s): the
    # cheapest schedule costs the pod's 1 s start and 2 steps. main's LP counted 1.5 s of work
    # and gave 2.5; the bound in whole steps is exact here.
    trace, bounds = tiny([(0, 1, 1.5)], pod_start_s=1), Bounds(max_workers=1, pod_start_s=1, grace_s=30)
    assert cheapest(trace, bounds, 6, 1, "max_wait_s") == 3.0
    assert lower_bound(trace, bounds, 1, slot_s=1.0, late_tasks=0) == pytest.approx(3.0)


def test_whole_pods_no_fraction_of_a_pod_started_early():
    # One 2 s task at 3 s, pods take 2 s to start, a 3 s wait: a pod asked at 1 s is ready at 3 s
    # and serves it (4 worker-seconds). main's LP ran 0.4 of a pod over five seconds for 2.8;
    # the dynamic program over whole pods (autoscaler/optimum_dp.py) is exact here.
    trace, bounds = tiny([(3, 1, 2)], pod_start_s=2), Bounds(max_workers=2, pod_start_s=2, grace_s=30)
    assert cheapest(trace, bounds, 6, 3, "max_wait_s") == 4.0
    assert lower_bound(trace, bounds, 3, slot_s=1.0, late_tasks=0) == pytest.approx(4.0)


def test_a_wait_no_schedule_can_keep_has_an_infinite_bound():
    # three 1 s tasks at once, one worker, no wait: two of three would have to be late, and
    # p95 of three lets none be (numpy's percentile interpolates between the last two)
    trace = tiny([(0, 3, 1)], pod_start_s=0)
    assert allowed_late(3) == 1 and allowed_late(100) == 5
    assert lower_bound(trace, Bounds(max_workers=1, pod_start_s=0, grace_s=30), 0.0, slot_s=1.0) == math.inf


def test_a_pod_let_go_without_grace_still_works_the_step_it_is_told_in():
    # Two 2 s tasks at 0, one pod allowed, no pod start, no grace, a 1 s wait: told to stop at
    # step 1 while busy, the first pod works that step while a second one, in its place in the
    # cap, takes the other task. Ready pods outnumber the cap for a step even with no grace.
    trace, bounds = tiny([(0, 2, 2)], pod_start_s=0), Bounds(max_workers=1, pod_start_s=0, grace_s=0)
    best = cheapest(trace, bounds, 6, 1, "max_wait_s", let_go=True)
    assert best == 4.0
    assert lower_bound(trace, bounds, 1, slot_s=1.0, late_tasks=0) <= best + 1e-6
    assert lower_bound(trace, bounds, 1, slot_s=5.0, late_tasks=0) <= best + 1e-6
