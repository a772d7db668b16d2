"""The autoscaler benchmark: every trace in bench/traces/ through our policy and the KEDA/HPA
reference model (``autoscaler.simulate``). Simulated time, no farm: cheap and repeatable.

    python -m bench.autoscaler      rewrites the autoscaler section of docs/benchmarks.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.docs import replace_section

from autoscaler.simulate import KedaScaler, compare, load_trace
from core.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "bench" / "traces"
DOC = ROOT / "docs" / "benchmarks.md"
HEADING = "## Autoscaler: vidfarm's policy against KEDA's Redis list scaler (simulated)"
ORDER = ("steady", "office-hours", "spike", "clockwork")   # then any other trace, by name


def trace_paths() -> list[Path]:
    paths = sorted(TRACES.glob("*.json"))
    return sorted(paths, key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem))


def render() -> str:
    settings = get_settings()
    cpu = settings.autoscale_cpu
    lines = [
        HEADING, "",
        "Written by `make bench` (or `python -m bench.autoscaler`): each trace in `bench/traces/` replayed by "
        "`vidfarm autoscale simulate` through our policy and through the KEDA/HPA reference model "
        "(`autoscaler/simulate.py` says exactly what each models).",
        f"Both get max {cpu.max_replicas} workers and size for {cpu.tasks_per_worker} task per worker "
        f"(KEDA listLength); ours polls every {settings.autoscale_poll_s:g} s with a "
        f"{cpu.scale_down_window_s:g} s scale-down window and scales to zero after {cpu.idle_to_zero_s:g} s idle; "
        f"KEDA activates and deactivates every {KedaScaler.POLLING_INTERVAL_S:g} s, its HPA acts every "
        f"{KedaScaler.HPA_SYNC_S:g} s on the list length, stabilises scale-down over "
        f"{KedaScaler.STABILISATION_S:g} s and cools down {KedaScaler.COOLDOWN_S:g} s before zero.",
        "",
        "| trace | scaler | worker-seconds | p50 wait | p95 wait | max wait | interrupted tasks | vs KEDA |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for path in trace_paths():
        trace = load_trace(path)
        result = compare(trace, cpu, settings.autoscale_poll_s)
        ours, keda = result["vidfarm"], result["keda"]
        saving = 1 - ours["worker_seconds"] / keda["worker_seconds"]
        met = (ours["worker_seconds"] <= keda["worker_seconds"] and ours["p95_wait_s"] <= keda["p95_wait_s"]
               and ours["interrupted_tasks"] == 0)
        verdict = (f"{abs(100 * saving):.0f} % {'fewer' if saving >= 0 else 'more'} worker-seconds; "
                   f"target {'met' if met else '**not met**'}")
        for scaler, row, note in (("vidfarm", ours, verdict), ("KEDA", keda, "")):
            lines.append(f"| {path.stem} | {scaler} | {row['worker_seconds']:.0f} | {row['p50_wait_s']:.1f} s "
                         f"| {row['p95_wait_s']:.1f} s | {row['max_wait_s']:.1f} s | {row['interrupted_tasks']} | {note} |")
    lines += [
        "",
        "Traces: " + "; ".join(load_trace(p).name for p in trace_paths()) + ".",
        "Targets (issue 5): at most KEDA's worker-seconds at no worse p95 wait, and 0 interrupted tasks, on the "
        "steady, office-hours and spike traces. *clockwork* is there to show where we lose: on a perfectly "
        "regular stream our policy keeps the workers the peaks need, while KEDA, which counts only waiting "
        "tasks, runs fewer and pays in waits and restarted tasks.",
        "The price of the saving is a higher median wait on sparse loads (steady: more uploads meet a cold "
        "pool and wait for a pod to start, where KEDA keeps pods 300 s); a longer scale-down window or idle "
        "period (`VIDFARM_AUTOSCALE_CPU__SCALE_DOWN_WINDOW_S`, `..._IDLE_TO_ZERO_S`) buys it back with "
        "worker-seconds. On the spike both are held back by the same 8-worker cap.",
    ]
    return "\n".join(lines) + "\n"


def update_doc(doc: Path = DOC) -> None:
    """Replace this section of the document (or append it), leaving every other section as it is."""
    replace_section(render(), doc)


def main() -> int:
    update_doc()
    print(f"wrote the autoscaler section of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
