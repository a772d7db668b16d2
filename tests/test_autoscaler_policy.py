"""The scaling rule, table by table (KEDA-scaler style): each row is one decision."""

from __future__ import annotations

import pytest

from autoscaler.policy import Decision, Observation, ScaleState, decide
from core.settings import ScaleSettings

SETTINGS = ScaleSettings(deployment="w", queue="cpu", min_replicas=0, max_replicas=10, tasks_per_worker=2,
                         max_step_up=3, scale_down_window_s=60, idle_to_zero_s=120)


def obs(now=1000.0, waiting=0, running=0, replicas=0, busy=0) -> Observation:
    return Observation(now=now, waiting=waiting, running=running, replicas=replicas, busy_workers=busy)


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
