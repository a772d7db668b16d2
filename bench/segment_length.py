"""What a segment costs beyond its frames: the quiet recording of :mod:`bench.quiet_hour`
through the embedded farm (2 workers, as configured: motion gate and stream copy on) under
several segmentations, in the order given, one farm each.

``python -m bench.segment_length [MINUTES] [--work DIR] VARIANT...``: a VARIANT is a comma-separated list
of ``NAME=VALUE`` settings without their ``VIDFARM_`` prefix (``SEGMENT_SECONDS=16``), or
``default``. Alternate them (A B B A): the machine is shared. Every-frame detection (gate and
copy off, 4-s segments) runs once first as the faces' reference. Prints
one JSON line a run: wall, farm CPU seconds (``bench.farm_run``'s ``cpu_s``), segments, the
load average before and after, and the reference's faces found (``quiet_hour.found_share``).
Figures go to docs/benchmarks.md by hand: it writes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import quiet_hour, throughput
from workers import media


def settings_env(variant: str) -> dict[str, str]:
    if variant == "default":
        return {}
    return {f"VIDFARM_{name}": value for name, value in (pair.split("=", 1) for pair in variant.split(","))}


def farm_results(clip: Path, work: Path, name: str, env: dict[str, str],
                 log_figures: Callable[[Path], dict] | None = None) -> tuple[dict, dict]:
    """One timed job on a fresh embedded farm: its figures and its results.json. ``log_figures``
    adds figures read from the farm's log folder, before its files are removed."""
    out = work / f"out-{name}"
    run = throughput.farm(clip, 2, work / f"data-{name}", out, env=env, keep_results=True)
    results = json.loads((out / "farm2-results.json").read_text())
    if log_figures:
        run |= log_figures(work / f"data-{name}" / "logs")
    shutil.rmtree(work / f"data-{name}", ignore_errors=True)    # a 10-minute job's files: disk
    shutil.rmtree(out, ignore_errors=True)
    return run, results


def reference_results(clip: Path, work: Path, duration: float) -> dict:
    """Every-frame detection's results in 4-s segments (``bench.quiet_hour``'s reference),
    kept in ``work`` for the next run on the same clip."""
    kept = work / f"{clip.stem}-every-frame.json"
    if kept.is_file():
        return json.loads(kept.read_text())
    load = os.getloadavg()[0]
    env = {**quiet_hour.MODES["every frame"], "VIDFARM_SEGMENT_SECONDS": "4", "VIDFARM_MAX_SEGMENTS": "0"}
    every, results = farm_results(clip, work, "every-frame", env)
    print(json.dumps({"run": "every frame (reference)", "load": [load, os.getloadavg()[0]],
                      "wall_s": round(every["wall_s"], 2), "rtf": round(duration / every["wall_s"], 1),
                      "cpu_s": round(every["cpu_s"], 2), "segments": every["segments"]}), flush=True)
    kept.write_text(json.dumps(results))
    return results


def main(argv: list[str]) -> int:
    """``--work DIR`` keeps the clip and the reference there for the next run."""
    keep = argv[argv.index("--work") + 1] if "--work" in argv else None
    argv = [a for a in argv if a not in ("--work", keep)]
    minutes = float(argv[0]) if argv and argv[0][0].isdigit() else 10.0
    variants = [a for a in argv if not a[0].isdigit()] or ["default"]
    work = Path(keep or tempfile.mkdtemp(prefix="vidfarm-seglen-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        path = work / f"quiet-{minutes:g}.mp4"
        if path.is_file():
            frames = media.probe(path).frames
        else:
            frames = quiet_hour.recording(path, minutes).frames
        duration = frames / quiet_hour.FPS
        reference = reference_results(path, work, duration)
        for index, variant in enumerate(variants):
            load = os.getloadavg()[0]
            run, results = farm_results(path, work, str(index), settings_env(variant))
            total, matched = quiet_hour.found_share(results, reference)
            print(json.dumps({"run": variant, "load": [load, os.getloadavg()[0]], "wall_s": round(run["wall_s"], 2),
                              "rtf": round(duration / run["wall_s"], 1), "results_s": round(run["results_wall_s"], 2),
                              "cpu_s": round(run["cpu_s"], 2), "segments": run["segments"],
                              "imbalance_s": round(run["imbalance_s"], 2), "faces": run["faces"],
                              "found": [matched, total]}), flush=True)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
