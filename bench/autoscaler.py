"""The autoscaler benchmark: every trace in bench/traces/ through our policy, swept over its
target wait, and through the KEDA/HPA reference model, swept over KEDA's cooldown and
scale-down window; the offline lower bound beside them. Simulated time, no farm.

    python -m bench.autoscaler [--processes N]
                                    rewrites the autoscaler section of docs/benchmarks.md
                                    and its plots, docs/autoscaler-<trace>.png (N: traces
                                    measured at once, default 1; the result is the same)

The comparison (issue 17): for each KEDA setting, the cheapest target wait whose p95 wait is
no worse than KEDA's. Met when it saves >= 30 % of KEDA's worker-seconds; or, where the lower
bound at KEDA's p95 is above 70 % of KEDA's worker-seconds (no scaler can save 30 %), when it
comes within 15 % of that bound.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.docs import replace_section

from autoscaler.keda import HPA_SYNC_S, KedaSettings
from autoscaler.optimum import lower_bound
from autoscaler.optimum_reactive import reactive_bound
from autoscaler.simulate import Bounds, Trace, load_trace, metrics_only, run_keda, run_vidfarm
from core.settings import ScaleSettings, get_settings

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "bench" / "traces"
DOCS = ROOT / "docs"
DOC = DOCS / "benchmarks.md"
HEADING = "## Autoscaler: vidfarm's policy against KEDA's Redis list scaler (simulated)"
ORDER = ("steady", "office-hours", "spike", "clockwork")   # then the held-out ones, by name

KEDA_COOLDOWNS_S = (30, 60, 120, 300)
KEDA_WINDOWS_S = (0, 30, 60, 300)
KEDA_POLLING_S = 5.0         # KEDA at its best: it looks as often as our loop (its default is 30 s)
TARGET_WAITS_S = tuple(w / 2 for w in range(10, 241, 5)) + (150, 200, 300, 450, 600, 900, 1200)
CURVE_WAITS_S = (15, 30, 60, 120, 300, 600, 1200)   # extra points of the plotted lower bound
P95_ROUNDING_S = 0.05        # half the 0.1 s the simulator rounds p95 to
SLOT_S = 5.0                 # the bound's time slots (finer is slower and only a little tighter)
SAVING, NEAR = 0.30, 0.15
# The reactive bound (2-15 s of CPU each) is taken only at this scale-down window: what its findings use.
REACTIVE_WINDOW_S = 0


@dataclass
class Row:
    """One KEDA setting against the best target wait that keeps its p95."""
    cooldown_s: float
    window_s: float
    keda: dict
    target_s: float | None
    ours: dict | None
    bound: float
    ours_bound: float | None = None          # the bound at vidfarm's own p95: its distance from the limit
    reactive: float | None = None            # the bound for scalers that react (optimum_reactive) at KEDA's p95,
                                             # at window REACTIVE_WINDOW_S only (None elsewhere)

    @property
    def saving(self) -> float | None:
        return None if self.ours is None else 1 - self.ours["worker_seconds"] / self.keda["worker_seconds"]

    @property
    def over_bound(self) -> float | None:
        """How far above the offline bound at its own p95 vidfarm's point lies (0.2: 20 % above)."""
        if self.ours is None or not self.ours_bound or self.ours_bound == float("inf"):
            return None
        return self.ours["worker_seconds"] / self.ours_bound - 1

    @property
    def over_reactive(self) -> float | None:
        """How far above the reactive bound at KEDA's p95 vidfarm's point lies."""
        if self.ours is None or not self.reactive or self.reactive == float("inf"):
            return None
        return self.ours["worker_seconds"] / self.reactive - 1

    @property
    def reactive_saving_possible(self) -> bool:
        """Whether the reactive bound leaves room for a scaler that reacts to save 30 %."""
        return self.reactive is None or self.reactive <= (1 - SAVING) * self.keda["worker_seconds"]

    @property
    def saving_possible(self) -> bool:
        return self.bound <= (1 - SAVING) * self.keda["worker_seconds"]

    @property
    def verdict(self) -> str:
        if self.ours is None:
            return "**not met**: no target wait reaches KEDA's p95"
        if self.saving >= SAVING:
            return "met"
        if not self.saving_possible and self.ours["worker_seconds"] <= (1 + NEAR) * self.bound:
            return "met: 30 % impossible, within 15 % of the bound"
        return "**not met**" + ("" if self.saving_possible else ": 30 % impossible, and over 15 % above the bound")


@dataclass
class TraceResult:
    name: str
    trace: Trace
    bounds: Bounds
    ours: list[tuple[float, dict]]          # (target wait, metrics)
    rows: list[Row]
    curve: list[tuple[float, float]]        # (wait, lower bound)


def trace_paths() -> list[Path]:
    paths = sorted(TRACES.glob("*.json"))
    return sorted(paths, key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem))


def our_sweep(trace: Trace, bounds: Bounds, policy: ScaleSettings, poll_s: float) -> list[tuple[float, dict]]:
    """vidfarm's metrics at each target wait of the sweep."""
    return [(w, metrics_only(run_vidfarm(trace, policy.model_copy(update={"target_wait_s": w}), poll_s, bounds)))
            for w in TARGET_WAITS_S]


def keda_rows(trace: Trace, bounds: Bounds, ours: list[tuple[float, dict]], bound: Callable[[float], float],
              bound_ours: bool = True, reactive: Callable[[float], float] | None = None) -> list[Row]:
    """Each KEDA setting of the sweep against the cheapest of ``ours`` with a p95 wait no worse,
    ``bound(p95)`` beside it (and at our own p95, with ``bound_ours``; and ``reactive(p95)``,
    the bound for scalers that react, at KEDA's, at window REACTIVE_WINDOW_S)."""
    rows = []
    for cooldown in KEDA_COOLDOWNS_S:
        for window in KEDA_WINDOWS_S:
            k = metrics_only(run_keda(trace, KedaSettings(KEDA_POLLING_S, cooldown, window), bounds))
            fitting = [(m["worker_seconds"], w, m) for w, m in ours if m["p95_wait_s"] <= k["p95_wait_s"]]
            _, target, best = min(fitting, key=lambda f: f[0]) if fitting else (None, None, None)
            rows.append(Row(cooldown, window, k, target, best, bound(k["p95_wait_s"]),
                            None if best is None or not bound_ours else bound(best["p95_wait_s"]),
                            None if reactive is None or window != REACTIVE_WINDOW_S else reactive(k["p95_wait_s"])))
    return rows


def reactive_poll_s(poll_s: float) -> float:
    """The poll of the reactive bound's class: both scalers ask only at its multiples (KEDA's
    loop every KEDA_POLLING_S, its HPA every HPA_SYNC_S, vidfarm every ``poll_s``)."""
    return poll_s if poll_s == KEDA_POLLING_S and HPA_SYNC_S % poll_s == 0 else 1.0


def bound_wait(p95: float) -> float:
    """The wait the bound is taken at for a reported p95: the simulator rounds p95 to 0.1 s, so
    the true one may be up to 0.05 s longer, and a longer wait only lowers the bound (never
    above the truth)."""
    return round(p95 + P95_ROUNDING_S, 2)


def measure(path: Path, policy: ScaleSettings, poll_s: float) -> TraceResult:
    trace = load_trace(path)
    bounds = Bounds.of(trace, default_max_workers=policy.max_replicas)
    ours = our_sweep(trace, bounds, policy, poll_s)
    cache: dict[float, float] = {}

    def at(wait: float) -> float:
        if wait not in cache:
            cache[wait] = lower_bound(trace, bounds, wait, slot_s=SLOT_S)
        return cache[wait]

    reactive_cache: dict[float, float] = {}

    def reacting(p95: float) -> float:
        wait = bound_wait(p95)
        if wait not in reactive_cache:
            reactive_cache[wait] = reactive_bound(trace, bounds, wait, poll_s=reactive_poll_s(poll_s), slot_s=SLOT_S,
                                                  clairvoyant=at(wait))
        return reactive_cache[wait]

    rows = keda_rows(trace, bounds, ours, lambda p95: at(bound_wait(p95)), reactive=reacting)
    curve = sorted((w, at(w)) for w in set(CURVE_WAITS_S) | set(cache))
    print(f"   {path.stem}: {sum(r.verdict.startswith('met') for r in rows)}/{len(rows)} KEDA settings met", flush=True)
    return TraceResult(path.stem, trace, bounds, ours, rows, curve)


def plot(result: TraceResult, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=100)
    frontier = sorted((m["p95_wait_s"], m["worker_seconds"]) for _, m in result.ours)
    ax.plot([p for p, _ in frontier], [w for _, w in frontier], "o-", ms=3, lw=1, color="tab:blue",
            label="vidfarm, target wait 5-1200 s")
    for row in result.rows:
        ax.plot(row.keda["p95_wait_s"], row.keda["worker_seconds"], "s", ms=5, color="tab:red",
                label="KEDA, cooldown x window" if row is result.rows[0] else None)
        ax.annotate(f"{row.cooldown_s:g}/{row.window_s:g}", (row.keda["p95_wait_s"], row.keda["worker_seconds"]),
                    fontsize=6, xytext=(3, 2), textcoords="offset points", color="tab:red")
    finite = [(w, b) for w, b in result.curve if b != float("inf")]
    ax.plot([w for w, _ in finite], [b for _, b in finite], "v--", ms=4, lw=1, color="tab:gray",
            label="lower bound (offline, knows the future)")
    reacting = sorted({(row.keda["p95_wait_s"], row.reactive) for row in result.rows
                       if row.reactive not in (None, float("inf"))})
    ax.plot([w for w, _ in reacting], [b for _, b in reacting], "^", ms=4, color="black",
            label="reactive bound at KEDA's p95 (knows the future, asks only with a task waiting)")
    ax.set_xscale("log")
    ax.set_xlabel("p95 wait (s, log scale)")
    ax.set_ylabel("worker-seconds")
    ax.set_title(result.trace.name, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summary_row(r: TraceResult) -> str:
    met = sum(row.verdict.startswith("met") for row in r.rows)
    savings = [row.saving for row in r.rows if row.saving is not None]
    span = f"{100 * min(savings):.0f} to {100 * max(savings):.0f} %" if savings else "-"
    unmatched = sum(row.ours is None for row in r.rows)
    impossible = sum(not row.saving_possible for row in r.rows)
    worst = min(r.rows, key=lambda row: -1.0 if row.saving is None else row.saving)
    interrupted = (max(m["interrupted_tasks"] for _, m in r.ours), max(row.keda["interrupted_tasks"] for row in r.rows))
    held_out = " (held out)" if r.trace.held_out else ""
    over = [row.over_bound for row in r.rows if row.over_bound is not None]
    gap = f"{100 * min(over):.0f} to {100 * max(over):.0f} %" if over else "-"
    return (f"| {r.name}{held_out} | {r.bounds.max_workers}, {r.bounds.pod_start_s:g} s, {r.bounds.grace_s:g} s "
            f"| **{met}/{len(r.rows)}** | {span} | {gap} | {unmatched} | {impossible} "
            f"| {worst.cooldown_s:g}/{worst.window_s:g} | {interrupted[0]} / {interrupted[1]} |")


def detail(r: TraceResult) -> list[str]:
    lines = [f"<details><summary>{r.name}: every KEDA setting</summary>", "",
             "| KEDA cooldown / window | KEDA worker-s | KEDA p95 | vidfarm target | vidfarm worker-s | vidfarm p95 "
             "| saving | bound at KEDA's p95 | bound at vidfarm's p95 (vidfarm above it) "
             "| reactive bound at KEDA's p95 (vidfarm above it) | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in r.rows:
        ours = (f"{row.target_s:g} s | {row.ours['worker_seconds']:.0f} | {row.ours['p95_wait_s']:.1f} s | "
                f"{100 * row.saving:.0f} %") if row.ours else "- | - | - | -"
        bound = "inf" if row.bound == float("inf") else f"{row.bound:.0f}"
        own = "-" if row.over_bound is None else f"{row.ours_bound:.0f} (+{100 * row.over_bound:.0f} %)"
        reacting = "-" if row.reactive is None else "inf" if row.reactive == float("inf") else \
            f"{row.reactive:.0f}" + ("" if row.over_reactive is None else f" (+{100 * row.over_reactive:.0f} %)")
        lines.append(f"| {row.cooldown_s:g} / {row.window_s:g} s | {row.keda['worker_seconds']:.0f} | "
                     f"{row.keda['p95_wait_s']:.1f} s | {ours} | {bound} | {own} | {reacting} | {row.verdict} |")
    return lines + ["", "</details>", ""]


def findings(results: list[TraceResult]) -> list[str]:
    """What this run shows, in sentences made from its figures."""
    def met(rs):
        return sum(row.verdict.startswith("met") for r in rs for row in r.rows), sum(len(r.rows) for r in rs)

    seen, held = [r for r in results if not r.trace.held_out], [r for r in results if r.trace.held_out]
    lines = [f"- Target met for {met(seen)[0]} of {met(seen)[1]} KEDA settings on the hand-made traces, "
             f"{met(held)[0]} of {met(held)[1]} on the held-out ones."]
    losses = []
    for r in results:
        worst = min(r.rows, key=lambda row: -1.0 if row.saving is None else row.saving)
        if worst.saving is None:
            losses.append(f"{r.name} {worst.cooldown_s:g}/{worst.window_s:g} (p95 {worst.keda['p95_wait_s']:.0f} s: "
                          f"no target wait reaches it)")
        elif worst.saving < SAVING:
            what = (f"{100 * worst.saving:.0f} % fewer" if worst.saving >= 0
                    else f"KEDA {100 * -worst.saving:.0f} % cheaper")
            losses.append(f"{r.name} {worst.cooldown_s:g}/{worst.window_s:g} ({what})")
    if losses:
        lines.append("- Where KEDA does best, its worst case for us per trace (cooldown/window, at KEDA's p95): "
                     + "; ".join(losses) + ".")
    impossible = [f"{r.name} ({sum(not row.saving_possible for row in r.rows)} of {len(r.rows)})"
                  for r in results if any(not row.saving_possible for row in r.rows)]
    if impossible:
        lines.append("- Settings where no scaler can save 30 % at KEDA's p95 (the bound is above 70 % of KEDA's "
                     f"worker-seconds): {', '.join(impossible)}; there the target is to come within 15 % of the bound.")
    above = [(r.name, [row.over_bound for row in r.rows if row.over_bound is not None]) for r in results]
    lines.append("- How far vidfarm's chosen points lie above the bound at their own p95 wait (the distance from the "
                 "limit, median of the trace's rows): " + "; ".join(
                     f"{name} {100 * sorted(o)[len(o) // 2]:.0f} %" for name, o in above if o) + ".")
    gaps = [f"{r.name} {min(b for _, b in r.curve):.0f}" for r in results]
    rises = reactive_rises([row for r in results for row in r.rows])
    lines.append("- The bound (lowest per trace: " + ", ".join(gaps) + " worker-seconds) may have pods up before "
                 "an upload arrives, which takes knowing the future. The reactive bound, which may not, is "
                 f"{100 * min(rises):.2f} to {100 * max(rises):.2f} % above it at KEDA's window-{REACTIVE_WINDOW_S:g} "
                 f"p95s (median {100 * sorted(rises)[len(rises) // 2]:.2f} %): within these relaxations, reacting "
                 "costs that little, so they cannot tell how much of the distance from both scalers is reacting and "
                 "how much is running whole tasks on whole pods, which they relax.")
    lines += reactive_findings(results)
    runs = [m["interrupted_tasks"] for r in results for _, m in r.ours] + \
           [row.keda["interrupted_tasks"] for r in results for row in r.rows]
    lines.append(f"- Interrupted tasks: none in any of the {len(runs)} runs, on either side." if max(runs) == 0 else
                 f"- Interrupted tasks: up to {max(runs)} in one run (of {len(runs)}).")
    return lines


def reactive_rises(rows: list[Row]) -> list[float]:
    """How far the reactive bound lies above the clairvoyant one, per row that has both (0.01: 1 %)."""
    return [row.reactive / row.bound - 1 for row in rows
            if row.reactive not in (None, float("inf")) and row.bound not in (0, float("inf"))]


def reactive_findings(results: list[TraceResult]) -> list[str]:
    """What the reactive bound says about the target at KEDA's scale-down window REACTIVE_WINDOW_S."""
    window = f"{REACTIVE_WINDOW_S:g}"
    zero = [(r, row) for r in results for row in r.rows if row.window_s == REACTIVE_WINDOW_S]
    out_of_reach = [f"{r.name} {row.cooldown_s:g}/{window}" for r, row in zero if not row.reactive_saving_possible]
    over = [row.over_reactive for _, row in zero if row.over_reactive is not None]
    missed = [(r, row) for r, row in zero if not row.verdict.startswith("met")]
    missed_over = [row.over_reactive for _, row in missed if row.over_reactive is not None]
    lines = [f"- At KEDA's scale-down window {window} ({len(zero)} settings), 30 % below KEDA is out of reach for any "
             "scaler that reacts (the reactive bound above 70 % of KEDA's worker-seconds) at "
             + (f"{len(out_of_reach)}: {', '.join(out_of_reach)}" if out_of_reach else "none of them")
             + f"; of the {len(missed)} where the target is not met, "
             + f"{sum(not row.reactive_saving_possible for _, row in missed)} are among those."]
    if over:
        lines.append(f"- vidfarm's chosen points at window {window} lie {100 * min(over):.0f} to "
                     f"{100 * max(over):.0f} % "
                     "above the reactive bound at KEDA's p95"
                     + (f" ({100 * min(missed_over):.0f} to {100 * max(missed_over):.0f} % where the target is "
                        "not met)" if missed_over else "") + ".")
    return lines


def reactive_table(results: list[TraceResult]) -> list[str]:
    """Per trace, at window REACTIVE_WINDOW_S (the only one it is taken at): the reactive bound
    against the clairvoyant one, and vidfarm's distance from it."""
    window = f"{REACTIVE_WINDOW_S:g}"
    lines = [f"| trace | reactive bound above the clairvoyant one, at KEDA's p95 (range, window {window}) | settings "
             f"where 30 % is out of reach for a scaler that reacts (window {window}) | vidfarm above the reactive "
             f"bound at KEDA's p95 (range, window {window}) |", "| --- | --- | --- | --- |"]
    for r in results:
        rows = [row for row in r.rows if row.window_s == REACTIVE_WINDOW_S]
        rises = reactive_rises(rows)
        over = [row.over_reactive for row in rows if row.over_reactive is not None]
        impossible = sum(not row.reactive_saving_possible for row in rows)

        def span(values: list[float], digits: int = 0) -> str:
            return f"{100 * min(values):.{digits}f} to {100 * max(values):.{digits}f} %" if values else "-"
        lines.append(f"| {r.name} | {span(rises, 2)} | {impossible} of {len(rows)} | {span(over)} |")
    return lines


def render(results: list[TraceResult], policy: ScaleSettings, poll_s: float) -> str:
    lines = [
        HEADING, "",
        "Written by `make bench` (or `python -m bench.autoscaler`): each trace in `bench/traces/` replayed by the "
        "simulator behind `vidfarm autoscale simulate` (`autoscaler/simulate.py`, `autoscaler/keda.py` say exactly "
        "what each side models). Both sides get the trace's cap, pod start and termination grace (a busy pod told "
        "to stop finishes its task within the grace and is paid until then) and the same tasks.",
        f"vidfarm: `size_by=wait`, polled every {poll_s:g} s, swept over its one knob, the target wait "
        f"({TARGET_WAITS_S[0]:g} to {TARGET_WAITS_S[-1]:g} s), every other setting at its default "
        f"(scale-down window {policy.scale_down_window_s:g} s, idle to zero {policy.idle_to_zero_s:g} s, rate window "
        f"{policy.rate_window_s:g} s; chosen on the four hand-made traces only). "
        f"KEDA: the Redis list scaler with listLength 1, pollingInterval {KEDA_POLLING_S:g} s (its default is 30 s; "
        f"faster only helps it), the HPA every {HPA_SYNC_S:g} s, swept over cooldownPeriod "
        f"{', '.join(f'{c:g}' for c in KEDA_COOLDOWNS_S)} s x scale-down stabilizationWindowSeconds "
        f"{', '.join(f'{w:g}' for w in KEDA_WINDOWS_S)} s.",
        "The bound: `autoscaler/optimum.py`, the higher of a linear program and a dynamic program over whole pods "
        "(`autoscaler/optimum_dp.py`; it counts the late tasks in the FIFO queue's order, where a task left behind "
        "holds back the ones after it), in the simulator's 1 s steps, that no scaler with the same cap, pod start and "
        "grace can beat at a given p95 wait, even knowing every arrival in advance (it can have pods up before the "
        "uploads come, which no real scaler can; checked against brute force on tiny traces). It is taken at a p95 "
        f"{P95_ROUNDING_S:g} s longer than the one shown, which the simulator rounds to 0.1 s (a longer wait only "
        "lowers it).",
        "The reactive bound: `autoscaler/optimum_reactive.py`, the same program for the scalers that ask for a pod "
        f"only at a poll (every {reactive_poll_s(poll_s):g} s) that sees a task waiting, knowing the future: KEDA's "
        "Redis list scaler is one. vidfarm's policy, at every target wait of a cold start (pod start + a poll) or "
        "more, asked on an empty queue in none of the counted runs (`tests/test_autoscaler_optimum_reactive.py`); "
        "its rate floor could (with the queue empty and a worker busy). Below a cold start its standby starts pods on "
        "an empty queue. The bound may not have pods up for an upload before a task is waiting, but where no task's "
        "on-time window holds a step, a late task may (each such gap costs one of the 5 % that p95 lets be late). It "
        f"is higher than the bound or equal to it, and taken at KEDA's scale-down window {REACTIVE_WINDOW_S:g} only "
        "(each takes seconds of CPU); the issue's measure stays the bound.",
        "",
        "Target (issue 17), per KEDA setting: the cheapest target wait with a p95 wait no worse than KEDA's uses "
        ">= 30 % fewer worker-seconds; where the bound at KEDA's p95 exceeds 70 % of KEDA's worker-seconds "
        "(30 % is impossible), within 15 % of the bound instead. And 0 interrupted tasks on both sides (every "
        "task here is shorter than the grace).",
        "",
        "| trace | cap, pod start, grace | KEDA settings met | saving at KEDA's p95 (range) | vidfarm above the bound "
        "at its own p95 (range) | KEDA p95 out of vidfarm's reach | settings where 30 % is impossible | worst setting "
        "(cooldown/window) | interrupted tasks, most in any run: vidfarm / KEDA |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [summary_row(r) for r in results]
    lines += ["", *reactive_table(results)]
    lines += ["", "Traces: " + "; ".join(f"*{r.name}*: {r.trace.name.split(': ', 1)[-1]}" for r in results) + ". The held-out "
              "ones come from `bench/traces/generate.py` (seeded), made after the defaults were chosen.",
              "", *findings(results)]
    lines += ["", "Plots (worker-seconds against p95 wait; KEDA's points labelled cooldown/window): " + ", ".join(
        f"[{r.name}](autoscaler-{r.name}.png)" for r in results) + ".", ""]
    for r in results:
        lines += detail(r)
    return "\n".join(lines) + "\n"


def run(doc: Path = DOC, plots: Path = DOCS, processes: int = 1) -> list[TraceResult]:
    settings = get_settings()
    policy, poll_s = settings.autoscale_cpu, settings.autoscale_poll_s
    jobs = [(path, policy, poll_s) for path in trace_paths()]
    if processes > 1:
        # fork, not the platform's default (forkserver from Python 3.14): the children then see this
        # module's sweep as the parent has it, settings a test patched included.
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            results = pool.starmap(measure, jobs)
    else:
        results = [measure(*job) for job in jobs]
    for r in results:
        plot(r, plots / f"autoscaler-{r.name}.png")
    replace_section(render(results, policy, poll_s), doc)
    return results


def update_doc(doc: Path = DOC, processes: int = 1) -> None:
    """Replace this section of the document (or append it), leaving every other section as it is."""
    run(doc, doc.parent, processes)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.autoscaler")
    parser.add_argument("--processes", type=int, default=1, help="traces measured at once")
    update_doc(processes=parser.parse_args(argv).processes)
    print(f"wrote the autoscaler section of {DOC} and its plots")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
