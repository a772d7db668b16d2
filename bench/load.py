"""Load: 50 uploads at once through the REST API, 500 segments queued, on the embedded farm
(gunicorn web app, 2 workers), twice: blobs in the local store with the records in SQLite (one
machine), and blobs in S3 (s3rver, tests/s3server.py) with the records in PostgreSQL (a cluster's
setup; a fresh database on 127.0.0.1:5432). Reports wall time, what completed, and the peak
memory of the web app and of the workers; writes its section of docs/benchmarks.md.

    python -m bench.load [UPLOADS]       (also run by `make bench`; UPLOADS defaults to 50)
"""

from __future__ import annotations

import json
import mimetypes
import os
import secrets
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psutil

from bench.docs import replace_section
from cli.redis_server import free_port
from tests.clipmaker import make_clip
from tests.net import wait_for_http

UPLOADS = 50
SEGMENTS_PER_UPLOAD = 10      # a 10 s clip with a keyframe a second, cut every second


def multipart_body(fields: list[tuple[str, str]], files: list[tuple[str, Path]]) -> tuple[bytes, str]:
    """A multipart/form-data body of text fields and files (each part typed by its file name)
    and its content type: what a browser's form sends to the REST API."""
    boundary = uuid.uuid4().hex
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
                    for name, value in fields)
    for name, file in files:
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file.name}\"\r\n"
                 f"Content-Type: {kind}\r\n\r\n").encode() + file.read_bytes() + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _multipart(path: Path, analyzers: str | None = "track") -> tuple[bytes, str]:
    """An upload's body (None: the farm's default analyzers) and its content type."""
    return multipart_body([("analyzers", analyzers)] if analyzers else [], [("file", path)])


class PeakMemory:
    """Samples the resident memory of process groups (a process and its children) until stopped."""

    def __init__(self, groups: dict[str, list[int]]):
        self.groups, self.peak = groups, {name: 0 for name in groups}
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.running:
            for name, pids in self.groups.items():
                total = 0
                for pid in pids:
                    try:
                        root = psutil.Process(pid)
                        total += sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                    except psutil.Error:
                        continue
                self.peak[name] = max(self.peak[name], total)
            time.sleep(0.2)

    def stop(self) -> dict[str, int]:
        self.running = False
        self.thread.join()
        return self.peak


LOCAL, S3 = "local + SQLite", "S3 + PostgreSQL"
HEADING = "## Load: uploads at once, local + SQLite beside S3 + PostgreSQL"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"


@contextmanager
def storage(setup: str, work: Path):
    """The environment of one setup: nothing for local + SQLite; an s3rver and a fresh PostgreSQL
    database (dropped after) for S3 + PostgreSQL."""
    if setup == LOCAL:
        yield {}
        return
    import sqlalchemy

    from tests import s3server

    if s3server.missing():
        raise RuntimeError(s3server.missing())
    admin = sqlalchemy.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    name = f"vidfarm_load_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        with s3server.S3Server(work / "s3rver") as server:
            env = {**server.env(), "DATABASE_URL": f"{POSTGRES}/{name}"}
            yield env
            # what the S3 server itself took of the 2 cores (it runs beside the farm here)
            times = psutil.Process(server.process.pid).cpu_times()
            env["s3_server_cpu_s"] = times.user + times.system
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def run(work: Path, setup: str = LOCAL, uploads: int = UPLOADS) -> dict:
    with storage(setup, work) as store_env:
        figures = {"setup": setup, **_run(work, store_env, uploads)}
    return {**figures, "s3_server_cpu_s": store_env.get("s3_server_cpu_s")}


def _run(work: Path, store_env: dict, uploads: int) -> dict:
    from cli.farm import EmbeddedFarm

    clip = make_clip(work / "ten_seconds.mp4", seconds=10, fps=10, size=(320, 180), gop=10,
                     photo_height=90, face_windows=[(0, 10)])
    token, port = secrets.token_urlsafe(16), free_port()
    env = {"VIDFARM_MIN_SEGMENTS": str(SEGMENTS_PER_UPLOAD), "VIDFARM_SEGMENT_SECONDS": "1", **store_env}
    with EmbeddedFarm(work / f"farm-{uuid.uuid4().hex[:6]}", workers=2, web_port=port, api_token=token,
                      extra_env=env) as farm:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz")
        web = [p.popen.pid for p in farm.processes if p.name == "web"]
        workers = [p.popen.pid for p in farm.processes if p.name.startswith("worker")]
        memory = PeakMemory({"web": web, "workers": workers})
        auth = {"Authorization": f"Bearer {token}"}

        def upload(_):
            body, content_type = _multipart(clip.path)
            request = urllib.request.Request(f"{base}/api/v1/jobs", data=body, method="POST",
                                             headers={**auth, "Content-Type": content_type})
            return json.load(urllib.request.urlopen(request, timeout=300))["id"]

        started = time.perf_counter()
        with ThreadPoolExecutor(uploads) as pool:
            job_ids = list(pool.map(upload, range(uploads)))
        uploaded = time.perf_counter() - started
        views = {}
        while len(views) < len(job_ids):
            for job_id in job_ids:
                if job_id not in views:
                    request = urllib.request.Request(f"{base}/api/v1/jobs/{job_id}", headers=auth)
                    view = json.load(urllib.request.urlopen(request, timeout=30))
                    drawn = view["video_version"] >= view["results_version"] or view["video_error"]
                    if view["status"] == "failed" or (view["status"] == "done" and drawn):   # results and video
                        views[job_id] = view
            time.sleep(1)
        wall = time.perf_counter() - started
        peak = memory.stop()
        frames_ok = 0
        for job_id in job_ids:
            if views[job_id]["status"] == "done":
                request = urllib.request.Request(f"{base}/api/v1/jobs/{job_id}/results", headers=auth)
                frames_ok += len(json.load(urllib.request.urlopen(request, timeout=30))["frames"]) == clip.frames
    return {"uploads": uploads, "upload_s": uploaded, "wall_s": wall,
            "segments": sum(v["chunks_total"] for v in views.values()),
            "done": sum(v["status"] == "done" and not v["video_error"] for v in views.values()), "frames_exact": frames_ok,
            "peak_web_mb": peak["web"] / 2**20, "peak_workers_mb": peak["workers"] / 2**20,
            "video_s": uploads * 10.0}


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def render(runs: list[dict], load: tuple[float, float]) -> str:
    uploads = runs[0]["uploads"]
    rows = [f"| {r['setup']} | {r['uploads']} | {r['segments']} | {r['upload_s']:.1f} s | {r['wall_s']:.1f} s "
            f"({r['video_s'] / r['wall_s']:.2f}x real time) | {r['done']}/{r['uploads']} | "
            f"{r['frames_exact']}/{r['uploads']} | {r['peak_web_mb']:.0f} MiB | {r['peak_workers_mb']:.0f} MiB | "
            f"{_seconds(r['s3_server_cpu_s'])} |"
            for r in runs]
    return "\n".join([
        HEADING, "",
        f"{uploads} uploads at once, {uploads * SEGMENTS_PER_UPLOAD} segments queued. "
        f"`python -m bench.load` (part of `make bench`): {uploads} copies of a 10 s 320x180 clip (a face on "
        f"screen throughout) posted at once to `POST /api/v1/jobs` by {uploads} client threads, against the embedded "
        "farm (gunicorn web app with 2 processes x 4 threads, 2 Celery workers, detect + track), each cut into "
        f"10 one-second segments. Peak memory is the resident set of each process tree, sampled every 0.2 s; "
        f"{os.cpu_count()} cores, load average {load[0]:.1f} before and {load[1]:.1f} after (a shared machine: "
        "compare the rows, measured one after the other in one run). Two setups: blobs on the local disk with "
        "the records in SQLite (one machine), and blobs in an S3 bucket (s3rver, a real S3 server from npm, on "
        "this machine) with the records in PostgreSQL (a fresh database on this machine's server): a cluster's "
        "setup, without its network. *S3 server CPU*: the s3rver process's user + system seconds over the run, "
        "taken from the same 2 cores as the farm (on a cluster the object store runs elsewhere).", "",
        "| setup | uploads | segments queued | all accepted in | all done in (results and video) | done | "
        "frame-exact results | peak memory, web | peak memory, workers | S3 server CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows, "",
        "None lost where every row reads done and frame-exact for every upload: every upload got a job, every job "
        "finished, every results.json has one entry per frame.", ""])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    uploads = int(argv[0]) if argv else UPLOADS
    before = os.getloadavg()[0]
    runs = []
    for setup in (LOCAL, S3):
        with tempfile.TemporaryDirectory(prefix="vidfarm-load-") as work:
            runs.append(run(Path(work), setup, uploads))
        print(json.dumps(runs[-1]))
    replace_section(render(runs, (before, os.getloadavg()[0])))
    return 0 if all(r["done"] == r["uploads"] == r["frames_exact"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
