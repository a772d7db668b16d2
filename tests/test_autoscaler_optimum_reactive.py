"""The bound for scalers that react (autoscaler/optimum_reactive.py) against brute force: on
tiny traces, every schedule of replica counts whose rises come at a poll that sees a task
waiting is replayed through the simulator's own world, and the bound must never exceed the
cheapest that keeps the wait; it is never below the clairvoyant bound; and the simulated
scalers of the class (KEDA, vidfarm above a cold start, as far as counted) ask only with a task
waiting and never beat it."""

from __future__ import annotations

import ast
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
    """A world that counts the pods asked for at a poll that sees no task waiting, and keeps
    the steps at which any were asked for."""

    def __init__(self, bounds: Bounds):
        super().__init__(bounds)
        self.asks_on_empty_queue = 0
        self.asked_at: list[int] = []

    def add_pods(self, now: float, count: int) -> None:
        before = len(self.pods)
        super().add_pods(now, count)
        if len(self.pods) > before:
            self.asked_at.append(int(now))
            if not self.queue:
                self.asks_on_empty_queue += 1


def reacting_schedules(trace, bounds: Bounds, steps: int, poll: int = 1):
    """Each schedule of replica counts that asks for pods only at a multiple of ``poll`` with a
    task waiting (every other schedule is left out): (its world after the replay, the result)."""
    for schedule in itertools.product(range(bounds.max_workers + 1), repeat=steps):
        world = AskCounting(bounds)
        result = replay(trace, Scripted(schedule), bounds, world)
        if not world.asks_on_empty_queue and not any(step % poll for step in world.asked_at):
            yield world, result


def reacting_results(trace, bounds: Bounds, steps: int, poll: int = 1) -> list[dict]:
    """The replay results of ``reacting_schedules``: replayed once, then searched for each key
    and wait (the replays are nearly all of these tests' time)."""
    return [result for _, result in reacting_schedules(trace, bounds, steps, poll)]


def cheapest_within(results: list[dict], wait_s: float, key: str) -> float:
    """The cheapest of ``results`` (from ``reacting_results``) that keeps ``key`` within ``wait_s``."""
    return min((result["worker_seconds"] for result in results if result[key] <= wait_s + 1e-9),
               default=math.inf)


@pytest.mark.parametrize("arrivals,pod_start,wait", list(random_cases(4)) + list(random_cases(6, seed=29)))
def test_the_reactive_bound_never_exceeds_the_cheapest_schedule_that_reacts(arrivals, pod_start, wait):
    trace, bounds = tiny(arrivals, pod_start), Bounds(max_workers=2, pod_start_s=pod_start, grace_s=30)
    results = reacting_results(trace, bounds, 6)
    for key, late in (("max_wait_s", 0), ("p95_wait_s", None)):
        best = cheapest_within(results, wait, key)
        clairvoyant = lower_bound(trace, bounds, wait, slot_s=1.0, late_tasks=late)
        bound = reactive_bound(trace, bounds, wait, slot_s=1.0, late_tasks=late)
        assert clairvoyant - 1e-6 <= bound <= best + 1e-6, (key, clairvoyant, bound, best)


@pytest.mark.parametrize("arrivals,pod_start,wait", list(random_cases(3, seed=5)))
def test_the_reactive_bound_holds_for_scalers_that_poll_every_other_second(arrivals, pod_start, wait):
    trace, bounds = tiny(arrivals, pod_start), Bounds(max_workers=2, pod_start_s=pod_start, grace_s=30)
    results = reacting_results(trace, bounds, 6, poll=2)
    for key, late in (("max_wait_s", 0), ("p95_wait_s", None)):
        best = cheapest_within(results, wait, key)
        assert reactive_bound(trace, bounds, wait, poll_s=2.0, slot_s=1.0, late_tasks=late) <= best + 1e-6, key


def test_no_pod_for_a_task_that_has_not_come():
    # One 2 s task at 3 s, pods take 2 s to start, a 1 s wait. Knowing the future, a pod asked
    # for at 2 s is up when it comes (4 worker-seconds: the clairvoyant bound). A pod asked for
    # when it is seen is up at 5 s, 2 s after it came: no scaler that reacts keeps the wait.
    trace, bounds = tiny([(3, 1, 2)], pod_start_s=2), Bounds(max_workers=2, pod_start_s=2, grace_s=30)
    assert lower_bound(trace, bounds, 1, slot_s=1.0, late_tasks=0) == pytest.approx(4.0)
    results = reacting_results(trace, bounds, 6)
    assert cheapest_within(results, 1, "max_wait_s") == math.inf
    assert reactive_bound(trace, bounds, 1, slot_s=1.0, late_tasks=0) == math.inf
    # With a 2 s wait it reacts in time, at the same cost.
    assert cheapest_within(results, 2, "max_wait_s") == 4.0
    assert reactive_bound(trace, bounds, 2, slot_s=1.0, late_tasks=0) == pytest.approx(4.0)


def test_steps_outside_every_window_form_gaps_each_needing_a_late_task():
    # Windows (wait 2 s): [0, 2] and [10, 12]; polls every 2 s from the first arrival.
    trace = tiny([(0, 1, 1), (10, 1, 1)], pod_start_s=2, horizon_s=12)
    asks = AskSteps(trace, 2.0, poll_s=2.0)
    assert [asks.code(step) for step in (-2, 0, 1, 2, 4, 8, 10, 12, 14, 40)] == [-2, -1, -2, -1, 0, 0, -1, -1, 1, 1]
    assert asks.gaps == 2 and asks.gap_ends == [10.0, math.inf]


def cheapest_reacting_with_late(trace, bounds: Bounds, steps: int, wait_s: float, late: int):
    """The cheapest of ``reacting_schedules`` with at most ``late`` tasks waiting over ``wait_s``,
    and the steps at which each schedule of that cost asked for pods."""
    best, asked = math.inf, []
    for world, result in reacting_schedules(trace, bounds, steps):
        if sum(wait > wait_s + 1e-9 for wait in world.waits) > late:
            continue
        if result["worker_seconds"] < best - 1e-9:
            best, asked = result["worker_seconds"], []
        if result["worker_seconds"] <= best + 1e-9:
            asked.append(world.asked_at)
    return best, asked


def test_a_late_task_opens_a_gap_that_the_cheapest_reacting_schedule_uses():
    # A 2 s task at 1 s and another at 3 s, pods up 1 s after they are asked for, no wait, one
    # task may be late. The windows are steps 1 and 3; step 2 is a gap. Reacting, the first
    # task's pod is asked for at 1 and up at 2: that task is late, and still waiting at step 2's
    # poll, so a pod asked for then is up at 3 for the second on time (6 worker-seconds).
    # Knowing the future, one pod asked for at 0 serves both on time (5). With no late task the
    # gap stays shut, and no schedule that reacts keeps the wait.
    trace, bounds = tiny([(1, 1, 2), (3, 1, 2)], pod_start_s=1), Bounds(max_workers=2, pod_start_s=1, grace_s=30)
    asks = AskSteps(trace, 0.0)
    assert asks.code(2) == 0 and asks.gap_ends[0] == 3.0
    best, asked = cheapest_reacting_with_late(trace, bounds, 6, 0.0, late=1)
    assert best == 6.0 and asked and all(any(asks.code(step) >= 0 for step in steps) for steps in asked)
    assert lower_bound(trace, bounds, 0.0, slot_s=1.0, late_tasks=1) == pytest.approx(5.0)
    assert reactive_bound(trace, bounds, 0.0, slot_s=1.0, late_tasks=1) == pytest.approx(best)
    assert cheapest_reacting_with_late(trace, bounds, 6, 0.0, late=0)[0] == math.inf
    assert reactive_bound(trace, bounds, 0.0, slot_s=1.0, late_tasks=0) == math.inf


def test_gaps_are_shut_where_no_late_task_is_left_to_open_them():
    # Two 1 s tasks at 0, then two 1 s and three 2 s tasks at 6: pods up 1 s after asked for,
    # a 1 s wait, one task may be late. Step 2-5 is a gap. Without the rule that each gap used
    # needs a late task of its own due before it ends, the program would give 13.5 (the
    # clairvoyant bound); with it, 18, and the cheapest schedule that reacts costs more still.
    trace = tiny([(0, 2, 1), (6, 2, 1), (6, 3, 2)], pod_start_s=1, horizon_s=9)
    bounds = Bounds(max_workers=2, pod_start_s=1, grace_s=30)
    assert AskSteps(trace, 1.0).gap_ends == [6.0, math.inf]
    best, _ = cheapest_reacting_with_late(trace, bounds, 7, 1.0, late=1)
    assert lower_bound(trace, bounds, 1.0, slot_s=1.0, late_tasks=1) == pytest.approx(13.5)
    bound = reactive_bound(trace, bounds, 1.0, slot_s=1.0, late_tasks=1)
    assert bound == pytest.approx(18.0) and bound <= best == 22.0


def test_the_ask_codes_live_in_one_module():
    # The clairvoyant program takes plain rise limits; only optimum_reactive knows how asks are coded.
    source = (Path(__file__).resolve().parents[1] / "autoscaler" / "optimum.py").read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert "autoscaler.optimum_reactive" not in imported and "FREE" not in source and "NEVER" not in source


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
