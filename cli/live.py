"""The live commands.

``vidfarm watch URL --out DIR``: one live camera through the farm (GUIDE contract 6).

The camera is opened once first (a URL that cannot be opened fails before any farm starts);
then an embedded farm is started unless ``REDIS_URL`` names a running one. The watch ends after
``--for`` seconds, or on Ctrl-C or SIGTERM, and then writes the results of every frame it
received. A URL that cannot be opened ends it at once with status 1 and one line saying why.

``vidfarm ingest``: watches every camera registered with the farm ``REDIS_URL`` names
(``POST /api/v1/cameras``) until Ctrl-C or SIGTERM (``tasks.camera_ingest``); several
replicas share the cameras, each camera held by one replica at a time (leases).
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager, nullcontext

from cli.signals import STOP_SIGNALS, stop_on_signals


def add_parsers(commands) -> None:
    from pathlib import Path

    commands.add_parser("ingest", help="watch every camera registered with the farm REDIS_URL names")

    watch = commands.add_parser("watch", help="analyse a live camera stream (rtsp://...) as it comes")
    watch.add_argument("url")
    watch.add_argument("--out", type=Path, required=True,
                       help="folder for live.jsonl (as it goes), results.json and annotated.mp4 (at the end)")
    watch.add_argument("--for", dest="seconds", type=float, default=None,
                       help="stop after this many seconds (default: until Ctrl-C or SIGTERM)")
    watch.add_argument("--gallery", type=Path, default=None,
                       help="folder of known faces for this watch (as for `vidfarm process`)")
    watch.add_argument("--workers", type=int, default=2,
                       help="worker processes of the embedded farm (ignored with REDIS_URL)")
    watch.add_argument("--segment-seconds", type=float, default=2.0, help="segment length (default 2)")
    watch.add_argument("--transport", choices=("tcp", "udp"), default="tcp", help="RTSP transport (default tcp)")


@contextmanager
def signals_end(stop: threading.Event):
    """While a camera is watched, a stop signal (cli/signals.py's: Ctrl-C, SIGTERM, SIGHUP) ends
    the watch cleanly instead (its results are still written, the farm still serving)."""
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_watch(args, settings, fail) -> int:
    from cli.farm import EmbeddedFarm
    from cli.gallery_option import gallery_options
    from core.cameras import ascii_host, is_stream_address, lower_scheme, redacted
    from core.processes import FarmStartError
    from core.errors import GalleryError
    from workers.live.source import CameraError, open_camera

    try:
        options = gallery_options(args.gallery)
    except GalleryError as exc:
        return fail(str(exc))
    args.url = lower_scheme(args.url)      # RTSP:// is rtsp:// (RFC 3986); FFmpeg knows only the latter
    if args.url.startswith("webrtc://"):
        return fail(f"{args.url}: a browser camera publishes to a farm: register it (POST /api/v1/cameras) "
                    "and open its publish page in the browser")
    if not is_stream_address(args.url):
        # FFmpeg would open a file too, and read it as fast as it can: its "capture times"
        # would be in the future and the watch would queue the whole recording at once.
        return fail(f"{redacted(args.url)}: not a camera's stream address (rtsp://, rtsps://, http:// or https://); "
                    "a recording on disk: vidfarm process")
    args.url = ascii_host(args.url)        # kamera.bürö.example: FFmpeg's resolver takes only its punycode
    try:   # before starting a farm: a camera that cannot be opened is one line at once
        open_camera(args.url, args.transport, settings.camera_open_timeout_s).close()
    except CameraError as exc:
        return fail(str(exc))
    # Only now: the watch's own imports (the results' stitch, the tracker, scipy) are most of a
    # refusal's time otherwise (2.2 of 3.2 s of CPU), and a refused address needs none of them.
    from tasks import app as celery_app
    from tasks.live_watch import LiveWatch, WatchError

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    farm = None if settings.redis_url else EmbeddedFarm(settings.data_dir, workers=args.workers)
    stop = threading.Event()
    with farm or nullcontext():
        if farm is not None:
            celery_app.point_at(farm.redis_url)
            try:
                farm.wait_ready(celery_app.app)
            except FarmStartError as error:     # a bad analyzer config, say
                return fail(str(error), code=2)
        watch = LiveWatch(args.url, args.out, options, segment_seconds=args.segment_seconds,
                          transport=args.transport, open_timeout=settings.camera_open_timeout_s,
                          report=lambda line: print(line, flush=True), repeat_s=settings.alert_repeat_s)
        try:
            with signals_end(stop):
                # Its own farm's workers (which serve the live queue) have just answered
                # wait_ready's ping: no second look, a broadcast that waits its whole 2 s.
                summary = watch.run(stop, args.seconds, check_workers=farm is None)
        except WatchError as exc:
            return fail(str(exc))
    print(watch_done_line(summary, args.out), file=sys.stdout)
    return 0


def watch_done_line(summary, out) -> str:
    """The last line of a watch: what it analysed, its alerts (a repeat is not a new one), its
    latency and where the files are."""
    from core.words import counted

    failed = f", {counted(summary.failed_segments, 'segment')} failed" if summary.failed_segments else ""
    repeats = f", {counted(summary.repeats, 'repeat')}" if summary.repeats else ""
    return (f"done: {counted(summary.segments, 'segment')}, {counted(summary.frames, 'frame')}, "
            f"{counted(summary.gaps, 'gap')}{failed}, {counted(summary.alerts, 'alert')}{repeats}; "
            f"latency p50 {summary.percentile(50):.2f} s, p95 {summary.percentile(95):.2f} s -> "
            f"{out / 'annotated.mp4'}, {out / 'results.json'}, {out / 'live.jsonl'}")


def run_ingest(settings, fail) -> int:
    import logging

    from core.cameras import CameraRegistry
    from services import runtime
    from tasks import app as celery_app
    from tasks.camera_ingest import CameraIngest

    if not settings.redis_url:
        return fail("REDIS_URL is not set: the ingester watches the cameras of a running farm")
    # Until it watches, a stop signal ends it wherever it waits (a database that does not
    # answer, say), with one line (main): without a handler, as PID 1 of a container, SIGTERM
    # would be ignored and the pod killed at the end of its grace.
    with stop_on_signals():
        celery_app.point_at(settings.redis_url)
        # The schema checked (or upgraded) now: on an old database that it may not upgrade the
        # ingester stops with one line (main), not at a camera's first live alert.
        runtime.records()
        # A daemon's log: which cameras it takes and drops, and why (leases, deletes).
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        ingest = CameraIngest(CameraRegistry.from_url(settings.redis_url), lease_s=settings.ingest_lease_s)
    print(f"vidfarm ingest {ingest.owner}: watching its share of the registered cameras; Ctrl-C stops", flush=True)
    stop = threading.Event()
    with signals_end(stop):      # from here a stop lets the watches hand over their last segments
        ingest.run(stop)
    print(f"vidfarm ingest {ingest.owner}: stopped", flush=True)
    return 0
