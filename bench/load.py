"""Load: 50 uploads at once through the REST API, 500 segments queued, on the embedded farm
(gunicorn web app, 2 workers). Reports wall time, what completed, and the peak memory of the
web app and of the workers; writes its section of docs/benchmarks.md.

    python -m bench.load        (also run by `make bench`)
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from bench.docs import replace_section
from cli.redis_server import free_port
from tests.clipmaker import make_clip
from tests.net import wait_for_http

UPLOADS = 50
SEGMENTS_PER_UPLOAD = 10      # a 10 s clip with a keyframe a second, cut every second


def _multipart(path: Path, analyzers: str | None = "track") -> tuple[bytes, str]:
    """An upload's body (None: the farm's default analyzers) and its content type."""
    boundary = uuid.uuid4().hex
    field = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"analyzers\"\r\n\r\n{analyzers}\r\n"
             if analyzers else "")
    body = (f"{field}--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


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


def run(work: Path) -> dict:
    from cli.farm import EmbeddedFarm

    clip = make_clip(work / "ten_seconds.mp4", seconds=10, fps=10, size=(320, 180), gop=10,
                     photo_height=90, face_windows=[(0, 10)])
    token, port = secrets.token_urlsafe(16), free_port()
    env = {"VIDFARM_MIN_SEGMENTS": str(SEGMENTS_PER_UPLOAD), "VIDFARM_SEGMENT_SECONDS": "1"}
    with EmbeddedFarm(work / "farm", workers=2, web_port=port, api_token=token, extra_env=env) as farm:
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
        with ThreadPoolExecutor(UPLOADS) as pool:
            job_ids = list(pool.map(upload, range(UPLOADS)))
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
    return {"uploads": UPLOADS, "upload_s": uploaded, "wall_s": wall,
            "segments": sum(v["chunks_total"] for v in views.values()),
            "done": sum(v["status"] == "done" and not v["video_error"] for v in views.values()), "frames_exact": frames_ok,
            "peak_web_mb": peak["web"] / 2**20, "peak_workers_mb": peak["workers"] / 2**20,
            "video_s": UPLOADS * 10.0}


def render(r: dict) -> str:
    return "\n".join([
        "## Load: 50 uploads at once, 500 segments", "",
        f"`python -m bench.load` (part of `make bench`): {r['uploads']} copies of a 10 s 320x180 clip (a face on "
        "screen throughout) posted at once to `POST /api/v1/jobs` by 50 client threads, against the embedded "
        "farm (gunicorn web app with 2 processes x 4 threads, 2 Celery workers, detect + track), each cut into "
        f"10 one-second segments. Peak memory is the resident set of each process tree, sampled every 0.2 s; "
        f"{os.cpu_count()} cores.", "",
        "| uploads | segments queued | all 50 accepted in | all done in (results and video) | done | frame-exact results | "
        "peak memory, web | peak memory, workers |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {r['uploads']} | {r['segments']} | {r['upload_s']:.1f} s | {r['wall_s']:.1f} s "
        f"({r['video_s'] / r['wall_s']:.2f}x real time) | {r['done']}/{r['uploads']} | {r['frames_exact']}/{r['uploads']} "
        f"| {r['peak_web_mb']:.0f} MiB | {r['peak_workers_mb']:.0f} MiB |", "",
        "None lost: every upload got a job, every job finished, every results.json has one entry per frame.", ""])


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="vidfarm-load-") as work:
        figures = run(Path(work))
    print(json.dumps(figures))
    replace_section(render(figures))
    return 0 if figures["done"] == figures["uploads"] == figures["frames_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
