"""The web process's start: time to import ``web`` and create the app, its memory (RSS) then,
and whether it loaded a model runtime, a codec or an analyzer; for this tree and, in the same
run, for the code before the services refactor (a temporary git worktree of ``BEFORE_REF``).

``python -m bench.web_process`` updates its section of docs/benchmarks.md (``make bench`` does too).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.docs import DOC, replace_section

ROOT = Path(__file__).resolve().parents[1]
# main just before the web process stopped importing the workers (issue 12).
BEFORE_REF = os.environ.get("VIDFARM_BENCH_WEB_BEFORE", "2e9e9c6")
ROUNDS = 7
HEAVY = ("onnxruntime", "cv2", "av", "insightface", "workers.analytics", "numpy", "celery")

PROBE = """
import json, resource, sys, time
started = time.perf_counter()
import web
web.create_app()
seconds = time.perf_counter() - started
rss_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(json.dumps({"seconds": seconds, "rss_mib": rss_kib / 1024, "web": web.__file__,
                  "loaded": [m for m in HEAVY if m in sys.modules]}))
"""


def probe(tree: Path, scratch: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "VIDFARM_DATA_DIR": str(scratch / "data"),
           "VIDFARM_CONFIG_DIR": str(scratch / "config"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("REDIS_URL", None)
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    result = json.loads(done.stdout.splitlines()[-1])
    assert Path(result["web"]).is_relative_to(tree), f"{result['web']} is not from {tree}"
    return result


def measure(trees: dict[str, Path]) -> dict[str, dict]:
    """Per tree: the median start time and RSS over ``ROUNDS`` fresh processes, interleaved
    (a neighbour on the shared machine slows both alike), and what they loaded."""
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(ROUNDS):
            for name, tree in trees.items():
                runs[name].append(probe(tree, Path(scratch)))
    return {name: {"seconds": statistics.median(r["seconds"] for r in found),
                   "rss_mib": statistics.median(r["rss_mib"] for r in found),
                   "loaded": found[-1]["loaded"]} for name, found in runs.items()}


def upload_check_cost(clip: Path) -> dict:
    """The cost of checking an upload in a child (now) against in the web process with PyAV
    already loaded (before): the median of ``ROUNDS`` checks of the same small clip each."""
    import time

    from core.settings import Settings
    from services import runtime
    from services.submit import check_recording
    from workers import media

    limits = media.Limits(**Settings().media_limits(10.0))
    timings: dict[str, list[float]] = {"in the web process": [], "in a child process": []}
    for _ in range(ROUNDS):
        started = time.perf_counter()
        media.check_upload(clip, limits)
        timings["in the web process"].append(time.perf_counter() - started)
        started = time.perf_counter()
        check_recording(runtime.settings(), clip)
        timings["in a child process"].append(time.perf_counter() - started)
    return {name: statistics.median(found) for name, found in timings.items()}


def render(results: dict[str, dict], check: dict[str, float] | None = None) -> str:
    rows = [f"| {name} | {r['seconds']:.2f} s | {r['rss_mib']:.0f} MiB | {', '.join(r['loaded']) or 'none'} |"
            for name, r in results.items()]
    lines = ["## The web process: start time and memory", "",
             f"`python -m bench.web_process`: `import web; web.create_app()` in a fresh process, {ROUNDS} times "
             "each, interleaved; the median. Start time is measured inside the process (from the import to the "
             "app made: no interpreter start); memory is its resident set (VmRSS) right after. *Before* is "
             f"commit `{BEFORE_REF}` (main before issue 12: the web process imported the tasks, and through "
             "them the pipeline and every analyzer) checked out into a temporary git worktree and run with the "
             "same interpreter and packages.", "",
             "| code | import + create_app | RSS after | heavy modules loaded |", "| --- | --- | --- | --- |", *rows]
    if {"before", "now"} <= results.keys():
        before, now = results["before"], results["now"]
        lines += ["", f"Now: {before['seconds'] / now['seconds']:.1f}x faster to start, "
                      f"{before['rss_mib'] - now['rss_mib']:.0f} MiB less resident memory per web process."]
    if check:
        lines += ["", "What it costs: the upload check (header, first second of packets, one picture decoded) now "
                      "runs in a child process, so each upload pays a Python start and PyAV's import. Median of "
                      f"{ROUNDS} checks of a generated 1 s 480x270 clip: "
                      + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in check.items()) + "."]
    return "\n".join(lines) + "\n"


def update_doc(doc: Path = DOC) -> dict:
    with tempfile.TemporaryDirectory() as parent:
        before = Path(parent) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), BEFORE_REF], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            results = measure({"before": before, "now": ROOT})
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, capture_output=True)
        from tests.clipmaker import make_clip

        check = upload_check_cost(make_clip(Path(parent) / "clip.mp4", seconds=1, fps=15).path)
    replace_section(render(results, check), doc)
    return {**results, "upload_check_s": check}


if __name__ == "__main__":
    print(json.dumps(update_doc(), indent=1))
