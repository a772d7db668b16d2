"""The rows of the autoscaler benchmark that matter while tuning the policy (issue 17): one
trace's vidfarm target sweep against its KEDA settings, with the verdicts of
``bench.autoscaler`` but without its plots and document. The offline bound at each KEDA p95
(slow, and independent of our policy) is cached in ``autoscaler-bounds.json`` in the temporary directory ($TMPDIR).

    python -m bench.autoscaler_rows [TRACE names or paths ...]    (default: the four hand-made ones)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from autoscaler.optimum import lower_bound
from autoscaler.simulate import Bounds, load_trace
from bench import autoscaler as full
from core.settings import get_settings

CACHE = Path(tempfile.gettempdir()) / "autoscaler-bounds.json"          # $TMPDIR when set


def rows(path: Path, cache: dict, cache_file: Path | None = None) -> list[full.Row]:
    """``bench.autoscaler.measure``'s rows (its sweeps, its verdicts), the bound at each KEDA
    p95 taken from ``cache`` (keyed by trace name and wait) or computed and added to it."""
    settings = get_settings()
    trace = load_trace(path)
    bounds = Bounds.of(trace, default_max_workers=settings.autoscale_cpu.max_replicas)

    def bound(p95: float) -> float:
        key = f"{path.stem} {full.bound_wait(p95)}"
        if key not in cache:
            cache[key] = lower_bound(trace, bounds, full.bound_wait(p95), slot_s=full.SLOT_S)
            if cache_file is not None:
                cache_file.write_text(json.dumps(cache))
        return cache[key]

    ours = full.our_sweep(trace, bounds, settings.autoscale_cpu, settings.autoscale_poll_s)
    return full.keda_rows(trace, bounds, ours, bound, bound_ours=False)


def main(argv: list[str]) -> int:
    paths = [Path(a) if a.endswith(".json") else full.TRACES / f"{a}.json" for a in argv] or \
            [full.TRACES / f"{name}.json" for name in full.ORDER]
    cache = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
    total = 0
    for path in paths:
        rs = rows(path, cache, CACHE)
        met = sum(r.verdict.startswith("met") for r in rs)
        total += met
        print(f"{path.stem}: {met}/{len(rs)} met, worker-s of vidfarm's chosen points "
              f"{sum(r.ours['worker_seconds'] for r in rs if r.ours):.0f}")
        for r in rs:
            ours = f"{r.target_s:6g} s {r.ours['worker_seconds']:7.0f} p95 {r.ours['p95_wait_s']:6.1f}" if r.ours else "-"
            saving = f"{100 * r.saving:4.0f} %" if r.saving is not None else "-"
            print(f"  {r.cooldown_s:3g}/{r.window_s:<3g} KEDA {r.keda['worker_seconds']:7.0f} p95 "
                  f"{r.keda['p95_wait_s']:6.1f} | ours {ours} | {saving} | bound {r.bound:7.0f} | {r.verdict}")
    print(f"total met: {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
