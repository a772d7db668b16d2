"""The scaling rule, as a pure function: ``decide(observation, state, settings) -> Decision``.

No I/O and no clock: the caller passes the time in the observation, so tables of
(observation, state, settings) -> replicas test every rule (see tests/test_autoscaler_policy.py).

The rules (issue 5):
- demand = waiting + running; target = ceil(demand / tasks_per_worker), clamped to [min, max].
- More replicas than now: at once, at most ``max_step_up`` more per decision.
- Fewer: only once the target stayed below the current count for the whole stabilisation
  window (we take the highest target seen in the window, as the HPA does), and never below
  the number of busy workers, so scale-down only ever removes idle workers.
- No demand at all: keep ``max(min, 1)`` until the queue has been idle for ``idle_to_zero_s``,
  then go to ``min`` (zero when min is 0) at once, the idle period standing in for the
  window. A task arriving at zero scales up at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.settings import ScaleSettings


@dataclass(frozen=True)
class Observation:
    """What one poll saw of one queue and its workers, at time ``now`` (seconds, monotonic)."""
    now: float
    waiting: int          # messages in the queue lists (all priorities)
    running: int          # reserved or running: Celery's unacked messages for this queue
    replicas: int         # workers that exist (or are asked for) right now
    busy_workers: int     # workers with a task in hand: never removed


@dataclass(frozen=True)
class ScaleState:
    """What the policy remembers between decisions (returned anew in each Decision)."""
    recent_targets: tuple[tuple[float, int], ...] = ()   # (time, target) within the window
    last_demand_at: float | None = None                  # last time waiting + running > 0


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str
    target: int                      # the unstabilised target, for metrics
    state: ScaleState = field(default_factory=ScaleState)

    @property
    def direction(self) -> str:
        return self.reason.split(":", 1)[0]


def raw_target(obs: Observation, settings: ScaleSettings) -> int:
    demand = obs.waiting + obs.running
    wanted = math.ceil(demand / settings.tasks_per_worker)
    return max(settings.min_replicas, min(settings.max_replicas, wanted))


def decide(obs: Observation, state: ScaleState, settings: ScaleSettings) -> Decision:
    demand = obs.waiting + obs.running
    last_demand_at = obs.now if demand > 0 else state.last_demand_at
    target = raw_target(obs, settings)
    idle_for = 0.0 if demand else (math.inf if last_demand_at is None else obs.now - last_demand_at)
    if demand == 0 and idle_for < settings.idle_to_zero_s:
        # Keep one warm worker for a while: most idle gaps between uploads are short.
        target = max(target, min(1, obs.replicas))
    window_start = obs.now - settings.scale_down_window_s
    recent = tuple((t, r) for t, r in state.recent_targets if t > window_start) + ((obs.now, target),)
    new_state = ScaleState(recent_targets=recent, last_demand_at=last_demand_at)
    current = obs.replicas

    if target > current:
        replicas = min(target, current + settings.max_step_up)
        why = f"up: {obs.waiting} waiting + {obs.running} running need {target}"
        if replicas < target:
            why += f" (step limited to +{settings.max_step_up})"
        return Decision(replicas, why, target, new_state)

    if target < current:
        # After a full idle period the period itself was the stabilisation: no extra window.
        stabilised = target if idle_for >= settings.idle_to_zero_s else max(r for _, r in recent)
        floor = max(stabilised, obs.busy_workers, settings.min_replicas)
        replicas = min(current, floor)
        if replicas == current:
            held = "busy workers" if obs.busy_workers >= stabilised else \
                f"{settings.scale_down_window_s:.0f} s stabilisation window"
            return Decision(current, f"hold: target {target} < {current}, held by {held}", target, new_state)
        if replicas == 0:
            return Decision(0, f"down: idle for {settings.idle_to_zero_s:.0f} s, scale to zero", target, new_state)
        return Decision(replicas, f"down: {obs.waiting} waiting + {obs.running} running need {target}, "
                                  f"{obs.busy_workers} busy", target, new_state)

    return Decision(current, f"steady: {obs.waiting} waiting + {obs.running} running need {target}",
                    target, new_state)
