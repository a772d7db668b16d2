"""The scaling rule, as a pure function: ``decide(observation, state, settings) -> Decision``.

No I/O and no clock: the caller passes the time in the observation, so tables of
(observation, state, settings) -> replicas test every rule (see tests/test_autoscaler_policy.py).
The real loop (``autoscaler.loop``) and the simulator (``autoscaler.simulate``) call this
same function.

The target (``settings.size_by``):
- ``wait`` (the default): the fewest workers that start every queued task within
  ``target_wait_s``, by a forecast of the queue (``autoscaler.forecast``): each task's work
  is its frames times the queue's cost per frame, learnt from finished tasks; busy workers
  free up when their task should end (taken, on average, half a poll before the poll that
  first saw it running), new ones serve after ``pod_start_s``. Never fewer than
  the work arriving needs (``rate_window_s``). When the target is shorter than a cold start
  (pod start + a poll), workers are kept ready for the next burst: the standby, asked for a
  pod start and a poll before the next burst is likely, learnt from the gaps between recent
  bursts (``autoscaler.standby``). Until a task of the queue has finished, its cost is
  unknown and the target is counted as in ``tasks``.
- ``latency``: the same, but bounding wait + the task's own work (a live queue, whose
  budget is seconds from capture to result).
- ``tasks``: demand = waiting + running; ceil(demand / tasks_per_worker).
Never below what the registered cameras need (a live queue: ``autoscaler.live``).
Clamped to [min, max].

The rules that keep it safe, whatever the target:
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
from dataclasses import dataclass, field, replace

from autoscaler.forecast import Cost, workers_for_rate, workers_for_wait
from autoscaler.live import camera_floor
from autoscaler.standby import Burst, note_bursts, standby_due
from core.settings import ScaleSettings

MISSED_POLL_GAP = 1.5      # periods: a longer gap since the previous decision is polls missed


@dataclass(frozen=True)
class Observation:
    """What one poll saw of one queue and its workers, at time ``now`` (seconds)."""
    now: float
    waiting: int          # messages in the queue lists (all priorities)
    running: int          # reserved or running: Celery's unacked messages for this queue
    replicas: int         # workers that exist (or are asked for) right now
    busy_workers: int     # workers with a task in hand: never removed
    # What the wait forecast needs; left empty it falls back on counts (see Cost):
    queued: tuple[tuple[float, int | None], ...] = ()      # (seconds seen waiting, frames), head first;
                                                            # may cover only the head of a long queue
    in_hand: tuple[tuple[float, int | None], ...] = ()     # (seconds since taken, frames) of running tasks
    finished: tuple[tuple[int, float], ...] = ()           # (frames, seconds) of tasks done since the last poll
    arrived: tuple[int | None, ...] = ()                    # frames of each task first seen at this poll
    cameras: tuple[float | None, ...] = ()                 # live queue: each registered camera's frames/s
                                                            # (None: not known yet); see autoscaler.live
    poll_s: float | None = None                            # the caller's configured period between polls
                                                            # (None: unknown, the gap is taken as it is)


@dataclass(frozen=True)
class ScaleState:
    """What the policy remembers between decisions (returned anew in each Decision)."""
    recent_targets: tuple[tuple[float, int], ...] = ()   # (time, target) within the window
    last_demand_at: float | None = None                  # last time waiting + running > 0
    asked: tuple[float, ...] = ()                        # when each still-starting worker was asked for
    cost: Cost = field(default_factory=Cost)             # the queue's cost per frame
    arrivals: tuple[tuple[float, tuple[int | None, ...]], ...] = ()   # (time, frames of each task first
                                                                      # seen then), within rate_window_s
    polled_at: float | None = None                       # the previous decision: polls are this far apart
    bursts: tuple[Burst, ...] = ()                       # the last standby_bursts bursts (autoscaler.standby)

    def to_json(self) -> dict:
        """A JSON-able copy, so a restarted autoscaler carries on (``autoscaler.loop.StateStore``)."""
        return {"recent_targets": self.recent_targets, "last_demand_at": self.last_demand_at, "asked": self.asked,
                "cost": self.cost.samples, "arrivals": self.arrivals, "polled_at": self.polled_at,
                "bursts": self.bursts}

    @classmethod
    def from_json(cls, data: dict) -> "ScaleState":
        return cls(recent_targets=tuple((float(t), int(r)) for t, r in data["recent_targets"]),
                   last_demand_at=data["last_demand_at"], asked=tuple(map(float, data["asked"])),
                   cost=Cost(tuple((int(f), float(sec)) for f, sec in data["cost"])),
                   arrivals=tuple((float(t), tuple(frames)) for t, frames in data["arrivals"]),
                   polled_at=data["polled_at"],
                   bursts=tuple((float(a), float(b)) for a, b in data.get("bursts", ())))


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str
    target: int                      # the unstabilised target, for metrics
    state: ScaleState = field(default_factory=ScaleState)

    @property
    def direction(self) -> str:
        return self.reason.split(":", 1)[0]


def clamp(n: int, settings: ScaleSettings) -> int:
    return max(settings.min_replicas, min(settings.max_replicas, n))


def count_target(obs: Observation, settings: ScaleSettings) -> tuple[int, str]:
    demand = obs.waiting + obs.running
    return (clamp(math.ceil(demand / settings.tasks_per_worker), settings),
            f"{obs.waiting} waiting + {obs.running} running need")


def poll_period(obs: Observation, state: ScaleState) -> float:
    """How far apart polls are: the time since the previous decision (0 at the first), unless
    polls were missed. Polls come a configured period apart, give or take the time one takes,
    so a gap of more than MISSED_POLL_GAP periods means some failed (Redis away) or the
    autoscaler was down (its state is kept in Redis): the gap is the outage, not the period.
    Taken as the period, the first decision after an hour down thought a new worker served
    pod start + an hour after it was asked for (the whole standby at once) and every busy
    worker half an hour into its task (free now: too few workers)."""
    if state.polled_at is None:
        return 0.0
    gap = obs.now - state.polled_at
    if obs.poll_s is not None and gap > MISSED_POLL_GAP * obs.poll_s:
        return obs.poll_s
    return gap


def expected_burst(state: ScaleState) -> list[float]:
    """The work of each task of the next burst, as the standby plans for it: as many tasks as
    the bursts of the last rate_window_s brought on average (rounded up), each of their mean
    work. The mean, not the largest: warm workers are paid every second until the burst
    comes, and sized for the largest one (a long recording among short clips) they idle at
    the cap all day for a burst that is rare, and that at the cap misses the bound anyway."""
    bursts = [frames for _, frames in state.arrivals]
    work = [state.cost.of(f) for frames in bursts for f in frames]
    if not work:
        return []
    return [sum(work) / len(work)] * math.ceil(len(work) / len(bursts) - 1e-9)


def wait_target(obs: Observation, state: ScaleState, settings: ScaleSettings) -> tuple[int, str]:
    """The fewest workers that keep the forecast wait (or latency) within the target."""
    cost = state.cost
    latency = settings.size_by == "latency"
    bound = settings.target_latency_s if latency else settings.target_wait_s
    queued = [(age, cost.of(frames)) for age, frames in obs.queued]
    queued += [(0.0, cost.mean_task_s)] * max(0, obs.waiting - len(queued))     # the unlisted tail
    # A task in hand is timed from the poll that first saw it running, but it was taken at
    # some moment since the poll before: on average half a poll gap earlier. Timed from the
    # poll alone, each busy worker looked up to a gap further from free, and a queue at the
    # target's edge asked for pods that the next poll found needless and cancelled before
    # they were up (steady.json at target 42.5 s: 16 pods cancelled while starting; 8 now).
    poll_s = poll_period(obs, state)
    since_taken = poll_s / 2
    busy_left = [max(0.0, cost.of(frames) - elapsed - since_taken)
                 for elapsed, frames in obs.in_hand[:obs.busy_workers]]
    busy_left += [cost.mean_task_s / 2] * max(0, obs.busy_workers - len(busy_left))
    starting = [max(0.0, asked + settings.pod_start_s - obs.now) for asked in state.asked]
    idle = max(0, obs.replicas - obs.busy_workers - len(starting))
    # From min, not from the busy count: the busy floor holds them at scale-down (decide), and a
    # target kept low lets the window see how many the queue needs once they are done.
    workers, forecast = workers_for_wait(bound, settings.min_replicas, settings.max_replicas, busy_left, idle,
                                         starting, settings.pod_start_s, queued, with_work=latency)
    # Standby: the next burst must meet the bound too. Its tasks that a new worker could not
    # serve in time (asked for at the next poll, up pod_start_s later) need workers that are
    # up already: without them a target below the pod start is missed by every task that
    # meets a cold pool. They are planned as ready (the burst is to come), beside the queue's,
    # not on top of it.
    # Timed (autoscaler.standby): up shortly before the next burst is likely, not through the gap.
    cold_start = settings.pod_start_s + poll_s
    burst = expected_burst(state) if standby_due(state.bursts, obs.now, settings, poll_s) else []
    urgent = [(0.0, w) for w in burst if cold_start + (w if latency else 0.0) > bound]
    standby, _ = workers_for_wait(bound, 0, settings.max_replicas, [], settings.max_replicas, [], 0.0, urgent,
                                  with_work=latency)
    arrived_work = sum(cost.of(f) for _, frames in state.arrivals for f in frames)
    # Only while the replicas have work: a task in hand of a worker being stopped is no reason
    # to start another.
    keep_up = workers_for_rate(arrived_work, settings.rate_window_s) if obs.waiting + obs.busy_workers else 0
    work = sum(w for _, w in queued)
    why = (f"{obs.waiting} waiting ({work:.0f} s of work) + {obs.running} running, "
           f"{'latency' if latency else 'wait'} {forecast:.0f} s of {bound:.0f} s")
    if keep_up > max(workers, standby):
        return clamp(keep_up, settings), f"{why}, arrivals {arrived_work / settings.rate_window_s:.1f} s/s need"
    if standby > workers:
        return clamp(standby, settings), f"{why}, a burst of {len(burst)} tasks on standby needs"
    return clamp(workers, settings), f"{why}, need"


def remember(obs: Observation, state: ScaleState, settings: ScaleSettings) -> ScaleState:
    """The state with this observation's lessons: cost samples, arrivals, starting workers
    that should be up by now forgotten."""
    since = obs.now - settings.rate_window_s
    arrivals = tuple((t, f) for t, f in state.arrivals if t > since)
    if obs.arrived:
        arrivals += ((obs.now, tuple(obs.arrived)),)
    asked = tuple(t for t in state.asked if t + settings.pod_start_s > obs.now)
    asked = asked[len(asked) - min(len(asked), max(0, obs.replicas - obs.busy_workers)):]   # removed elsewhere
    bursts = note_bursts(state.bursts, obs.now, state.polled_at, bool(obs.arrived), settings.standby_bursts)
    return replace(state, asked=asked, cost=state.cost.learn(obs.finished), arrivals=arrivals, bursts=bursts)


def decide(obs: Observation, state: ScaleState, settings: ScaleSettings) -> Decision:
    state = remember(obs, state, settings)
    demand = obs.waiting + obs.running
    last_demand_at = obs.now if demand > 0 else state.last_demand_at
    if settings.size_by == "tasks" or not state.cost.known:
        target, need = count_target(obs, settings)
    else:
        target, need = wait_target(obs, state, settings)
    floor, why = camera_floor(obs.cameras, state.cost, settings)
    if clamp(floor, settings) > target:
        target, need = clamp(floor, settings), why
    idle_for = 0.0 if demand else (math.inf if last_demand_at is None else obs.now - last_demand_at)
    if demand == 0 and idle_for < settings.idle_to_zero_s:
        # Keep one warm worker for a while: most idle gaps between uploads are short.
        target = max(target, min(1, obs.replicas))
    window_start = obs.now - settings.scale_down_window_s
    recent = tuple((t, r) for t, r in state.recent_targets if t > window_start) + ((obs.now, target),)
    current = obs.replicas

    def decision(replicas: int, why: str) -> Decision:
        asked = state.asked + (obs.now,) * max(0, replicas - current)
        asked = asked[:len(asked) - min(len(asked), max(0, current - replicas))]   # starting ones go first
        new_state = replace(state, recent_targets=recent, last_demand_at=last_demand_at, asked=asked,
                            polled_at=obs.now)
        return Decision(replicas, why, target, new_state)

    if target > current:
        replicas = min(target, current + settings.max_step_up)
        why = f"up: {need} {target}"
        if replicas < target:
            why += f" (step limited to +{settings.max_step_up})"
        return decision(replicas, why)

    if target < current:
        # After a full idle period the period itself was the stabilisation: no extra window.
        # Only with no demand: with idle_to_zero_s 0 a busy queue's idle time (0) would count
        # as a full idle period, and the window would never hold anything.
        idle_period_over = demand == 0 and idle_for >= settings.idle_to_zero_s
        stabilised = target if idle_period_over else max(r for _, r in recent)
        floor = max(stabilised, obs.busy_workers, settings.min_replicas)
        replicas = min(current, floor)
        if replicas == current:
            held = "busy workers" if obs.busy_workers >= stabilised else \
                f"{settings.scale_down_window_s:.0f} s stabilisation window"
            return decision(current, f"hold: target {target} < {current}, held by {held}")
        if replicas == 0:
            return decision(0, f"down: idle for {settings.idle_to_zero_s:.0f} s, scale to zero")
        return decision(replicas, f"down: {need} {target}, {obs.busy_workers} busy")

    return decision(current, f"steady: {need} {target}")
