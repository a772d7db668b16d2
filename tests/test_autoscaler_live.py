"""The live queue's rules (``autoscaler.live``), table by table: the cameras' floor and the
live Deployment's first call on a cap shared with batch."""

from __future__ import annotations

import pytest

from autoscaler.forecast import Cost
from autoscaler.live import batch_room, camera_floor
from autoscaler.policy import Observation, ScaleState, decide
from core.settings import LiveWorkerScaling, ScaleSettings, Settings

LIVE = LiveWorkerScaling(max_replicas=10, max_step_up=10, camera_fps=30.0, camera_utilization=0.8, pod_start_s=30,
                         spare_cameras=0)
BATCH = ScaleSettings(deployment="vidfarm-worker-cpu", queue="cpu", min_replicas=1, max_replicas=8)
MS_20 = Cost(((100, 2.0),))          # 20 ms a frame
MS_50 = Cost(((100, 5.0),))          # 50 ms a frame


# (case, cameras' fps, cost, expected workers, reason contains)
FLOOR = [
    ("no camera, no floor", (), MS_20, 0, ""),
    ("cost unknown: one worker a camera", (15.0, 15.0, None), Cost(), 3, "one worker each"),
    ("one 15 fps camera at 20 ms a frame: 0.3 busy", (15.0,), MS_20, 1, "0.30 workers busy"),
    ("four 15 fps cameras at 50 ms: 3.0 busy -> 3.75 at 80 %", (15.0,) * 4, MS_50, 4, "3.00 workers busy"),
    ("exactly at the utilisation: no extra worker", (16.0,), MS_50, 1, "0.80 workers busy"),
    ("a camera of unknown rate counts as camera_fps (30)", (None,), MS_50, 2, "30 frames/s"),
    ("many cameras", (30.0,) * 10, MS_50, 19, "15.00 workers busy"),
]
# With room for spare cameras (at camera_fps, 30): a camera added is served while its worker starts.
SPARE = [
    ("no camera: no spare either (scale to zero)", (), MS_50, 0, 2, ""),
    ("one spare: four 15 fps cameras at 50 ms: (60 + 30) x 0.05 = 4.5 busy -> 5.6", (15.0,) * 4, MS_50, 6, 1,
     "4.50 workers busy"),
    ("two spares at 20 ms: (15 + 60) x 0.02 = 1.5 busy -> 1.9", (15.0,), MS_20, 2, 2, "1.50 workers busy"),
]


@pytest.mark.parametrize("case,cameras,cost,expected,reason", FLOOR, ids=[r[0] for r in FLOOR])
def test_camera_floor(case, cameras, cost, expected, reason):
    workers, why = camera_floor(cameras, cost, LIVE)
    assert workers == expected and reason in why


@pytest.mark.parametrize("case,cameras,cost,expected,spare,reason", SPARE, ids=[r[0] for r in SPARE])
def test_camera_floor_with_spare_room(case, cameras, cost, expected, spare, reason):
    workers, why = camera_floor(cameras, cost, LIVE.model_copy(update={"spare_cameras": spare}))
    assert workers == expected and reason in why


def live_obs(now=1000.0, cameras=(), waiting=0, running=0, replicas=0, busy=0, **more) -> Observation:
    return Observation(now=now, waiting=waiting, running=running, replicas=replicas, busy_workers=busy,
                       cameras=cameras, **more)


KNOWN = ScaleState(cost=MS_50, last_demand_at=990.0)

BACKLOG = live_obs(cameras=(15.0,), replicas=1, waiting=6, running=1, busy=1, queued=((0.0, 30),) * 6,
                   in_hand=((0.5, 30),))

# (case, observation, state, expected replicas, reason starts with)
DECISIONS = [
    ("a camera registered, no segment yet: its workers at once", live_obs(cameras=(15.0,)), ScaleState(), 1, "up"),
    ("more cameras add workers before any segment of theirs waits",
     live_obs(cameras=(15.0,) * 4, replicas=2, running=1, busy=1), KNOWN, 4, "up: 4 cameras"),
    ("the floor holds between segments (no task anywhere)",
     live_obs(now=5000.0, cameras=(15.0,) * 4, replicas=4), ScaleState(cost=MS_50, last_demand_at=10.0), 4, "steady"),
    ("a backlog no new worker could serve in time (30 s pod start, 3 s budget) adds none: the floor must",
     BACKLOG, KNOWN, 1, "steady"),
    ("a camera deleted: down only after the window",
     live_obs(cameras=(15.0,), replicas=4, running=1, busy=1),
     ScaleState(cost=MS_50, last_demand_at=999.0, recent_targets=((980.0, 4),)), 4, "hold"),
    ("... and then to the floor, never below busy workers",
     live_obs(now=1100.0, cameras=(15.0,), replicas=4, running=2, busy=2),
     ScaleState(cost=MS_50, last_demand_at=1099.0, recent_targets=((1000.0, 4),)), 2, "down"),
    ("the last camera deleted and idle: to zero",
     live_obs(now=2000.0, replicas=2), ScaleState(cost=MS_50, last_demand_at=1000.0), 0, "down: idle"),
]


@pytest.mark.parametrize("case,observation,state,expected,reason", DECISIONS, ids=[r[0] for r in DECISIONS])
def test_live_decisions(case, observation, state, expected, reason):
    decision = decide(observation, state, LIVE)
    assert decision.replicas == expected, decision.reason
    assert decision.reason.startswith(reason), decision.reason


# (case, shared max, live replicas, expected batch max, expected batch min)
ROOM = [
    ("no shared cap: batch keeps its own", 0, 5, 8, 1),
    ("room left under the cap", 10, 3, 7, 1),
    ("room above the batch's own max: its own max", 20, 3, 8, 1),
    ("live takes the whole cap: batch gets nothing, not even its min", 6, 6, 0, 0),
    ("live above the cap (busy workers kept): still nothing", 6, 7, 0, 0),
]


def test_a_backlog_adds_workers_where_they_start_in_time():
    decision = decide(BACKLOG, KNOWN, LIVE.model_copy(update={"pod_start_s": 0.5}))
    # six 1.5 s segments: the busy worker (free in 1 s) takes one, five new ones (up in 0.5 s) one each
    assert decision.replicas == 6 and decision.reason.startswith("up: 6 waiting"), decision.reason


@pytest.mark.parametrize("case,shared,live,batch_max,batch_min", ROOM, ids=[r[0] for r in ROOM])
def test_batch_room(case, shared, live, batch_max, batch_min):
    room = batch_room(BATCH, live, shared)
    assert (room.max_replicas, room.min_replicas) == (batch_max, batch_min)
    assert room.deployment == BATCH.deployment


def test_batch_at_a_full_shared_cap_adds_nothing_and_keeps_its_busy_workers():
    batch = BATCH.model_copy(update={"size_by": "tasks", "min_replicas": 0})
    full = batch_room(batch, live_replicas=6, shared_max=6)
    busy = Observation(now=1000.0, waiting=20, running=2, replicas=2, busy_workers=2)
    assert decide(busy, ScaleState(), full).replicas == 2            # the two in hand finish their tasks
    assert decide(busy, ScaleState(), batch_room(batch, 3, 6)).replicas == 3


def test_the_live_deployment_is_decided_first():
    settings = Settings()
    assert [t.queue for t in settings.scaled_deployments][:2] == ["live", "cpu"]
    assert settings.autoscale_live.size_by == "latency"
