"""The camera ingester (``vidfarm ingest``): watches its share of the registered cameras until stopped.

Each camera in the registry (``core.cameras``) that this replica owns gets a ``LiveWatch`` of
its own, in a thread; its status, each processed segment and each alert go back to the
registry, from where the API serves them (``GET /api/v1/cameras``, Server-Sent Events); each
alert is recorded and sent to the webhooks at once (``tasks.alerts.ring_live``) before the
segment's events go, so they say whether it repeats one that rang (``segment_processed``). A
camera that cannot be opened is retried with backoff for as long as it is registered; one
whose address was edited is dropped and taken again, and its new address watched.

Several replicas share the cameras through leases (``core.camera_leases``): a replica takes
a camera nobody holds while it holds fewer than its share (cameras / live replicas, rounded
up), renews its leases at every poll, and gives one back per poll while it holds more than
its share (a replica that joined gets some). A replica that dies stops renewing: its
cameras are free a lease time later and the others take them. Every write about a camera
carries the owner's fencing token, so a replica that stalled past its lease and woke up
has its segments refused and stops watching that camera; its segments still on the live
queue carry the token too, and workers drop them unanalysed (``tasks.live``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from kombu.exceptions import OperationalError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from core.camera_leases import CameraLeases, new_owner_id
from core.camera_offers import CameraOffers
from core.cameras import WAITING_FOR_LIVE_WORKER, CameraRegistry, view_piece_key
from core.words import counted
from services import runtime
from tasks.alerts import ring_live
from tasks.live_view import send_view
from tasks.recording import CameraRecorder
from tasks.live_watch import LiveWatch, WatchError
from tasks.live_workers import LiveWorkerGate
from workers.live.playback import ViewerServer

log = logging.getLogger(__name__)

RETRY_S = 10.0     # a watch that failed (a camera's bug, say) is started again after this


@dataclass
class _Running:
    camera: dict
    token: int
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    refused: threading.Event = field(default_factory=threading.Event)     # the fence refused a write


def segment_processed(registry: CameraRegistry, camera_id: str, line: dict, fps: float, token: int | None) -> bool:
    """One processed segment of a camera held with ``token``: its alerts recorded and rung,
    then its state and events, the segment's and each alert's saying whether it repeats one that
    rang (``repeat_of``, as the records decided: the camera page folds it as the Alerts page
    does). False: the camera is no longer this replica's (another holds it, or it was deleted)."""
    if not registry.holds(camera_id, token):
        return False          # only the camera's owner rings, once
    return registry.segment_done(camera_id, line, fps, token=token, folds=rung_alerts(camera_id, line))


def rung_alerts(camera_id: str, line: dict) -> list[dict] | None:
    """``ring_live``'s answer for the segment's alerts; None when they could not be recorded.
    Whatever went wrong, the camera goes on and the segment's events still go out, carrying
    the alerts (ids null, none marked a repeat): an error that escaped here ended the watch
    before its events were written, and the watchers never heard of the segment or its alerts."""
    if not line["alerts"]:
        return []
    try:
        return ring_live(camera_id, line)
    except (SQLAlchemyError, RedisError, OperationalError) as error:   # database or broker away for a while
        log.warning("camera %s: live alerts not recorded: %s", camera_id, error)
    except Exception:      # a bug, or an alert the records cannot hold: its traceback, for whoever fixes it
        log.exception("camera %s: live alerts not recorded", camera_id)
    return None


class CameraIngest:
    def __init__(self, registry: CameraRegistry, poll_s: float = 1.0, lease_s: float = 10.0,
                 owner: str | None = None, recording_hour_s: float | None = None, stop_s: float | None = None):
        """recording_hour_s: the length of each camera recording (default: the setting);
        stop_s: what the watches get to end cleanly as the ingester stops, in all (default:
        the setting, ``VIDFARM_INGEST_STOP_S``)."""
        self.registry = registry
        # Renewed at every poll: at least three polls per lease, so one slow poll loses nothing.
        self.poll_s = min(poll_s, lease_s / 3)
        self.leases = CameraLeases(registry.redis, owner or new_owner_id(), lease_s)
        self.recording_hour_s = recording_hour_s or runtime.settings().recording_hour_s
        self.stop_s = runtime.settings().ingest_stop_s if stop_s is None else stop_s
        self.live_workers = LiveWorkerGate()
        self.offers = CameraOffers(registry.redis)     # browser cameras' WebRTC offers
        self.viewer_offers = CameraOffers(registry.redis, "viewers")     # pages playing a live view over WebRTC
        self.viewers: ViewerServer | None = None       # started with the first viewer
        self.running: dict[str, _Running] = {}
        self.stopping: list[_Running] = []

    @property
    def owner(self) -> str:
        return self.leases.owner

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    self.sync()
                except RedisError as error:
                    # Redis restarting: a lease it could not renew may be lost, and is dropped then.
                    log.warning("camera sync failed, retrying: %s", error)
                stop.wait(self.poll_s)
        finally:
            for camera_id in list(self.running):
                self._drop(camera_id, "the ingester stops")
            try:     # before the watches wind down: the others count it gone and take its share now
                self.leases.leave()
            except RedisError:
                pass                           # its heartbeat runs out on its own
            self._wait_for_watches()
            if self.viewers is not None:
                self.viewers.stop()

    def _wait_for_watches(self) -> None:
        """Let the dropped watches hand over their last segments, up to ``stop_s`` in all (each
        gives up on its results at ``stop_s``: a second more lets it write that down and close
        its recording), while the farm's Redis answers: without it they can hand over nothing,
        and each would wait out its own retries (a minute and more) while a pod's grace runs out."""
        deadline = time.monotonic() + self.stop_s + 1.0
        while (alive := [r.thread for r in self.stopping if r.thread is not None and r.thread.is_alive()]) \
                and time.monotonic() < deadline:
            try:
                self.registry.redis.ping()
            except RedisError as error:
                log.warning("the farm's Redis does not answer (%s): not waiting for the watches of %s to end",
                            error, counted(len(alive), "camera"))
                return
            alive[0].join(min(1.0, max(0.0, deadline - time.monotonic())))

    def sync(self) -> None:
        """Renew what is held, drop what was deleted or lost, take free cameras up to the share,
        restart what ended."""
        replicas = self.leases.heartbeat()
        cameras = {camera["id"]: camera for camera in self.registry.cameras()}
        for camera_id, running in list(self.running.items()):
            if camera_id not in cameras:
                self._drop(camera_id, "deleted")
            elif running.refused.is_set() or not self.leases.renew(camera_id, running.token):
                self._drop(camera_id, "its lease was lost to another replica")
            elif cameras[camera_id]["url"] != running.camera["url"]:
                # Edited: the lease goes back and is taken again below (this replica or another)
                # with a new token, so the old watch's late segments are refused as a stale owner's.
                self._drop(camera_id, "its address changed")
            else:
                running.camera["name"] = cameras[camera_id]["name"]     # the recorder's: names the next recording
        share = CameraLeases.share(len(cameras), replicas)
        if len(self.running) > share:
            self._drop(next(reversed(self.running)), f"more than this replica's share ({share})")
        for camera_id, camera in cameras.items():
            running = self.running.get(camera_id)
            if running is None and len(self.running) < share:
                token = self.leases.acquire(camera_id)
                if token is not None:
                    log.info("camera %s: taken (fencing token %d)", camera_id, token)
                    running = self.running[camera_id] = _Running(camera, token)
            if running is not None and (running.thread is None or not running.thread.is_alive()):
                self._start(running)
        self._serve_viewers()

    def _serve_viewers(self) -> None:
        """Answer the WebRTC viewers' offers for the cameras held here; keep their views drawn."""
        for camera_id in self.running:
            while (got := self.viewer_offers.next(camera_id, 0)) is not None:
                if self.viewers is None:
                    store = runtime.store()
                    self.viewers = ViewerServer(
                        self.registry.view, lambda piece: store.local_path(view_piece_key(piece["watch"], piece["segment"])))
                self.viewers.offer(camera_id, *got)
        for camera_id in self.viewers.watched() if self.viewers is not None else ():
            self.registry.mark_watched(camera_id)

    def _start(self, running: _Running) -> None:
        running.thread = threading.Thread(target=self._watch, args=(running,),
                                          name=f"camera-{running.camera['id'][:8]}", daemon=True)
        running.thread.start()

    def _drop(self, camera_id: str, why: str) -> None:
        """Stop watching a camera and give its lease back (a no-op when another holds it)."""
        running = self.running.pop(camera_id)
        log.info("camera %s: dropped (%s)", camera_id, why)
        if self.viewers is not None:
            self.viewers.drop(camera_id)
        running.stop.set()
        try:
            self.leases.release(camera_id, running.token)
        except RedisError:
            pass                               # it expires on its own a lease time later
        self.stopping = [r for r in self.stopping if r.thread is not None and r.thread.is_alive()] + [running]

    def _watch(self, running: _Running) -> None:
        camera_id, token, stop = running.camera["id"], running.token, running.stop
        url = running.camera["url"]      # what this watch reads: an edit gives the camera another watch

        def written(accepted: bool) -> None:
            if not accepted:       # a newer owner, or the camera was deleted: stop at once
                running.refused.set()
                stop.set()

        out = runtime.settings().data_dir / "cameras" / camera_id
        recorder = CameraRecorder(running.camera, self.recording_hour_s)

        def analysed(watch_id, segment, frames) -> bool:
            recorder.add(watch_id, segment)
            if not self.registry.watched(camera_id):
                return False          # nobody watches its live view: nothing to draw
            send_view(camera_id, watch_id, segment, frames)
            return True               # the drawing deletes the segment file

        def line_done(line: dict, fps: float) -> None:
            written(segment_processed(self.registry, camera_id, {**line, "ingester": self.owner, "lease": token},
                                      fps, token))

        watch = LiveWatch(url, out, keep_results=False, on_line=line_done,
                          on_status=lambda status, behind_s: written(
                              self.registry.set_status(camera_id, status, token=token, behind_s=behind_s, url=url)),
                          on_view=analysed, offers=lambda timeout: self.offers.next(camera_id, timeout),
                          fence=(camera_id, token), open_timeout=runtime.settings().camera_open_timeout_s,
                          stop_wait_s=self.stop_s)

        def waiting() -> None:
            log.info("camera %s: no worker serves the live queue yet: waiting for one", camera_id)
            written(self.registry.set_status(camera_id, WAITING_FOR_LIVE_WORKER, token=token, url=url))

        try:
            # Its segments would wait on a queue nobody serves: the watch starts once a worker
            # does (a farm starting: the autoscaler's first live worker loads as this starts).
            if not self.live_workers.wait(stop, waiting):
                return
            watch.run(stop, check_workers=False)
        except WatchError as exc:
            written(self.registry.set_status(camera_id, f"failed ({exc})", token=token, url=url))
            stop.wait(RETRY_S)
        except Exception as exc:     # one camera's bug must not end the others
            log.exception("camera %s: the watch failed", camera_id)
            written(self.registry.set_status(camera_id, f"failed (the watch failed: {exc})", token=token, url=url))
            stop.wait(RETRY_S)
        finally:
            recorder.close()     # the watch's timeline ends here: what it recorded becomes a job
