"""The bound for scalers that react (autoscaler/optimum_reactive.py) against brute force: on
tiny traces, every schedule of replica counts whose rises come at a poll that sees a task
waiting is replayed through the simulator's own world, and the bound must never exceed the
cheapest that keeps the wait; it is never below the clairvoyant bound; and the simulated
scalers of the class (KEDA, vidfarm above a cold start) ask only with a task waiting and never
beat it."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from autoscaler.keda import KedaScaler, KedaSettings
from autoscaler.optimum import lower_bound
from autoscaler.optimum_reactive import AskSteps, reactive_bound
from autoscaler.simulate import Bounds, VidfarmScaler, World, load_trace, replay
from core.settings import get_settings
from tests.test_autoscaler_optimum import Scripted, random_cases, tiny

TRACES = Path(__file__).resolve().parents[1] / "bench" / "traces"


class AskCounting(World):
    """A world that counts the pods asked for at a poll that sees no task waiting."""

    def __init__(self, bounds: Bounds):
        super().__init__(bounds)
        self.asks_on_empty_queue = 0

    def add_pods(self, now: float, count: int) -> None:
        before = len(self.pods)
        super().add_pods(now, count)
        if len(self.pods) > before and not self.queue:
            self.asks_on_empty_queue += 1


def cheapest_reacting(trace, bounds: Bounds, steps: int, wait_s: float, key: str, poll: int = 1) -> float:
    """The cheapest schedule of replica counts that asks for pods only at a multiple of ``poll``
    with a task waiting (every other schedule is left out) and keeps ``key`` within ``wait_s``."""
    best = math.inf
    for schedule in itertools.product(range(bounds.max_workers + 1), repeat=steps):
        world = AskCounting(bounds)
        scripted = Scripted(schedule)
        asked_at: list[int] = []
        add = world.add_pods

        def add_pods(now, count, add=add, asked_at=asked_at):
            asked_at.append(int(now))
            add(now, count)
        world.add_pods = add_pods
        result = replay(trace, scripted, bounds, world)
        if world.asks_on_empty_queue or any(step % poll for step in asked_at):
            continue
        if result[key] <= wait_s + 1e-9:
            best = min(best, result["worker_seconds"])
    return best


@pytest.mark.parametrize("arrivals,pod_start,wait", list(random_cases(4)) + list(random_cases(6, seed=29)))
def test_the_reactive_bound_never_exceeds_the_cheapest_schedule_that_reacts(arrivals, pod_start, wait):
    trace, bounds = tiny(arrivals, pod_start), Bounds(max_workers=2, pod_start_s=pod_start, grace_s=30)
    for key, late in (("max_wait_s", 0), ("p95_wait_s", None)):
        best = cheapest_reacting(trace, bounds, 6, wait, key)
        clairvoyant = lower_bound(trace, bounds, wait, slot_s=1.0, late_tasks=late)
        bound = reactive_bound(trace, bounds, wait, slot_s=1.0, late_tasks=late)
        assert clairvoyant - 1e-6 <= bound <= best + 1e-6, (key, clairvoyant, bound, best)


@pytest.mark.parametrize("arrivals,pod_start,wait", list(random_cases(3, seed=5)))
def test_the_reactive_bound_holds_for_scalers_that_poll_every_other_second(arrivals, pod_start, wait):
    trace, bounds = tiny(arrivals, pod_start), Bounds(max_workers=2, pod_start_s=pod_start, grace_s=30)
    for key, late in (("max_wait_s", 0), ("p95_wait_s", None)):
        best = cheapest_reacting(trace, bounds, 6, wait, key, poll=2)
        assert reactive_bound(trace, bounds, wait, poll_s=2.0, slot_s=1.0, late_tasks=late) <= best + 1e-6, key


def test_no_pod_for_a_task_that_has_not_come():
    # One 2 s task at 3 s, pods take 2 s to start, a 1 s wait. Knowing the future, a pod asked
    # for at 2 s is up when it comes (4 worker-seconds: the clairvoyant bound). A pod asked for
    # when it is seen is up at 5 s, 2 s after it came: no scaler that reacts keeps the wait.
    trace, bounds = tiny([(3, 1, 2)], pod_start_s=2), Bounds(max_workers=2, pod_start_s=2, grace_s=30)
    assert lower_bound(trace, bounds, 1, slot_s=1.0, late_tasks=0) == pytest.approx(4.0)
    assert cheapest_reacting(trace, bounds, 6, 1, "max_wait_s") == math.inf
    assert reactive_bound(trace, bounds, 1, slot_s=1.0, late_tasks=0) == math.inf
    # With a 2 s wait it reacts in time, at the same cost.
    assert cheapest_reacting(trace, bounds, 6, 2, "max_wait_s") == 4.0
    assert reactive_bound(trace, bounds, 2, slot_s=1.0, late_tasks=0) == pytest.approx(4.0)


def test_steps_outside_every_window_form_gaps_each_needing_a_late_task():
    # Windows (wait 2 s): [0, 2] and [10, 12]; polls every 2 s from the first arrival.
    trace = tiny([(0, 1, 1), (10, 1, 1)], pod_start_s=2, horizon_s=12)
    asks = AskSteps(trace, 2.0, poll_s=2.0)
    assert [asks.code(step) for step in (-2, 0, 1, 2, 4, 8, 10, 12, 14, 40)] == [-2, -1, -2, -1, 0, 0, -1, -1, 1, 1]
    assert asks.gaps == 2 and asks.gap_ends == [10.0, math.inf]


def scalers_of_the_class():
    settings = get_settings()
    yield "KEDA 30/0", lambda bounds: KedaScaler(KedaSettings(5.0, 30, 0), bounds.max_workers)
    # vidfarm above a cold start (pod start 20 s + a 5 s poll): no standby
    policy = settings.autoscale_cpu.model_copy(update={"target_wait_s": 42.5})
    yield "vidfarm 42.5 s", lambda bounds: VidfarmScaler(
        policy.model_copy(update={"max_replicas": bounds.max_workers, "pod_start_s": bounds.pod_start_s}),
        settings.autoscale_poll_s)


@pytest.mark.parametrize("name,scaler", list(scalers_of_the_class()), ids=lambda v: v if isinstance(v, str) else "")
def test_both_scalers_react_and_never_beat_the_reactive_bound(name, scaler):
    trace = load_trace(TRACES / "steady.json")
    bounds = Bounds.of(trace)
    world = AskCounting(bounds)
    result = replay(trace, scaler(bounds), bounds, world)
    assert world.asks_on_empty_queue == 0, name
    wait = result["p95_wait_s"] + 0.05                   # the simulator rounds p95 to 0.1 s
    clairvoyant = lower_bound(trace, bounds, wait)
    assert clairvoyant <= reactive_bound(trace, bounds, wait, poll_s=5.0, clairvoyant=clairvoyant) \
        <= result["worker_seconds"]
