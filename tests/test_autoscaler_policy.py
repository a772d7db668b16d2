"""The scaling rule, table by table (KEDA-scaler style): each row is one decision."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from autoscaler.forecast import Cost
from autoscaler.policy import Decision, Observation, ScaleState, decide, remember
from core.settings import ScaleSettings

SETTINGS = ScaleSettings(deployment="w", queue="cpu", min_replicas=0, max_replicas=10, tasks_per_worker=2,
                         max_step_up=3, scale_down_window_s=60, idle_to_zero_s=120, size_by="tasks")


def obs(now=1000.0, waiting=0, running=0, replicas=0, busy=0, **details) -> Observation:
    return Observation(now=now, waiting=waiting, running=running, replicas=replicas, busy_workers=busy, **details)


def window(*targets: tuple[float, int]) -> ScaleState:
    return ScaleState(recent_targets=targets, last_demand_at=900.0)


# (case, observation, state, settings overrides, expected replicas, reason starts with)
TABLE = [
    ("nothing anywhere stays at zero", obs(), ScaleState(), {}, 0, "steady"),
    ("first task wakes from zero", obs(waiting=1), ScaleState(), {}, 1, "up"),
    ("ceil of waiting+running over tasks per worker", obs(waiting=3, running=2, replicas=1, busy=1),
     window(), {}, 3, "up"),
    ("running tasks count, not only the list", obs(waiting=0, running=4, replicas=2, busy=2),
     window(), {}, 2, "steady"),
    ("priority-free clamp to max", obs(waiting=100, replicas=9), window(), {}, 10, "up"),
    ("scale up at once but bounded", obs(waiting=40, replicas=1), window(), {}, 4, "up"),
    ("min replicas kept with no demand", obs(replicas=2), ScaleState(), {"min_replicas": 2}, 2, "steady"),
    ("min replicas raises from zero", obs(replicas=0), ScaleState(), {"min_replicas": 1}, 1, "up"),
    ("down waits for the window (a high target 30 s ago)", obs(running=2, replicas=4, busy=2),
     window((970.0, 4)), {}, 4, "hold"),
    ("... with idle-to-zero at 0 too (the window holds while there is demand)", obs(running=2, replicas=4, busy=2),
     window((970.0, 4)), {"idle_to_zero_s": 0}, 4, "hold"),
    ("down once the window has only low targets, to the busy floor", obs(running=2, replicas=4, busy=2),
     window((930.0, 4), (970.0, 1)), {}, 2, "down"),
    ("down to the target when nobody is busy", obs(waiting=2, replicas=4, busy=0),
     window((930.0, 4), (970.0, 1)), {}, 1, "down"),
    ("never below busy workers", obs(running=3, waiting=0, replicas=5, busy=3),
     window((900.0, 5)), {"tasks_per_worker": 4}, 3, "down"),
    ("busy workers hold a scale-down", obs(running=3, replicas=3, busy=3),
     window(), {"tasks_per_worker": 4}, 3, "hold"),
    ("idle but not long: keep one warm", obs(now=1000.0, replicas=3), ScaleState(last_demand_at=950.0),
     {}, 1, "down"),
    ("idle long enough: to zero", obs(now=1000.0, replicas=1), ScaleState(last_demand_at=850.0), {}, 0, "down"),
    ("the idle period stands in for the window on the way to zero", obs(now=1000.0, replicas=2),
     ScaleState(recent_targets=((990.0, 2),), last_demand_at=850.0), {}, 0, "down: idle"),
    ("idle, but a busy worker (a task not yet acked) is never removed", obs(now=1000.0, replicas=2, busy=1),
     ScaleState(last_demand_at=850.0), {}, 1, "down"),
    ("back from zero when a task arrives after idling", obs(now=5000.0, waiting=1, replicas=0),
     ScaleState(last_demand_at=10.0), {}, 1, "up"),
]


@pytest.mark.parametrize("case,observation,state,overrides,expected,reason", TABLE, ids=[r[0] for r in TABLE])
def test_policy_table(case, observation, state, overrides, expected, reason):
    settings = SETTINGS.model_copy(update=overrides)
    decision = decide(observation, state, settings)
    assert decision.replicas == expected, decision.reason
    assert decision.reason.startswith(reason), decision.reason


def test_state_remembers_only_the_window_and_the_last_demand():
    d = decide(obs(now=1000.0, waiting=1, replicas=1), window((900.0, 5), (950.0, 2)), SETTINGS)
    assert [t for t, _ in d.state.recent_targets] == [950.0, 1000.0]
    assert d.state.last_demand_at == 1000.0


def test_a_replayed_sequence_goes_up_holds_then_goes_to_zero():
    state, replicas, seen = ScaleState(), 0, []
    demand = [5] * 3 + [0] * 60          # a burst, then silence, polled every 5 s
    for i, waiting in enumerate(demand):
        d: Decision = decide(obs(now=5.0 * i, waiting=waiting, replicas=replicas), state, SETTINGS)
        state, replicas = d.state, d.replicas
        seen.append(replicas)
    assert seen[0] == 3 and max(seen) == 3                 # +3 at once (step bound), target 3
    assert seen[12] == 3                                   # 45 s after the burst: still in the window
    assert 1 in seen and seen[-1] == 0                     # one warm worker, then zero
    assert seen.index(0) * 5.0 == 10 + 120                 # exactly when the idle period ends


def test_min_above_max_is_refused():
    with pytest.raises(ValueError, match="min_replicas 3 > max_replicas 2"):
        ScaleSettings(deployment="w", queue="cpu", min_replicas=3, max_replicas=2)


def test_decisions_are_served_as_prometheus_metrics():
    from urllib.request import urlopen

    from autoscaler.loop import ScaleMetrics
    from cli.redis_server import free_port

    metrics, port = ScaleMetrics(), free_port()
    d = decide(obs(waiting=3, replicas=1), window(), SETTINGS)
    metrics.record(SETTINGS, obs(waiting=3, replicas=1), d)
    server = metrics.serve(port, addr="127.0.0.1")
    try:
        text = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    assert 'vidfarm_autoscaler_desired_replicas{deployment="w",queue="cpu"} 2.0' in text
    assert 'vidfarm_autoscaler_decisions_total{deployment="w",direction="up",queue="cpu"} 1.0' in text


# --- size_by=wait: the fewest workers that start every queued task within the target --------
# 100 frames = 10 s of work once the cost (0.1 s a frame) has been learnt from a finished task.
WAIT = ScaleSettings(deployment="w", queue="cpu", max_replicas=10, max_step_up=10, target_wait_s=60, pod_start_s=20,
                     rate_window_s=300, scale_down_window_s=0, idle_to_zero_s=0)
LEARNT = ScaleState(cost=Cost(((100, 10.0),)), last_demand_at=990.0)


def queue(count: int, age: float = 0.0, frames: int | None = 100) -> dict:
    return {"waiting": count, "queued": ((age, frames),) * count}


def burst_at(t: float, tasks: int, frames: int = 100) -> ScaleState:
    return ScaleState(cost=LEARNT.cost, last_demand_at=t, arrivals=((t, (frames,) * tasks),))


# (case, observation, state, settings overrides, expected replicas, reason starts with)
WAIT_TABLE = [
    ("a queue one worker clears within the target needs no more (starts 0..30 s)",
     obs(replicas=1, **queue(4)), LEARNT, {}, 1, "steady"),
    ("a longer queue gets the fewest workers that start every task in time (10 tasks: 2, last at 50 s)",
     obs(replicas=1, **queue(10)), LEARNT, {}, 2, "up"),
    ("time already waited counts: 30 s old, each must start within 30 s -> 4",
     obs(replicas=1, **queue(10, age=30)), LEARNT, {}, 4, "up"),
    ("a task that already waited too long summons no worker that cannot help",
     obs(replicas=1, **queue(1, age=100)), LEARNT, {}, 1, "steady"),
    ("busy workers free up when their task should end (5 s left): one of them will do for the queue",
     obs(replicas=2, running=2, busy=2, in_hand=((5.0, 100),) * 2, **queue(2)), LEARNT, {}, 2,
     "hold: target 1 < 2, held by busy workers"),
    ("a task first seen in hand was taken since the last poll, on average half its 5 s gap ago: the 10 s task "
     "frees its worker at 7.5 s, and one worker starts the 3 queued (2.5 s old) by 30 s",
     obs(replicas=1, running=1, busy=1, in_hand=((0.0, 100),), **queue(3, age=2.5)),
     ScaleState(cost=LEARNT.cost, last_demand_at=990.0, polled_at=995.0), {"target_wait_s": 30}, 1, "steady"),
    ("... timed from the poll alone (no poll before) it frees at 10 s: the third would start at 32.5 s -> 2",
     obs(replicas=1, running=1, busy=1, in_hand=((0.0, 100),), **queue(3, age=2.5)),
     ScaleState(cost=LEARNT.cost, last_demand_at=990.0), {"target_wait_s": 30}, 2, "up"),
    ("frames unknown: a task costs the mean finished task",
     obs(replicas=1, **queue(10, frames=None)), LEARNT, {}, 2, "up"),
    ("the cost not learnt yet: counted as tasks, tasks_per_worker each",
     obs(replicas=1, **queue(10)), ScaleState(), {}, 10, "up: 10 waiting + 0 running need 10"),
    ("arrivals set a floor: 900 s of work in the last 300 s keeps 3 workers while there is demand",
     obs(replicas=1, **queue(1)), ScaleState(cost=LEARNT.cost, arrivals=((900.0, (100,) * 90),)), {}, 3,
     "up: 1 waiting (10 s of work) + 0 running, wait 0 s of 60 s, arrivals 3.0 s/s need 3"),
    ("scale-down removes only what the forecast does not need",
     obs(replicas=5, **queue(10)), LEARNT, {}, 2, "down"),
    ("idle and the target above a cold start: to zero",
     obs(replicas=4), burst_at(940.0, 4), {}, 0, "down: idle"),
    ("a target below the cold start (20 s pod start) keeps workers for the recent burst: 4 tasks in 10 s -> 2",
     obs(replicas=4), burst_at(940.0, 4), {"target_wait_s": 10}, 2, "down"),
    ("... and wakes them for it before it comes back",
     obs(replicas=0), burst_at(940.0, 4), {"target_wait_s": 10}, 2, "up"),
    ("... until the burst leaves the window",
     obs(replicas=2), burst_at(690.0, 4), {"target_wait_s": 10}, 0, "down: idle"),
    ("the standby plans for the recent bursts' mean, not the largest: 2, 2 and 8 tasks -> 4 tasks -> 2 (not 4)",
     obs(replicas=4), ScaleState(cost=LEARNT.cost, last_demand_at=940.0,
                                 arrivals=((800.0, (100,) * 2), (870.0, (100,) * 2), (940.0, (100,) * 8))),
     {"target_wait_s": 10}, 2, "down: 0 waiting (0 s of work) + 0 running, wait 0 s of 10 s, a burst of 4 tasks"),
    ("latency (live): wait + own work within 15 s: the second 10 s task needs a second worker",
     obs(replicas=1, **queue(2)), LEARNT, {"size_by": "latency", "target_latency_s": 15, "pod_start_s": 0}, 2, "up"),
    ("latency: one task of 10 s fits 15 s on one worker",
     obs(replicas=1, **queue(1)), LEARNT, {"size_by": "latency", "target_latency_s": 15, "pod_start_s": 0}, 1,
     "steady"),
    ("the cap still holds", obs(replicas=1, **queue(40, age=50)), LEARNT, {"max_replicas": 6}, 6, "up"),
]


@pytest.mark.parametrize("case,observation,state,overrides,expected,reason", WAIT_TABLE, ids=[r[0] for r in WAIT_TABLE])
def test_wait_policy_table(case, observation, state, overrides, expected, reason):
    decision = decide(observation, state, WAIT.model_copy(update=overrides))
    assert decision.replicas == expected, decision.reason
    assert decision.reason.startswith(reason), decision.reason


def test_the_state_learns_the_cost_and_forgets_old_arrivals_and_started_workers():
    state = ScaleState(cost=Cost(((100, 10.0),)), arrivals=((600.0, (100,)), (900.0, (50,))), asked=(970.0, 990.0))
    learnt = remember(obs(replicas=2, finished=((300, 60.0),), arrived=(80, 80)), state, WAIT)
    assert learnt.cost.per_frame == pytest.approx(70.0 / 400)          # both samples, weighted by frames
    assert learnt.arrivals == ((900.0, (50,)), (1000.0, (80, 80)))     # 600 is out of the 300 s window
    assert learnt.asked == (990.0,)                                     # asked at 970: up by 990
    assert decide(obs(replicas=2), state, WAIT).state.polled_at == 1000.0


def test_a_scale_up_remembers_when_it_asked_and_a_scale_down_forgets_the_starting_first():
    up = decide(obs(replicas=1, **queue(10)), LEARNT, WAIT)
    assert up.replicas == 2 and up.state.asked == (1000.0,)
    down = decide(obs(now=1005.0, replicas=2), up.state, WAIT)
    assert down.replicas == 0 and down.state.asked == ()


def test_tasks_already_late_do_not_hide_the_young_ones_that_workers_can_still_serve_in_time():
    """4 tasks that waited 40 s (past the 30 s target whatever is done) and 16 new ones, 10 s
    each, 4 idle workers, pod start 20 s. The 4 start the old ones now and the new ones at
    10, 20, 30, 40 s: the last 4 wait 40 s. Two more workers (up at 20 s) start every new
    one by 30 s. The worst wait, an old task's 40 s, is the same with 4 workers as with 10,
    so a rule on it alone kept 4."""
    late_and_young = obs(replicas=4, waiting=20, queued=((40.0, 100),) * 4 + ((0.0, 100),) * 16)
    decision = decide(late_and_young, LEARNT, WAIT.model_copy(update={"target_wait_s": 30}))
    assert decision.replicas == 6, decision.reason


# --- the standby, timed from the gaps between bursts (autoscaler.standby) ------------------
# Target 10 s, pod start 20 s, polls 5 s apart: a cold start misses it, so workers are kept
# for the next burst (4 tasks of 10 s -> 2 workers). Bursts came every 300 s, the last at 940:
# the standby is asked for at 940 + 300 - 20 - 5 = 1215, and let go at 940 + rate_window_s.
def bursts_every(gap: float, count: int, last: float = 940.0, now: float = 1000.0) -> ScaleState:
    starts = [last - gap * i for i in reversed(range(count))]
    return ScaleState(cost=LEARNT.cost, last_demand_at=last, arrivals=((last, (100,) * 4),),
                      bursts=tuple((t, t) for t in starts), polled_at=now - 5)


STANDBY_TABLE = [
    ("bursts every 300 s: right after one, no standby (it was kept through the whole gap)",
     obs(now=1000.0, replicas=2), bursts_every(300, 3), {}, 0, "down: idle"),
    ("... asked for a pod start and a poll before the shortest likely gap ends",
     obs(now=1215.0, replicas=0), bursts_every(300, 3, now=1215.0), {}, 2, "up"),
    ("... not a poll sooner", obs(now=1210.0, replicas=0), bursts_every(300, 3, now=1210.0), {}, 0, "steady"),
    ("... let go once the last burst is rate_window_s old (the next one meets a cold pool)",
     obs(now=1245.0, replicas=2), bursts_every(300, 3, now=1245.0), {}, 0, "down: idle"),
    ("gaps of 60 s and 240 s: the low quantile (78 s) is under pod start + poll away: up at once",
     obs(now=1000.0, replicas=2),
     replace(bursts_every(300, 3), bursts=((640.0, 640.0), (700.0, 700.0), (940.0, 940.0))), {}, 2, "steady"),
    ("one gap known only: held from the burst on, as before the timing",
     obs(now=1000.0, replicas=2), bursts_every(300, 2), {}, 2, "steady"),
    ("standby_bursts 1 (no gaps ever): the rule before the timing",
     obs(now=1000.0, replicas=2), bursts_every(300, 3), {"standby_bursts": 1}, 2, "steady"),
    ("a higher quantile asks for it later: the median gap of 200, 300, 400 s -> from 940 + 275",
     obs(now=1200.0, replicas=0),
     replace(bursts_every(300, 3, now=1200.0), bursts=((340.0, 340.0), (540.0, 540.0), (940.0, 940.0))),
     {"standby_gap_quantile": 0.5}, 0, "steady"),
]


@pytest.mark.parametrize("case,observation,state,overrides,expected,reason", STANDBY_TABLE,
                         ids=[r[0] for r in STANDBY_TABLE])
def test_standby_table(case, observation, state, overrides, expected, reason):
    settings = WAIT.model_copy(update={"target_wait_s": 10, **overrides})
    decision = decide(observation, state, settings)
    assert decision.replicas == expected, decision.reason
    assert decision.reason.startswith(reason), decision.reason


# (case, bursts before, poll time, previous poll, new tasks seen?, keep, bursts after)
BURSTS_TABLE = [
    ("new tasks after a quiet poll open a burst", ((100.0, 100.0),), 400.0, 395.0, True, 10,
     ((100.0, 100.0), (400.0, 400.0))),
    ("new tasks at the poll after one that saw some: the same burst, grown", ((100.0, 395.0),), 400.0, 395.0, True,
     10, ((100.0, 400.0),)),
    ("a quiet poll changes nothing", ((100.0, 100.0),), 400.0, 395.0, False, 10, ((100.0, 100.0),)),
    ("only the last standby_bursts are kept", ((1.0, 1.0), (2.0, 2.0)), 400.0, 395.0, True, 2,
     ((2.0, 2.0), (400.0, 400.0))),
    ("... also when it was lowered since (a restart with a new setting)", ((1.0, 1.0), (2.0, 2.0)), 400.0, 395.0,
     False, 1, ((2.0, 2.0),)),
]


@pytest.mark.parametrize("case,before,now,polled_at,arrived,keep,after", BURSTS_TABLE, ids=[r[0] for r in BURSTS_TABLE])
def test_bursts_table(case, before, now, polled_at, arrived, keep, after):
    from autoscaler.standby import note_bursts
    assert note_bursts(before, now, polled_at, arrived, keep) == after


def test_decide_notes_each_poll_that_sees_new_tasks_as_a_burst():
    state = ScaleState(cost=LEARNT.cost, polled_at=995.0)
    first = decide(obs(now=1000.0, replicas=1, arrived=(100,), **queue(1)), state, WAIT).state
    assert first.bursts == ((1000.0, 1000.0),)
    grown = decide(obs(now=1005.0, replicas=1, arrived=(100,), **queue(2)), first, WAIT).state
    assert grown.bursts == ((1000.0, 1005.0),)


def test_a_stored_state_keeps_its_bursts_and_one_stored_before_them_loads():
    state = bursts_every(300, 3)
    stored = json.loads(json.dumps(state.to_json()))
    assert ScaleState.from_json(stored) == state
    del stored["bursts"]                                   # written by an autoscaler before the timing
    assert ScaleState.from_json(stored).bursts == ()


# --- the first decision after an outage (polls failed, the autoscaler down) ----------------
# Polls come 5 s apart; the state kept in Redis says the previous decision was 600 s ago. The
# gap is the outage, not the poll period: the decision must be the one a 5 s gap gives.
# (case, observation, state (polled 5 s before), settings overrides, replicas after a normal poll)
OUTAGE_TABLE = [
    ("the standby is timed a pod start and a normal poll before the next burst (at 1215), not 600 s sooner",
     obs(now=1000.0, replicas=0), bursts_every(300, 3), {"target_wait_s": 10}, 0),
    ("... and still asked for when it is due",
     obs(now=1215.0, replicas=0), bursts_every(300, 3, now=1215.0), {"target_wait_s": 10}, 2),
    ("a task first seen in hand was taken half a poll ago, not half the outage: its worker frees at 7.5 s "
     "(not at once), so the 3 queued (5 s old) need a second worker to start within 30 s",
     obs(replicas=1, running=1, busy=1, in_hand=((0.0, 100),), **queue(3, age=5)),
     replace(LEARNT, polled_at=995.0), {"target_wait_s": 30}, 2),
]


@pytest.mark.parametrize("case,observation,state,overrides,expected", OUTAGE_TABLE, ids=[r[0] for r in OUTAGE_TABLE])
def test_a_decision_after_an_outage_is_the_one_after_a_normal_poll(case, observation, state, overrides, expected):
    settings = WAIT.model_copy(update=overrides)
    polled = replace(observation, poll_s=5.0)
    normal = decide(polled, state, settings)
    after_outage = decide(polled, replace(state, polled_at=observation.now - 600), settings)
    assert normal.replicas == expected, normal.reason
    assert (after_outage.replicas, after_outage.reason) == (normal.replicas, normal.reason)


def test_a_poll_late_by_less_than_half_a_period_keeps_its_gap():
    """A slow poll (the API retried) is a real gap: tasks were taken all through it."""
    from autoscaler.policy import poll_period
    assert poll_period(obs(now=1000.0, poll_s=5.0), replace(LEARNT, polled_at=993.0)) == 7.0
    assert poll_period(obs(now=1000.0, poll_s=5.0), replace(LEARNT, polled_at=400.0)) == 5.0
    assert poll_period(obs(now=1000.0), replace(LEARNT, polled_at=400.0)) == 600.0        # period unknown
    assert poll_period(obs(now=1000.0, poll_s=5.0), LEARNT) == 0.0                         # the first decision
