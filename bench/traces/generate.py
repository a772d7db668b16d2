"""The held-out autoscaler traces: made by this seeded generator, never tuned on.

    python -m bench.traces.generate        rewrites bench/traces/held-out-*.json
    python -m bench.traces.generate --dev  writes bench/traces/dev/dev-*.json: the same
                                           processes with other seeds, to design on (not in
                                           the benchmark's table, which reads bench/traces/*.json)

The policy's defaults (``core.settings.ScaleSettings``) were chosen on the four hand-made
traces of this folder (steady, office-hours, spike, clockwork) only; these four come from a
different process and were generated after that choice, so the benchmark can show how the
comparison holds on load nothing was fitted to. Each is fixed by its seed: running this again
writes the same files.

Unlike the hand-made traces, a task's cost varies: a segment is 4 s of 30 fps footage (120
frames) and each upload has its own cost per frame (lognormal around 0.1 s, as footage with
more faces costs more to analyse), so the policy's learnt cost is always a little off. Tasks
stay under the 30 s grace, as segments do under the chart's.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRAMES = 120                    # a 4 s segment at 30 fps
MAX_TASK_S = 28.0               # under the default 30 s termination grace


def upload(rng: random.Random, t: float, segments: int) -> dict:
    per_frame = min(MAX_TASK_S / FRAMES, max(0.03, rng.lognormvariate(math.log(0.1), 0.35)))
    return {"t": round(t, 1), "tasks": segments, "task_s": round(FRAMES * per_frame, 1), "frames": FRAMES}


def poisson_times(rng: random.Random, rate_at, horizon_s: float, peak_rate: float) -> list[float]:
    """Arrival times of a Poisson process of rate ``rate_at(t)`` (per second), by thinning."""
    times, t = [], 0.0
    while True:
        t += rng.expovariate(peak_rate)
        if t >= horizon_s:
            return times
        if rng.random() < rate_at(t) / peak_rate:
            times.append(t)


def morning_rush(rng: random.Random) -> dict:
    """Uploads ramp up to one every 40 s an hour in, hold half an hour, die away by 4 h."""
    def rate(t):
        if t < 3600:
            return 1 / 300 + (1 / 40 - 1 / 300) * t / 3600
        if t < 5400:
            return 1 / 40
        return max(1 / 400, 1 / 40 - (1 / 40 - 1 / 400) * (t - 5400) / 9000)
    arrivals = [upload(rng, t, rng.randint(2, 12)) for t in poisson_times(rng, rate, 14400, 1 / 40)]
    return {"name": "held out: morning rush, uploads ramping to one every 40 s and back, 4 h",
            "horizon_s": 14400, "pod_start_s": 30, "max_workers": 8, "arrivals": arrivals}


def nightly_batch(rng: random.Random) -> dict:
    """Sparse uploads, and every 2 h a re-analysis batch of 120 segments at once."""
    arrivals = [upload(rng, t, rng.randint(2, 6)) for t in poisson_times(rng, lambda t: 1 / 600, 21600, 1 / 600)]
    arrivals += [upload(rng, t, 120) for t in (1800.0, 9000.0, 16200.0)]
    return {"name": "held out: sparse uploads and a 120-segment re-analysis every 2 h, 6 h",
            "horizon_s": 21600, "pod_start_s": 45, "max_workers": 8,
            "arrivals": sorted(arrivals, key=lambda a: a["t"])}


def heavy_tail(rng: random.Random) -> dict:
    """One upload every 90 s on average; most are short, a few are hour-long recordings."""
    def segments():
        return min(150, int(3 * rng.paretovariate(1.3)))
    arrivals = [upload(rng, t, max(1, segments())) for t in poisson_times(rng, lambda t: 1 / 90, 10800, 1 / 90)]
    return {"name": "held out: uploads every 90 s, heavy-tailed lengths (1-150 segments), 3 h",
            "horizon_s": 10800, "pod_start_s": 20, "max_workers": 12, "arrivals": arrivals}


def tenant_bursts(rng: random.Random) -> dict:
    """A quiet background (one upload per 5 min) and, every 15 min or so, a 3-min burst of
    one upload every 15 s (a tenant's bulk upload)."""
    starts, t = [], 300.0
    while t < 7200:
        starts.append(t)
        t += rng.uniform(600, 1200)

    def rate(t):
        return 1 / 15 if any(s <= t < s + 180 for s in starts) else 1 / 300
    arrivals = [upload(rng, t, rng.randint(1, 6)) for t in poisson_times(rng, rate, 7200, 1 / 15)]
    return {"name": "held out: quiet background with 3-min bursts of uploads every 10-20 min, 2 h",
            "horizon_s": 7200, "pod_start_s": 25, "max_workers": 8, "arrivals": arrivals}


GENERATORS = {"morning-rush": (morning_rush, 101), "nightly-batch": (nightly_batch, 202),
              "heavy-tail": (heavy_tail, 303), "tenant-bursts": (tenant_bursts, 404)}


DEV_SEEDS = (11, 12)            # the dev-* traces: other draws of the same processes, for design


def write(path: Path, trace: dict) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(trace, separators=(",", ":")) + "\n")
    print(f"{path.name}: {len(trace['arrivals'])} uploads, {sum(a['tasks'] for a in trace['arrivals'])} tasks")


def main(argv: list[str] | None = None) -> int:
    if "--dev" in (sys.argv[1:] if argv is None else argv):
        for name, (make, _) in GENERATORS.items():
            for seed in DEV_SEEDS:
                trace = make(random.Random(seed))
                trace["name"] = trace["name"].replace("held out:", "dev:")
                write(HERE / "dev" / f"dev-{name}-{seed}.json", {**trace, "seed": seed})
        return 0
    for name, (make, seed) in GENERATORS.items():
        write(HERE / f"held-out-{name}.json", {**make(random.Random(seed)), "held_out": True, "seed": seed})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
