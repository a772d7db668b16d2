"""`vidfarm up` with a camera live: it stops within seconds of SIGTERM, the camera page's event
stream open and the camera's last segment in flight (an init system or Kubernetes kills what
is still running 30 s on); started again, it watches the camera as soon as its first live
worker serves, not after the ingester's 10 s retry.

Which of the restarted farm's ingester and the autoscaler's first live worker is ready first
depends on the machine (here the worker was, by 2 s; on the last walk's, the ingester): the
test holds the autoscaler back (SIGSTOP as soon as it starts, SIGCONT once the camera's status
says what its watch made of no live worker), so that the ingester always comes first."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import psutil
import requests

from cli.farm import INGEST_STOP_S, STOP_GRACE_S
from core.cameras import WAITING_FOR_LIVE_WORKER, CameraRegistry
from tests.clipmaker import make_clip
from tests.rtsp_camera import RtspCamera
from tests.test_shutdown import ended_cleanly
from tests.test_up_restart import register_camera, serving_up

# What `vidfarm up` takes at most, by design (cli/farm.py): the ingester's INGEST_STOP_S and
# 2 s more, then STOP_GRACE_S for the rest, then the fork server's and Redis's exits (about a
# second): about 20 s; with a 5 s margin for a loaded machine, still well under the 33 s it took
# before (the web app alone, holding a camera page's event stream, was killed only at its own
# 15 s grace, counted from its turn). What a run took is printed (run with -s to see it).
STOPS_WITHIN_S = INGEST_STOP_S + 2 + STOP_GRACE_S + 1 + 5


def first_segment(registry: CameraRegistry, camera_id: str, after: str,
                  within_s: float = 60) -> tuple[list[tuple[str, str]], str]:
    """Wait for the camera's first segment event after stream id ``after``: the status events
    before it, in order (each with its id), and its id."""
    statuses, deadline = [], time.monotonic() + within_s
    while time.monotonic() < deadline:
        for event_id, kind, data in registry.events(camera_id, after, block_ms=1000):
            if kind == "segment":
                return statuses, event_id
            if kind == "status":
                statuses.append((data["status"], event_id))
            after = event_id
    raise AssertionError(f"no segment within {within_s:g} s; statuses: {statuses}")


def event_time(event_id: str) -> float:
    """Unix s an event was added (a Redis stream id is its milliseconds, then a sequence)."""
    return int(event_id.partition("-")[0]) / 1000


def stopped_in(up, data_dir) -> float:
    """SIGTERM to `vidfarm up`; the seconds until it exited, all its processes ended."""
    started = time.monotonic()
    up.send_signal(signal.SIGTERM)
    ended_cleanly(up, signal.SIGTERM, data_dir, STOPS_WITHIN_S)      # exit 143, nothing left running
    return time.monotonic() - started


def next_status(registry: CameraRegistry, camera_id: str, after: str, wanted,
                within_s: float = 60) -> tuple[str, str]:
    """The first status event after ``after`` for which ``wanted(status)`` holds: (status, its id)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for event_id, kind, data in registry.events(camera_id, after, block_ms=1000):
            if kind == "status" and wanted(data["status"]):
                return data["status"], event_id
            after = event_id
    raise AssertionError(f"no such status within {within_s:g} s")


class AutoscalerHeld:
    """Pauses the first `vidfarm autoscale` that this process starts (a child of its child,
    `vidfarm up`) as soon as it appears, before its first decision forks a live worker."""

    def __init__(self):
        self.paused: psutil.Process | None = None
        self._found = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for child in psutil.Process().children(recursive=True):
                try:
                    command = child.cmdline()      # (its orphan guard's, until that execs it: the same pid)
                    if "cli.main" in command and "autoscale" in command:
                        child.suspend()
                        self.paused = child
                        self._found.set()
                        return
                except psutil.Error:
                    continue
            time.sleep(0.005)

    def wait(self) -> None:
        assert self._found.wait(60), "no autoscaler started"

    def resume(self) -> None:
        if self.paused is not None:
            try:
                self.paused.resume()
            except psutil.NoSuchProcess:
                pass


def hold_event_stream(base: str, auth: dict, camera_id: str) -> threading.Thread:
    """A camera page left open: its Server-Sent Events stream, read until the web app ends it."""
    opened = threading.Event()

    def read() -> None:
        try:
            with requests.get(f"{base}/api/v1/cameras/{camera_id}/events", headers=auth, stream=True,
                              timeout=60) as answer:
                opened.set()
                for _ in answer.iter_lines():
                    pass
        except requests.RequestException:
            pass        # cut as the web app stops: what a browser sees too

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(30), "the event stream did not open"
    return reader


def test_up_with_a_camera_live_stops_within_seconds_and_watches_it_again_at_once(tmp_path):
    clip = make_clip(tmp_path / "camera.mp4", seconds=90, fps=5, size=(320, 180), gop=5)
    data_dir = tmp_path / "data"
    with RtspCamera(clip.path) as camera:
        with serving_up(data_dir) as (up, base, banner):
            auth, registered = register_camera(base, banner, camera.url)
            camera_id = registered["id"]
            registry = CameraRegistry.from_url(re.search(r"redis://127\.0\.0\.1:\d+", banner).group(0))
            first_segment(registry, camera_id, "0-0")
            last_seen = registry.last_event_id(camera_id)
            registry.redis.close()
            hold_event_stream(base, auth, camera_id)
            first_stop_s = stopped_in(up, data_dir)
        # Its watch handed over its last segment (or gave up on it) and the ingester ended by
        # itself, not killed at the end of a grace.
        ingest_log = data_dir / "logs" / "ingest.log"
        assert re.search(r"vidfarm ingest \S+: stopped", ingest_log.read_text()), ingest_log.read_text()[-2000:]

        held = AutoscalerHeld()
        try:
            with serving_up(data_dir) as (up, base, banner):
                held.wait()
                registry = CameraRegistry.from_url(re.search(r"redis://127\.0\.0\.1:\d+", banner).group(0))
                # What the watch made of no worker on the live queue: it waits for one (before:
                # "failed (no worker serves the 'live' queue ...)", and a retry 10 s later).
                # (After the first run's last events: its last segment's, its "stopped".)
                said, said_id = next_status(registry, camera_id, last_seen, lambda status: (
                    status == WAITING_FOR_LIVE_WORKER or status.startswith("failed")))
                let_go = time.time()
                held.resume()
                statuses, segment_id = first_segment(registry, camera_id, said_id)
                registry.redis.close()
                assert said == WAITING_FOR_LIVE_WORKER, statuses
                assert not [s for s, _ in statuses if s.startswith("failed")], statuses
                second_stop_s = stopped_in(up, data_dir)
        finally:
            held.resume()
    # The first status after waiting is the watch's, written as its look found a live worker.
    found_at = event_time(statuses[0][1]) if statuses else float("nan")
    print(f"\nstopped in {first_stop_s:.1f} s (a camera live, its page open) and {second_stop_s:.1f} s; "
          f"the camera live (its first segment) {event_time(segment_id) - found_at:.1f} s after its watch "
          f"found a live worker (the RTSP connection included), {event_time(segment_id) - let_go:.1f} s after "
          f"the autoscaler was let go (its first live worker's start included); load {os.getloadavg()[0]:.1f}")
