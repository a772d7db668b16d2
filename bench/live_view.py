"""How far behind the camera the live view runs: capture -> result, -> drawn piece, -> on screen.

``python -m bench.live_view`` runs the embedded farm as ``vidfarm up`` deploys it (gunicorn web
app, the camera ingester process, 2 workers on ``live,ingest,cpu``), a GStreamer RTSP camera
playing a generated 720p recording with a face on screen throughout, and Debian's Chromium
(Playwright) on the camera page. Over the measured window it samples, every 0.5 s, what the
page says of the picture on screen (``data-lag``: now minus the capture time of the frame
shown, both on this machine's clock), and takes each segment's capture -> result latency and
each drawn piece's capture -> ready time from the camera's events, and the ingester process's
CPU time. The same for a browser camera: Chromium's fake camera publishing the recording over
WebRTC from the camera's publish page. ``--cameras 1 2 4``: that many RTSP cameras on one
server (the same clip at an address each), each watched (its live view drawn, as for a wall of camera pages); the browser shows the
first one; result and drawn-piece latencies are every camera's.

Writes the "Live view" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import nullcontext
from pathlib import Path

from bench.docs import replace_section

FPS_CHOICES = (15, 30)
SIZE = (1280, 720)
WARMUP_S = 20.0           # the first segments pay the workers' model loading
WINDOW_S = 60.0
PASSWORD = "live view bench password"


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure(work: Path, fps: int, window_s: float, source: str = "rtsp", cameras: int = 1) -> dict:
    """source: "rtsp" (GStreamer's RTSP server) or "browser" (Chromium's fake camera playing the
    same recording, published over WebRTC from the publish page); cameras: RTSP cameras on the
    same stream, every one watched (the WebRTC player is compared with MSE only for one)."""
    import psutil
    from playwright.sync_api import sync_playwright

    from cli.farm import EmbeddedFarm
    from cli.redis_server import free_port
    from tests.clipmaker import make_clip
    from tests.rtsp_camera import RtspCamera, gstreamer_missing
    from tests.web.test_browser import CHROMIUM, LAUNCH_ARGS

    missing = gstreamer_missing()
    if missing and source == "rtsp":
        raise RuntimeError(missing)
    seconds = int(WARMUP_S + window_s + 40) if source == "rtsp" else 4     # Chromium loops its file
    clip = make_clip(work / f"720p{fps}-{source}.mp4", seconds=seconds, fps=fps, size=SIZE, photo_height=300,
                     gop=fps, audio=False, face_windows=[(0, seconds)])
    args = LAUNCH_ARGS
    if source == "browser":
        args = LAUNCH_ARGS + ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                              f"--use-file-for-fake-video-capture={_y4m(clip.path)}"]
    token, port = secrets.token_urlsafe(16), free_port()
    data_dir = work / f"farm{fps}-{source}-{cameras}"
    load_before = os.getloadavg()[0]
    with EmbeddedFarm(data_dir, workers=2, web_port=port, api_token=token, cameras=True) as farm, \
            (RtspCamera(clip.path, feeds=cameras) if source == "rtsp" else nullcontext()) as camera:
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/healthz")
        username = _make_user(data_dir, farm.redis_url)
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        # The farm registers a stream once: each camera its own address on the one server.
        urls = [camera.feed_url(n) for n in range(1, cameras + 1)] if source == "rtsp" else ["webrtc://browser"]
        camera_ids = [_call(f"{base}/api/v1/cameras", auth, {"name": f"Bench {n + 1}", "url": url})["id"]
                      for n, url in enumerate(urls)]
        camera_id = camera_ids[0]     # the one on screen
        # view=1: each camera's live view is drawn as if its page were open.
        logs = [_EventLog(f"{base}/api/v1/cameras/{cid}/events?wait={WARMUP_S + window_s + 120}&view=1", auth)
                for cid in camera_ids]
        ingester = psutil.Process(next(p.popen.pid for p in farm.processes if p.name == "ingest"))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
            context = browser.new_context(viewport={"width": 1100, "height": 900})
            page = context.new_page()
            page.goto(f"{base}/login")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/jobs")
            if source == "browser":
                publisher = context.new_page()
                publisher.goto(f"{base}/cameras/{camera_id}/publish")
                publisher.click("#publish-start")
                publisher.wait_for_function("() => document.getElementById('publish').dataset.state === "
                                            "'publishing'", timeout=60_000)
            page.goto(f"{base}/cameras/{camera_id}")
            page.wait_for_function("() => document.getElementById('live').dataset.lag", timeout=180_000)
            time.sleep(WARMUP_S)
            started = time.time()
            # First half: the MSE player alone; second half (RTSP runs): a WebRTC player of the
            # same camera beside it, both sampled together (the ingester's CPU per half).
            players = {"mse": page}
            halves = [window_s] if source == "browser" or cameras > 1 else [window_s / 2, window_s / 2]
            shown, frozen, cpu = {"mse": [], "webrtc": []}, {"mse": 0, "webrtc": 0}, []
            for half, length in enumerate(halves):
                if half == 1:
                    players["webrtc"] = context.new_page()
                    players["webrtc"].goto(f"{base}/cameras/{camera_id}?player=webrtc")
                    players["webrtc"].wait_for_function("() => document.getElementById('live').dataset.lag",
                                                        timeout=120_000)
                    time.sleep(5)     # its first piece
                begun, cpu_before = time.time(), _cpu(ingester)
                while time.time() - begun < length:
                    for name, player in players.items():
                        lag, lag_at, now = player.evaluate("[document.getElementById('live').dataset.lag, "
                                                           "document.getElementById('live').dataset.lagAt, Date.now()]")
                        if now - int(lag_at) < 1000:
                            shown[name].append(float(lag))
                        else:       # no frame shown for a second: the player waits for the next piece
                            frozen[name] += 1
                    time.sleep(0.5)
                cpu.append((_cpu(ingester) - cpu_before) / (time.time() - begun))
            ingest_cpu = cpu[0]
            browser.close()
        for log in logs:
            log.stop()
    in_window = [e for log in logs for e in log.events if e[1].get("captured_at", 0) >= started - 10]
    results = [d["latency_s"] for kind, d in in_window if kind == "segment"]
    drawn = [d["ready_at"] - d["captured_at"] for kind, d in in_window if kind == "view"]
    pieces = [d for kind, d in in_window if kind == "view"]
    sizes = sorted({f"{d['width']}x{d['height']}" for d in pieces})
    received_fps = statistics.median(d["frames"] / d["duration_s"] for d in pieces) if pieces else 0.0
    return {"fps": fps, "source": source, "cameras": len(camera_ids), "load": [load_before, os.getloadavg()[0]],
            "sizes": sizes, "received_fps": received_fps, "ingest_cpu": ingest_cpu, "window_s": window_s,
            "samples": len(shown["mse"]) + frozen["mse"], "frozen_samples": frozen["mse"],
            "shown": shown["mse"], "results": results, "drawn": drawn,
            "webrtc": None if len(cpu) < 2 else {
                "shown": shown["webrtc"], "samples": len(shown["webrtc"]) + frozen["webrtc"],
                "frozen_samples": frozen["webrtc"], "mse_shown": shown["mse"][-len(shown["webrtc"]):],
                "ingest_cpu": cpu[1], "ingest_cpu_mse_only": cpu[0]}}


def _cpu(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _y4m(clip: Path) -> Path:
    """The recording as raw YUV4MPEG, what Chromium's fake camera plays."""
    import av

    target = clip.with_suffix(".y4m")
    with av.open(str(clip)) as source, av.open(str(target), "w", format="yuv4mpegpipe") as out:
        video = source.streams.video[0]
        stream = out.add_stream("rawvideo", rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        for frame in source.decode(video):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return target


class _EventLog:
    """The camera's Server-Sent Events, read in a thread: [(kind, data)]."""

    def __init__(self, url: str, headers: dict):
        self.events: list[tuple[str, dict]] = []
        self.response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=600)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        kind = None
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind:
                    self.events.append((kind, json.loads(line[6:])))
        except (OSError, ValueError, AttributeError):   # closed by stop() (http.client: AttributeError)
            pass

    def stop(self) -> None:
        self.response.close()


def _make_user(data_dir: Path, redis_url: str) -> str:
    os.environ.update({"VIDFARM_DATA_DIR": str(data_dir), "REDIS_URL": redis_url})
    from core.accounts import Accounts
    from core.settings import get_settings
    from services import runtime

    get_settings.cache_clear()
    runtime.reset()
    username = f"bench-{secrets.token_hex(3)}"
    Accounts(runtime.records()).create_user(username, PASSWORD, "operator")   # the publish page needs one
    return username


def _call(url: str, headers: dict, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    return json.load(urllib.request.urlopen(request, timeout=30))


def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def render(rows: list[dict]) -> str:
    lines = [
        "## Live view",
        "",
        "`python -m bench.live_view`: the embedded farm as `vidfarm up` runs it (gunicorn web app, the camera "
        "ingester, 2 workers serving `live,ingest,cpu`), one GStreamer RTSP camera playing a generated "
        f"{SIZE[0]}x{SIZE[1]} recording (a face on screen throughout, a keyframe a second), 2 s segments, the "
        "default analyzers, and Debian's Chromium on the camera page. After "
        f"{WARMUP_S:.0f} s of warm-up, every 0.5 s for the window, the page's own figure for the picture on "
        "screen (now minus that frame's capture time; camera, farm and browser share this machine's clock); "
        "result and drawn-piece latencies are every segment's in the window, from the camera's events. "
        f"{os.cpu_count()} cores; the load average before and after each row is in the table (above 2 the "
        "cores were also busy with other work). With several cameras, every camera watches the same clip (one "
        "server, an address each) and has its live view drawn (as for a wall of camera pages); the browser shows the first one, and "
        "the result and drawn-piece latencies are every camera's.",
        "",
        "| camera | cameras | capture -> result p50 / p95 | capture -> drawn piece ready p50 / p95 | capture -> on screen "
        "p50 / p95 (max) | samples (frozen picture) | ingester CPU (% of a core) | load before / after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        def pair(values):
            return f"{percentile(values, 50):.2f} / {percentile(values, 95):.2f} s" if values else "none"
        kind = "RTSP" if r["source"] == "rtsp" else "browser (WebRTC)"
        shown = f"{pair(r['shown'])} ({max(r['shown']):.2f} s)" if r["shown"] else "none"
        lines.append(f"| {kind}, 720p{r['fps']} sent, {' / '.join(r['sizes'])} {r['received_fps']:.0f} fps received "
                     f"| {r.get('cameras', 1)} | {pair(r['results'])} ({len(r['results'])} segments) "
                     f"| {pair(r['drawn'])} | {shown} "
                     f"| {r['samples']} ({r['frozen_samples']}) | {100 * r['ingest_cpu']:.0f} % "
                     f"| {r['load'][0]:.1f} / {r['load'][1]:.1f} |")
    lines += [
        "",
        "What makes up the delay on screen: a segment's first frame waits for the segment to end (2 s), "
        "then for its analysis and stitching (capture -> result), then for a worker to draw it (the "
        "`vidfarm.live_view` task), then the page fetches and appends it and plays it from its first frame, "
        "so every frame of a piece is shown about as late as its first. A frozen sample is one where no frame "
        "had played for a second (the page waiting for the next piece); it counts in the samples, not in the "
        "percentiles. The browser camera is Chromium's fake camera playing the same recording (a 4 s loop), "
        "published from the publish page in the same browser; its capture time is when its pictures reached "
        "the ingester (aiortc exposes no sender clock), so its figures leave out the browser's own encoding "
        "and sending. Ingester CPU is the `vidfarm ingest` process's user + system time over the window "
        "(reading the camera, cutting segments, keeping them for the recording; for the browser camera also "
        "decoding its VP8 and encoding H.264).",
    ]
    lines += [
        "",
        "### MSE or WebRTC back to the viewer",
        "",
        "The same RTSP camera, in the same run: for the first half of the window the camera page's MSE player "
        "alone, for the second half a second tab playing it over WebRTC (`?player=webrtc`: aiortc in the "
        "ingester sends the same drawn pieces as a video track) beside the MSE tab, both sampled every 0.5 s. "
        "The WebRTC figure is the ingester's send delay of the newest picture (capture -> sent, over the "
        "player's data channel) plus the browser's own delay from receiving that picture to showing it "
        "(`requestVideoFrameCallback`'s `expectedDisplayTime - receiveTime`); both on this machine's clock.",
        "",
        "| camera | MSE on screen p50 / p95 (same half) | WebRTC on screen p50 / p95 (max) | WebRTC samples "
        "(frozen) | ingester CPU: MSE only / with one WebRTC viewer |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        w = r.get("webrtc")
        if not w or not w["shown"]:
            continue

        def pair(values):
            return f"{percentile(values, 50):.2f} / {percentile(values, 95):.2f} s" if values else "none"
        lines.append(f"| RTSP, 720p{r['fps']} | {pair(w['mse_shown'])} | {pair(w['shown'])} ({max(w['shown']):.2f} s) "
                     f"| {w['samples']} ({w['frozen_samples']}) | {100 * w['ingest_cpu_mse_only']:.0f} % / "
                     f"{100 * w['ingest_cpu']:.0f} % of a core |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float, default=WINDOW_S)
    parser.add_argument("--fps", type=int, nargs="*", default=list(FPS_CHOICES))
    parser.add_argument("--no-browser", action="store_true", help="leave out the browser camera (720p15)")
    parser.add_argument("--cameras", type=int, nargs="*", default=[1], help="RTSP cameras at once, e.g. 1 2 4")
    args = parser.parse_args()
    rows = []
    runs = [(fps, "rtsp", n) for fps in args.fps for n in args.cameras] + ([] if args.no_browser else [(15, "browser", 1)])
    with tempfile.TemporaryDirectory(prefix="vidfarm-live-view-") as work:
        for fps, source, cameras in runs:
            row = measure(Path(work), fps, args.window, source, cameras)
            print(f"720p{fps} {source} x{cameras}: shown p50 {percentile(row['shown'], 50) if row['shown'] else float('nan'):.2f} s, results p50 "
                  f"{percentile(row['results'], 50) if row['results'] else float('nan'):.2f} s, "
                  f"ingester {100 * row['ingest_cpu']:.0f} % of a core", flush=True)
            rows.append(row)
    replace_section(render(rows))
    print("wrote the Live view section of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
