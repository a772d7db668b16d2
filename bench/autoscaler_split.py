"""Where a scaler's worker-seconds go on one trace (issue 17): busy (running a task), starting
(pod start), idle (ready, queue empty: kept warm) and draining (told to stop, finishing its
task in the grace). Simulated, deterministic.

    python -m bench.autoscaler_split TRACE.json [vidfarm target waits, s] [kCOOLDOWN/WINDOW ...]
    e.g. python -m bench.autoscaler_split bench/traces/steady.json 22.5 42.5 k30/0 k300/300
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field

from autoscaler import simulate
from autoscaler.keda import KedaScaler, KedaSettings
from bench.autoscaler import KEDA_POLLING_S
from core.settings import get_settings

KINDS = ("busy", "starting", "idle", "draining")


@dataclass
class SplitWorld(simulate.World):
    """The simulator's world, counting each billed pod-second by what the pod was doing."""
    seconds: Counter = field(default_factory=Counter)

    def serve(self, now: float) -> None:
        super().serve(now)
        for pod in self.pods:
            self.seconds["draining" if pod.stop_by is not None else "starting" if now < pod.ready_at
                         else "busy" if pod.task is not None else "idle"] += simulate.STEP_S


def split(trace: simulate.Trace, scaler, bounds: simulate.Bounds) -> tuple[dict, Counter]:
    """``simulate.replay`` in a SplitWorld: its metrics and the split of its worker-seconds."""
    world = SplitWorld(bounds)
    return simulate.metrics_only(simulate.replay(trace, scaler, bounds, world)), world.seconds


def line(name: str, metrics: dict, seconds: Counter) -> str:
    total = metrics["worker_seconds"]
    parts = " ".join(f"{kind} {seconds[kind]:.0f} ({100 * seconds[kind] / total:.0f} %)" for kind in KINDS)
    return f"{name:18s} {total:8.0f} worker-s, p95 {metrics['p95_wait_s']:5.1f} s: {parts}"


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
        print(line(name, *split(trace, scaler, bounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
