"""The embedded farm's start: how long until it can take a job, and `vidfarm process` on a
short clip, for this tree and, in the same run, for the code before (``BEFORE_REF``, exported
with ``git archive`` into a temporary folder and run with the same interpreter and packages).

*Ready to take a job*: from the start of a fresh process (before it imports anything of
vidfarm's) until every worker of a 2-worker ``EmbeddedFarm`` has answered a ping **and** its
models are loaded. The second is seen the same way for both trees: small tasks are sent, from
the farm's start on, to a queue every worker takes from, one more each time one finishes,
until every worker has run one; a Celery worker hands a task to its pool process only once
that process has finished its start (``worker_process_init``, where the models load), so a
worker's first task done means its models are in. Each worker's time is the stamp of its
first such task in its own log; *ready* is the last worker's. An earlier probe told each worker to consume a queue of its own first, and
so also measured kombu's Redis poll, which takes up a new queue only at its next BRPOP (up to
1 s later).

``python -m bench.startup [--rounds N] [--write]`` (``make bench`` runs it with --write).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.docs import replace_section

ROOT = Path(__file__).resolve().parents[1]
# main before issue 15's start-up work.
BEFORE_REF = os.environ.get("VIDFARM_BENCH_STARTUP_BEFORE", "8c3d01b")
ROUNDS = 5

# Run in a fresh interpreter inside the tree measured (its cwd and PYTHONPATH).
READY_PROBE = r"""
import os, re, sys, time
started, wall_started = time.monotonic(), time.time()
import json
from pathlib import Path
data = Path(sys.argv[1])
os.environ["VIDFARM_DATA_DIR"] = str(data)
os.environ.pop("REDIS_URL", None)
from cli.farm import EmbeddedFarm
farm = EmbeddedFarm(data, workers=2).start()
farm_started = time.monotonic() - started
try:
    os.environ["REDIS_URL"] = farm.redis_url
    from tasks.app import app
    app.conf.update(broker_url=farm.redis_url, result_backend=farm.redis_url)
    names = {p.name for p in farm.processes if p.name.startswith("worker")}
    # Small tasks, from the start on, to a queue every worker takes from: as many as there are
    # workers at first, then one more each time one finishes, until each worker's log shows a
    # finished one (a worker up first may take several; a task sent while two wait goes to the
    # one that has waited longer, Redis's order). A worker's readiness is its first such line's
    # stamp; the ping below does not delay it.
    probe = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}):.*Task vidfarm\.reidentify_stale\[.*\] succeeded")
    def first_done(name):
        path = farm.log_dir / f"{name}.log"
        for line in (path.read_text(errors="replace").splitlines() if path.exists() else []):
            found = probe.match(line)
            if found:
                return time.mktime(time.strptime(found[1], "%Y-%m-%d %H:%M:%S")) + int(found[2]) / 1000
        return None
    pending = [app.send_task("vidfarm.reidentify_stale", queue="ingest") for _ in names]
    hosts, done_at, sent = {}, {}, len(pending)
    while set(hosts) != names or set(done_at) != names:
        if set(hosts) != names:
            for reply in app.control.ping(timeout=0.05) or []:      # each call waits this long
                for host in reply:
                    hosts.setdefault(host.split("@")[0], host)
            if set(hosts) == names:
                pinged = time.monotonic() - started
        else:
            time.sleep(0.01)
        finished = [r for r in pending if r.ready()]
        pending = [r for r in pending if not r.ready()]
        for result in finished:
            result.get()                                            # a failed probe task ends the probe
        for name in names - set(done_at):
            if finished or not pending:
                at = first_done(name)
                if at is not None:
                    done_at[name] = at
        if set(done_at) != names:
            pending += [app.send_task("vidfarm.reidentify_stale", queue="ingest") for _ in finished]
            sent += len(finished)
        if time.monotonic() - started > 120:
            raise SystemExit(f"workers not ready: answered {sorted(hosts)}, ran a task {sorted(done_at)}")
    ready = max(done_at.values()) - wall_started
    import psutil
    roots = [p.popen.pid for p in farm.processes]
    if getattr(farm, "forkserver", None) is not None:
        roots.append(farm.forkserver.popen.pid)
    seen = {}      # each process once (forked workers are the fork server's children too)
    for pid in roots:
        try:
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                times = process.cpu_times()
                seen[process.pid] = times.user + times.system
        except psutil.NoSuchProcess:
            pass
    cpu = sum(seen.values())
    print(json.dumps({"pinged_s": pinged, "ready_s": ready, "cpu_s": cpu, "farm_started_s": farm_started, "probes": sent,
                      "wall_started": wall_started, "log_dir": str(farm.log_dir),
                      "farm": __import__("cli.farm").farm.__file__}))
finally:
    farm.stop()
"""


def ready(tree: Path, scratch: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", READY_PROBE, str(scratch)], cwd=tree,
                          env=_env(tree), capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"ready probe in {tree} failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.splitlines()[-1])
    assert Path(result.pop("farm")).is_relative_to(tree), f"the farm measured is not {tree}'s"
    result["stages"] = stages(Path(result.pop("log_dir")), result.pop("wall_started"))
    result["stages"].update({"the farm's start() returned": result.pop("farm_started_s"),
                             "every worker answered a ping": result["pinged_s"],
                             "every worker took a task": result["ready_s"]})
    return result


# Where the start goes, read from the farm's logs (the fork server logs each part of its
# loading as it ends; the workers' lines are Celery's and ours): (stage, log line pattern).
# A stage several processes reach (each worker) counts when the last one does.
STAGES = [("fork server: python started", r"fork server\] started$"),
          ("fork server: analyzers imported, analyzer configs checked", r"fork server\] analyzers imported"),
          ("fork server's child: database schema brought up to date", r"fork server\] database schema brought"),
          ("fork server: tasks and pipeline imported", r"fork server\] tasks imported"),
          ("fork server: celery worker imported", r"fork server\] celery worker imported"),
          ("fork server: models loaded", r"fork server\] models loaded"),
          ("fork server: database schema current", r"fork server\] database schema current"),
          ("fork server: workers forked", r"fork server\] forked the worker"),
          ("workers: connected to Redis", r"/MainProcess\] Connected to redis"),
          ("workers' pool processes: models ready", r"/ForkPoolWorker-\d+\] models ready"),
          ("workers: consuming (Celery's ready)", r"/MainProcess\] \S+ ready\.$")]
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}):")


def stages(log_dir: Path, wall_started: float) -> dict[str, float]:
    """Seconds from the probe's start to each stage its farm's logs show (milliseconds, wall
    clock: the log lines' own stamps)."""
    found: dict[str, float] = {}
    for log in sorted(log_dir.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            stamp = STAMP.match(line)
            if not stamp:
                continue
            at = time.mktime(time.strptime(stamp[1], "%Y-%m-%d %H:%M:%S")) + int(stamp[2]) / 1000 - wall_started
            for stage, pattern in STAGES:
                if re.search(pattern, line):
                    found[stage] = max(found.get(stage, at), at)
    return found


def process_wall(tree: Path, scratch: Path, clip: Path) -> float:
    """`vidfarm process CLIP` from exec to exit (the whole command: its farm's start, the job,
    the copy out, the farm's stop)."""
    env = {**_env(tree), "VIDFARM_DATA_DIR": str(scratch / "data")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli.main", "process", str(clip), "--out", str(scratch / "out")],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"vidfarm process in {tree} failed: {done.stderr[-2000:]}")
    return wall


def up_first_job(tree: Path, scratch: Path, clip: Path) -> dict:
    """`vidfarm up --workers 2` from exec until its web app answers, and until a first upload
    through the API (all analyzers) is done with its video drawn: the first job waits for
    whatever the farm had left to start (the autoscaler starts the CPU workers when it comes)."""
    import signal
    import urllib.request

    from bench.load import _multipart
    from cli.redis_server import free_port
    from tests.net import wait_for_http

    port = free_port()
    env = {**_env(tree), "VIDFARM_DATA_DIR": str(scratch / "data"), "VIDFARM_FLOWER_PORT": str(free_port())}
    started = time.monotonic()
    up = subprocess.Popen([sys.executable, "-m", "cli.main", "up", "--workers", "2", "--port", str(port)],
                          cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = ""
        while "Ctrl-C" not in banner:
            line = up.stdout.readline()
            if not line:
                raise RuntimeError(f"vidfarm up in {tree} ended early: {banner}")
            banner += line
        token = re.search(r"token\s*:\s*(\S+)", banner).group(1)
        base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        wait_for_http(f"{base}/healthz", timeout=120)
        web = time.monotonic() - started
        body, content_type = _multipart(clip, analyzers=None)
        request = urllib.request.Request(f"{base}/api/v1/jobs", data=body, method="POST",
                                         headers={**auth, "Content-Type": content_type})
        job_id = json.load(urllib.request.urlopen(request, timeout=120))["id"]
        while True:
            request = urllib.request.Request(f"{base}/api/v1/jobs/{job_id}", headers=auth)
            view = json.load(urllib.request.urlopen(request, timeout=30))
            if view["status"] == "failed" or view["video_error"]:
                raise RuntimeError(f"the first job failed in {tree}: {view}")
            if view["status"] == "done" and view["video_version"] >= view["results_version"]:
                break
            time.sleep(0.1)
        return {"web_s": web, "first_job_s": time.monotonic() - started}
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(120)
        up.stdout.close()


def _env(tree: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("REDIS_URL", None)
    return env


PRODUCT = ("cli", "core", "services", "tasks", "workers", "web", "celeryconfig.py")


def compile_tree(tree: Path) -> None:
    """Its modules' bytecode written beforehand, as an installed (or once run) vidfarm has it:
    the processes measured run with PYTHONDONTWRITEBYTECODE, and without the cache each of
    them would compile every module of the tree from source at every start."""
    product = [str(tree / name) for name in PRODUCT if (tree / name).exists()]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *product], check=True, capture_output=True)


def measure(trees: dict[str, Path], rounds: int, work: Path) -> dict:
    """Interleaved rounds (a busy neighbour on the shared machine slows both alike); medians."""
    from tests.clipmaker import make_clip

    clip = make_clip(work / "clip.mp4", seconds=2, fps=15, size=(320, 180)).path
    for tree in trees.values():
        compile_tree(tree)
    runs: dict[str, dict[str, list[float]]] = {name: {"pinged_s": [], "ready_s": [], "cpu_s": [], "process_s": [],
                                                      "up_web_s": [], "up_first_job_s": []}
                                               for name in trees}
    timeline: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    load = [os.getloadavg()[0]]
    for round_ in range(rounds):
        # A B, then B A: neither tree always runs first in a round (or right after the other).
        for name, tree in (list(trees.items()) if round_ % 2 == 0 else list(trees.items())[::-1]):
            scratch = Path(tempfile.mkdtemp(prefix=f"{name}-{round_}-", dir=work))
            found = ready(tree, scratch / "ready")
            runs[name]["pinged_s"].append(found["pinged_s"])
            runs[name]["ready_s"].append(found["ready_s"])
            runs[name]["cpu_s"].append(found["cpu_s"])
            for stage, at in found["stages"].items():
                timeline[name].setdefault(stage, []).append(at)
            runs[name]["process_s"].append(process_wall(tree, scratch, clip))
            found = up_first_job(tree, scratch / "up", clip)
            runs[name]["up_web_s"].append(found["web_s"])
            runs[name]["up_first_job_s"].append(found["first_job_s"])
        load.append(os.getloadavg()[0])
    return {"rounds": rounds, "load": load, "cores": os.cpu_count(),
            "runs": runs, "median": {name: {k: statistics.median(v) for k, v in r.items()} for name, r in runs.items()},
            "stages": {name: {stage: statistics.median(at) for stage, at in found.items()}
                       for name, found in timeline.items()}}


def render(figures: dict) -> str:
    median, runs = figures["median"], figures["runs"]

    def cell(name: str, key: str) -> str:
        return f"{median[name][key]:.2f} s ({min(runs[name][key]):.2f}-{max(runs[name][key]):.2f})"

    rows = [f"| {name} | {cell(name, 'pinged_s')} | {cell(name, 'ready_s')} | {median[name]['cpu_s']:.1f} s | "
            f"{cell(name, 'process_s')} | {cell(name, 'up_web_s')} | {cell(name, 'up_first_job_s')} |"
            for name in median]
    lines = ["## The embedded farm's start", "",
             "`python -m bench.startup`: a 2-worker embedded farm (`cli.farm.EmbeddedFarm`, as `vidfarm process` "
             "starts it) from a fresh process's start until every worker answered a ping, and until every worker "
             "is *ready to take a job*: its models are loaded and it takes tasks (small tasks are sent from the "
             "farm's start to a queue they all take from, one more as each finishes, until every worker has run "
             "one: a Celery worker hands a task to its pool process only after that process's start, where the "
             "models load; each worker's time is its first such task's stamp in its own log, and the figure is "
             "the last worker's); the CPU time its processes (workers, their pool processes, the fork "
             "server) had used by then; `vidfarm process` of a 2 s 320x180 clip (all analyzers) from exec to exit; "
             "`vidfarm up --workers 2` from exec until its web app answers `/healthz`, and until a first upload "
             "of the same clip through the API is done with its video drawn (its CPU workers are started by the "
             "local autoscaler when the upload comes). "
             f"{figures['rounds']} rounds, the trees interleaved (A B, B A, ...); the median (min-max). *Before* is commit "
             f"`{BEFORE_REF}` exported with `git archive` and run with the same interpreter and packages; both "
             "trees' bytecode is compiled first, as an installed vidfarm's is. "
             f"{figures['cores']} cores; load average {', '.join(f'{x:.1f}' for x in figures['load'])} at the "
             "start and after each round" + (" (above 2: other work shared the cores, so the wall times are longer "
             "than an otherwise idle machine gives; the CPU time is the steadier figure)."
             if max(figures["load"][1:] or figures["load"]) > 2 else
             " (the farm's own processes; nothing else ran)."), "",
             "| code | workers answered a ping | ready to take a job | CPU used by then | `vidfarm process` 2 s clip "
             "| `up`: web answers | `up`: first job done |",
             "| --- | --- | --- | --- | --- | --- | --- |", *rows]
    if {"before", "now"} <= median.keys():
        before, now = median["before"], median["now"]
        lines += ["", f"Now against before (medians): ready to take a job in {now['ready_s']:.2f} s against "
                      f"{before['ready_s']:.2f} s, using {before['cpu_s'] / now['cpu_s']:.2f}x less CPU "
                      f"({now['cpu_s']:.1f} s against {before['cpu_s']:.1f} s); `vidfarm process` "
                      f"{now['process_s']:.2f} s against {before['process_s']:.2f} s; `vidfarm up`'s web app "
                      f"answers after {now['up_web_s']:.2f} s against {before['up_web_s']:.2f} s and its first "
                      f"job is done after {now['up_first_job_s']:.2f} s against {before['up_first_job_s']:.2f} s."]
    lines += ["", "Where it comes from: *now*, one fork server (`tasks/forkserver.py`) imports, checks and loads "
                  "the models once, on one core, and each worker is a fork of it; *before*, each worker did all "
                  "of it by itself, the two at once on the two cores. So the saving is CPU (and the memory the "
                  "forks share), which turns into wall time when the cores are busy or the workers outnumber "
                  "them. On the serial path that is left, the fork server's database migrations run in a child "
                  "of its own beside its imports (and then neither it nor its workers check the schema again, "
                  "which imported Alembic), its collector is off while it imports, the recogniser and the "
                  "mask analyzer share one ArcFace session, and each fork starts Celery's worker command without "
                  "the `celery` command group (whose import cost each worker about 0.3 s). `vidfarm process` no "
                  "longer checks the analyzer configs itself before starting the farm, and `vidfarm up` starts "
                  "beat, Flower and the camera ingester after the workers' loading, and its autoscaler forks the "
                  "CPU workers from a fork server of its own. The workers load and run their models through "
                  "onnxruntime alone: neither onnx nor insightface (nor scikit-image) is imported on the way "
                  "to a first job (`workers/onnx_wire.py` reads and edits the ONNX files; the face alignment "
                  "and ArcFace's input scaling are our own code, the same pixels and embeddings), where "
                  "importing them took 0.6-0.7 s of the fork server's CPU."]
    lines += breakdown(figures)
    return "\n".join(lines) + "\n"


def breakdown(figures: dict) -> list[str]:
    """Where the time to *ready* goes, by the stages the logs show (see ``STAGES``)."""
    found = figures.get("stages", {}).get("now")
    if not found:
        return []
    order = sorted(found.items(), key=lambda item: item[1])
    rows, last = [], 0.0
    for stage, at in order:
        rows.append(f"| {stage} | {at:.2f} s | {at - last:+.2f} s |")
        last = at
    lines = ["", "Where *now*'s start goes (the median over the rounds of when each stage was reached, from "
                 "the fresh process's start; stages are read from the farm's logs, whose stamps are to the "
                 "millisecond; a stage each worker reaches counts when the last one does):", "",
             "| stage | reached after | since the stage above |", "| --- | --- | --- |", *rows]
    first, imported = found.get("fork server: python started"), found.get("fork server: celery worker imported")
    done = found.get("every worker took a task")
    if first is not None and imported is not None and done:
        lines += ["", f"The fork server's imports (from its interpreter's start until Celery's worker is imported: "
                      f"OpenCV, PyAV, onnxruntime, supervision and SciPy, SQLAlchemy, "
                      f"Celery, the tasks) take {imported - first:.2f} s of the {done:.2f} s, one process on one "
                      f"core; everything before its start (this process's own imports, the settings) "
                      f"{first:.2f} s, and everything after {done - imported:.2f} s."]
    pinged = found.get("every worker answered a ping")
    if done and pinged and pinged > done + 0.3:
        lines += ["", f"The workers answered a ping {pinged - done:.2f} s after they had taken their tasks: a ping "
                      "is no sign of readiness (the Redis transport seems to take up a worker's broadcast "
                      "subscription only after its first poll of the queues, which waits up to 1 s; not "
                      "investigated further)."]
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--write", action="store_true", help="put the section in docs/benchmarks.md")
    parser.add_argument("--only-now", action="store_true", help="measure this tree alone")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vidfarm-startup-") as parent:
        work = Path(parent)
        trees = {"now": ROOT}
        if not args.only_now:
            before = work / "before"
            before.mkdir()
            archive = subprocess.run(["git", "archive", BEFORE_REF], cwd=ROOT, check=True, capture_output=True)
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
            trees = {"before": before, "now": ROOT}
        figures = measure(trees, args.rounds, work)
    print(json.dumps(figures))
    text = render(figures)
    print(text)
    if args.write:
        replace_section(text)
    return figures


if __name__ == "__main__":
    main()
