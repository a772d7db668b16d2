"""The camera ingester (``vidfarm ingest``): watches every registered camera until stopped.

Each camera in the registry (``core.cameras``) gets a ``LiveWatch`` of its own, in a thread,
started when the camera is registered and stopped when it is deleted; its status, each
processed segment and each alert go back to the registry, from where the API serves them
(``GET /api/v1/cameras``, Server-Sent Events). A camera that cannot be opened is retried
with backoff for as long as it is registered. One ingester per farm for now: ownership of
cameras by several replicas (leases) is not built yet.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from core.cameras import CameraRegistry
from services import runtime
from tasks.live_watch import LiveWatch, WatchError

log = logging.getLogger(__name__)

RETRY_S = 10.0     # a watch that ended on its own (no worker on the live queue) is started again after this


@dataclass
class _Running:
    thread: threading.Thread
    stop: threading.Event


class CameraIngest:
    def __init__(self, registry: CameraRegistry, poll_s: float = 1.0):
        self.registry, self.poll_s = registry, poll_s
        self.running: dict[str, _Running] = {}

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.sync()
                stop.wait(self.poll_s)
        finally:
            for camera_id in list(self.running):
                self._stop(camera_id)
            for running in self.running.values():
                running.thread.join(60)

    def sync(self) -> None:
        """Start what was registered, stop what was deleted, restart what ended."""
        cameras = {camera["id"]: camera for camera in self.registry.cameras()}
        for camera_id in [c for c in self.running if c not in cameras]:
            self._stop(camera_id)
            del self.running[camera_id]
        for camera_id, camera in cameras.items():
            running = self.running.get(camera_id)
            if running is None or not running.thread.is_alive():
                self.running[camera_id] = self._start(camera)

    def _start(self, camera: dict) -> _Running:
        stop = threading.Event()
        thread = threading.Thread(target=self._watch, args=(camera, stop), name=f"camera-{camera['id'][:8]}",
                                  daemon=True)
        thread.start()
        return _Running(thread, stop)

    def _stop(self, camera_id: str) -> None:
        self.running[camera_id].stop.set()

    def _watch(self, camera: dict, stop: threading.Event) -> None:
        camera_id = camera["id"]
        out = runtime.settings().data_dir / "cameras" / camera_id
        watch = LiveWatch(camera["url"], out, keep_results=False,
                          on_line=lambda line, fps: self.registry.segment_done(camera_id, line, fps),
                          on_status=lambda status: self.registry.set_status(camera_id, status))
        try:
            watch.run(stop)
        except WatchError as exc:
            self.registry.set_status(camera_id, f"failed ({exc})")
            stop.wait(RETRY_S)
        except Exception as exc:     # one camera's bug must not end the others
            log.exception("camera %s: the watch failed", camera_id)
            self.registry.set_status(camera_id, f"failed (the watch failed: {exc})")
            stop.wait(RETRY_S)
