"""Where a scaler's worker-seconds go on one trace (issue 17): busy (running a task), starting
(pod start), idle (ready, queue empty: kept warm) and draining (told to stop, finishing its
task in the grace). Simulated, deterministic.

The idle and starting seconds are split further by what the pod did in its life: the start
and idle seconds of pods that never took a task (asked for a burst that did not come, or
made needless before they served), idle before a pod's first task (up too early), between
two tasks, and after its last task until it went (the tail before scale-down). Beside them,
the waits against the target: how much of the target the p95 leaves unused.

    python -m bench.autoscaler_split TRACE.json [vidfarm target waits, s] [kCOOLDOWN/WINDOW ...]
    e.g. python -m bench.autoscaler_split bench/traces/steady.json 22.5 42.5 k30/0 k300/300
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from autoscaler import simulate
from autoscaler.keda import KedaScaler, KedaSettings
from bench.autoscaler import KEDA_POLLING_S
from core.settings import get_settings

KINDS = ("busy", "starting", "idle", "draining")
# How a pod's start and idle seconds divide by its life (they add up to starting + idle).
LIFE = ("unused start", "unused idle", "idle before first task", "idle between tasks", "idle tail")


@dataclass
class SplitWorld(simulate.World):
    """The simulator's world, counting each billed pod-second by what the pod was doing, and
    each pod's life (what it did each second) to split its idle seconds when it goes."""
    seconds: Counter = field(default_factory=Counter)
    life: Counter = field(default_factory=Counter)
    pods_started: int = 0
    lives: dict = field(default_factory=dict)            # pod (by identity) -> its states, one a second

    def serve(self, now: float) -> None:
        super().serve(now)
        for pod in self.pods:
            kind = ("draining" if pod.stop_by is not None else "starting" if now < pod.ready_at
                    else "busy" if pod.task is not None else "idle")
            self.seconds[kind] += simulate.STEP_S
            if pod not in self.lives:
                self.pods_started += 1
            self.lives.setdefault(pod, []).append(kind)
        for pod in [p for p in self.lives if p not in self.pods]:       # gone: account for its life
            self.account(self.lives.pop(pod))

    def account(self, states: list[str]) -> None:
        served = [i for i, s in enumerate(states) if s == "busy"]
        for i, s in enumerate(states):
            if s == "starting" and not served:
                self.life["unused start"] += simulate.STEP_S
            elif s == "idle":
                self.life["unused idle" if not served else "idle before first task" if i < served[0]
                          else "idle tail" if i > served[-1] else "idle between tasks"] += simulate.STEP_S

    def close(self) -> None:
        for states in self.lives.values():
            self.account(states)
        self.lives = {}


def split(trace: simulate.Trace, scaler, bounds: simulate.Bounds) -> tuple[dict, Counter]:
    """``simulate.replay`` in a SplitWorld: its metrics and the split of its worker-seconds."""
    metrics, seconds, _ = split_life(trace, scaler, bounds)
    return metrics, seconds


def split_life(trace: simulate.Trace, scaler, bounds: simulate.Bounds) -> tuple[dict, Counter, dict]:
    """``split``, and beside it the start and idle seconds by the pod's life (``LIFE``), the
    pods started, and the waits' quantiles ("p50" ... "p100")."""
    world = SplitWorld(bounds)
    metrics = simulate.metrics_only(simulate.replay(trace, scaler, bounds, world))
    world.close()
    waits = np.array(world.waits)
    detail = {kind: world.life[kind] for kind in LIFE} | {"pods": world.pods_started}
    detail |= {f"p{q}": float(np.percentile(waits, q)) if waits.size else 0.0 for q in (50, 90, 95, 99, 100)}
    return metrics, world.seconds, detail


def line(name: str, metrics: dict, seconds: Counter, detail: dict) -> str:
    total = metrics["worker_seconds"]
    parts = " ".join(f"{kind} {seconds[kind]:.0f} ({100 * seconds[kind] / total:.0f} %)" for kind in KINDS)
    life = ", ".join(f"{kind} {detail[kind]:.0f}" for kind in LIFE)
    waits = " ".join(f"p{q} {detail[f'p{q}']:.1f}" for q in (50, 90, 95, 99, 100))
    return (f"{name:18s} {total:8.0f} worker-s, p95 {metrics['p95_wait_s']:5.1f} s: {parts}\n"
            f"{'':18s} {detail['pods']} pods started; {life}; waits (s) {waits}")


def main(argv: list[str]) -> int:
    trace = simulate.load_trace(argv[0])
    settings = get_settings()
    bounds = simulate.Bounds.of(trace, default_max_workers=settings.autoscale_cpu.max_replicas)
    ours = settings.autoscale_cpu.model_copy(update={"max_replicas": bounds.max_workers,
                                                     "pod_start_s": bounds.pod_start_s})
    for arg in argv[1:]:
        if arg.startswith("k"):
            cooldown, window = map(float, arg[1:].split("/"))
            scaler = KedaScaler(KedaSettings(KEDA_POLLING_S, cooldown, window), bounds.max_workers)
            name = f"KEDA {cooldown:g}/{window:g}"
        else:
            scaler = simulate.VidfarmScaler(ours.model_copy(update={"target_wait_s": float(arg)}),
                                            settings.autoscale_poll_s)
            name = f"vidfarm {float(arg):g} s"
        print(line(name, *split_life(trace, scaler, bounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
