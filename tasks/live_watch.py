"""Watching one camera on a farm: what ``vidfarm watch`` does (GUIDE contract 6).

The camera is read in this process (``workers.live``: the reader and the segmenter, in a
thread of their own). Each segment goes into the blob store and, as a ``vidfarm.live_segment``
task, onto the ``live`` queue. Results are taken back in segment order; each one carries the
camera's tracks and identities on (``LiveStitch``) and becomes one line of ``live.jsonl``:

    {"segment", "first_frame", "frames", "captured_at", "ready_at", "latency_s", "faces",
     "alerts", "tracks", "clock", "reencoded"[, "gap_before"][, "error"]}

``ready_at`` is when the line was written (the result was in hand), ``latency_s`` =
``ready_at - captured_at`` of the segment's first frame. Each alert carries the capture time
of its own frame (``captured_at``, from the frame's timestamp on the watch's timeline).
A watch whose workers cannot keep up says how far its analysis trails capture (``behind_s``)
in its status reports. At the end
every frame received becomes an entry of ``results.json`` (contract 3, global indices, plus
``gaps`` and ``live``) and of ``annotated.mp4``, drawn here from those results as the render
step draws a recording's (no audio: the camera's sound is not kept).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Callable

import redis
from celery.exceptions import BackendGetMetaError
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from core.alerts import fold_repeats
from core.cameras import percentile, redacted, status_text
from core.segment_job import SegmentJob
from core.words import counted
from services import runtime
from tasks.app import app
from tasks.common import put_json
from tasks.gallery import job_matching
from tasks.jobs import render_config, result_options
from tasks.live import ALIVE_EVERY_S, PIECES, alive_key, live_key, live_media, options_key, piece_key
from tasks.live_workers import LIVE_QUEUE, live_queue_served
from workers import media
from workers.live.browser import BrowserSource, Offers
from workers.live.segmenter import LiveSegment, RollingSegmenter
from workers.live.source import CameraSource, CameraStatus
from workers.live.stitch import LiveStitch
from workers.live.timeline import TIMELINE
from workers.render import render_segment, segment_labels
from workers.results import SegmentOutput, assemble_results

log = logging.getLogger(__name__)

POLL_S = 0.05
# How often a long watch looks whether the shared gallery changed (an enrolment, a rename, a
# watchlist change, an erasure): the segments after a change are named against the new one.
GALLERY_CHECK_S = 2.0
# A watch is behind when the oldest segment still waiting for its results was captured more
# than this many segments ago: one that keeps up waits for about one and a half (its own
# length, then its analysis; docs/benchmarks.md, "Live latency": p95 2.8-4.0 s for 2 s).
BEHIND_SEGMENTS = 3
# How long a watch waits for the farm's Redis to answer again before it ends (as long as
# Celery's result consumer rides out): it looks at each poll, so a stop still ends it at once.
REDIS_AWAY_S = 20.0
# How often the loop asks the farm's Redis whether it answers (a PING): at each poll it was 20
# PINGs a second per watch. The answer stands meanwhile; a stop and the end after REDIS_AWAY_S
# are still looked at each poll.
PING_EVERY_S = 1.0
REDIS_AWAY = "the farm's Redis does not answer"


class WatchError(Exception):
    """The watch cannot go on; the message is one line."""


@dataclass
class WatchSummary:
    segments: int
    frames: int
    latencies: list[float] = field(default_factory=list)
    failed_segments: int = 0
    gaps: int = 0
    alerts: int = 0          # new alerts: not counting their repeats
    repeats: int = 0

    def percentile(self, q: int) -> float | None:
        return percentile(self.latencies, q)


def segment_report(line: dict) -> str:
    """What a watch prints for a segment analysed, from its live.jsonl line: a repeat is not a
    new alert."""
    names = sorted({t["identity"] for t in line["tracks"] if t["identity"]})
    repeats = repeats_in(line)
    return (f"segment {line['segment']}: {counted(line['frames'], 'frame')}, {counted(line['faces'], 'face')}"
            f"{' (' + ', '.join(names) + ')' if names else ''}, {counted(len(line['alerts']) - repeats, 'alert')}, "
            f"{counted(repeats, 'repeat') + ', ' if repeats else ''}"
            f"latency {line['latency_s']:.2f} s" + (f", failed: {line['error']}" if "error" in line else ""))


def repeats_in(line: dict) -> int:
    return sum(1 for alert in line["alerts"] if alert.get("repeat_of") is not None)


@dataclass
class _Raised:
    """One alert of a watch, as ``fold_repeats`` sees it."""
    id: int
    kind: str
    person: str | None         # the track's name then (a watch's own gallery's too); None: unknown
    captured_at: float
    repeat_of: int | None = None


class WatchRepeats:
    """`vidfarm watch`'s alerts, which no record holds: each is numbered in the watch (``id``)
    and folded as a registered camera's are (``core.alerts.fold_repeats``): one about the same
    named person, of the same kind, less than ``repeat_s`` after the one that rang (capture
    time) is a repeat of it (``repeat_of``); an unknown face's never is."""

    def __init__(self, repeat_s: float):
        self.repeat_s = repeat_s
        self.raised = 0
        self.rang: list[_Raised] = []       # within the window of the newest

    def mark(self, line: dict) -> list[dict]:
        """The line's alerts (each with its frame's ``captured_at``), each with its ``id`` and ``repeat_of``."""
        names = {t["track"]: t.get("identity") for t in line["tracks"]}
        fresh = []
        for alert in line["alerts"]:
            self.raised += 1
            fresh.append(_Raised(self.raised, alert["kind"], names.get(alert["track"]), alert["captured_at"]))
        rings = fold_repeats(fresh, lambda a: a.person, lambda a: a.captured_at, self.repeat_s, rang=self.rang)
        newest = max((a.captured_at for a in fresh), default=0.0)
        self.rang = [a for a in self.rang + rings if newest - a.captured_at < self.repeat_s]
        return [{**alert, "id": raised.id, "repeat_of": raised.repeat_of} for alert, raised in zip(line["alerts"], fresh)]


@dataclass
class _Sent:
    segment: LiveSegment
    result: object          # celery AsyncResult; None: not queued (the farm's Redis did not answer)
    sent_at: float          # monotonic


class LiveWatch:
    def __init__(self, url: str, out_dir: Path, options: dict | None = None, segment_seconds: float = 2.0,
                 transport: str = "tcp", open_timeout: float = 10.0, read_timeout: float = 5.0,
                 report: Callable[[str], None] | None = None, on_line: Callable[[dict, float], None] | None = None,
                 on_status: Callable[[str, float | None], None] | None = None, keep_results: bool = True,
                 on_view: Callable[[str, LiveSegment, list[list[dict]]], None] | None = None,
                 offers: Offers | None = None, fence: tuple[str, int] | None = None,
                 repeat_s: float | None = None, stop_wait_s: float | None = None):
        """report: receives one human-readable line per segment and per camera status;
        on_line: each live.jsonl line and the camera's frame rate; on_status: each status,
        with how far behind capture the analysis is (``behind_s``);
        on_view: each segment in order, with the watch id and its labelled faces per frame
        (the live view's drawing, the recordings), while its files are there; True when it
        took the segment file (to delete it itself);
        offers: where a browser camera's (``webrtc://``) WebRTC offers come from;
        fence: (camera id, fencing token) of the ingester that owns the camera: each segment
        carries it, and a worker drops a segment whose token went stale, unanalysed.
        keep_results=False (a camera watched for good): no results.json or annotated.mp4 at
        the end, nothing kept per frame, and a camera that cannot be opened is waited for.
        repeat_s: number each alert in its line and mark its repeats (``WatchRepeats``), for a
        watch whose alerts are recorded nowhere else; a registered camera's are recorded, and
        the records decide its repeats.
        stop_wait_s: once the watch ends, how long it waits for the results of the segments it
        sent (the last one is sent as it ends); those not in by then count as failed. None:
        each gets the segment time limit (a `vidfarm watch`, which writes every result)."""
        self.url, self.out_dir = url, Path(out_dir)
        self.stop_wait_s = stop_wait_s
        self.segment_seconds = segment_seconds
        self.options = dict(options or {})
        self.report = report or (lambda line: None)
        self.on_line = on_line or (lambda line, fps: None)
        self.on_status = on_status or (lambda status, behind_s: None)
        self.keep_results = keep_results
        self.on_view = on_view
        self.fence = fence
        self.repeats = None if repeat_s is None else WatchRepeats(repeat_s)
        self.watch_id = uuid.uuid4().hex
        settings = runtime.settings()
        self.result_timeout_s = settings.segment_time_limit_s + 30
        self.scratch = settings.data_dir / "tmp" / f"live-{self.watch_id}"
        self.segmenter = RollingSegmenter(self.scratch, self._send, segment_seconds=segment_seconds)
        # The first connection must work (else the watch ends with its reason); after that,
        # a camera that drops is waited for.
        if url.startswith("webrtc://"):
            if offers is None:
                raise WatchError(f"{url}: a browser camera publishes through the farm's web app "
                                 "(register it with POST /api/v1/cameras and open its publish page)")
            self.camera = BrowserSource(url, self.segmenter, offers, open_timeout=open_timeout,
                                        read_timeout=read_timeout)
        else:
            self.camera = CameraSource(url, self.segmenter, transport=transport, open_timeout=open_timeout,
                                       read_timeout=read_timeout, give_up_after=1 if keep_results else None)
        self.sent: deque[_Sent] = deque()
        self.outputs: list[SegmentOutput] = []
        self.received: list[LiveSegment] = []
        self.stages: dict[str, float] = {}
        self.summary = WatchSummary(0, 0)
        self._start_pts: int | None = None            # the watch's first frame (the results' t = 0)
        self._failed: set[int] = set()
        self._alive_at = 0.0                          # monotonic: when it last said so (``_say_alive``)
        self._status: CameraStatus | None = None
        self._behind: float | None = None
        # Asked before each look at the results (``_stored``) and whether Redis answers at all
        # (a PING): Celery's result backend retries a Redis that is away for 40 s and more
        # (result_backend_always_retry, for the workers that store results), deaf to a stop,
        # then raises; this answers at once.
        self._redis = redis.Redis.from_url(app.conf.result_backend, socket_connect_timeout=1, socket_timeout=1)
        self._redis_away_since: float | None = None
        self._redis_ok = True
        self._redis_asked_at: float | None = None      # monotonic: the last PING's

    # --- running -------------------------------------------------------------------------

    def run(self, stop: threading.Event, duration_s: float | None = None,
            check_workers: bool = True) -> WatchSummary:
        """Watch until ``stop`` is set or ``duration_s`` has passed; then write the results.
        check_workers=False: the caller has just seen a worker serve the live queue (the
        ingester's ``LiveWorkerGate``), so the watch does not look again (a look is a broadcast
        that waits its whole timeout: seconds more without a picture)."""
        if check_workers:
            check_live_workers()
        started = time.monotonic()
        self.lines_path = self.out_dir / "live.jsonl"
        if self.keep_results:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.lines_path.write_text("")
        self.matching = job_matching(self.options)
        self.stitch = LiveStitch(self.matching.gallery, result_options(self.matching.watchlist))
        gallery_checked = time.monotonic()
        runtime.store().put_stream(options_key(self.watch_id), BytesIO(json.dumps(self.options).encode()))
        self._say_alive()
        camera_stop = threading.Event()
        reader = self.camera.start(camera_stop)
        redis_lost = False
        try:
            while not stop.is_set() and (duration_s is None or time.monotonic() - started < duration_s):
                self._follow_status()
                if self.camera.status.state == "failed":
                    raise WatchError(self.camera.status.reason)
                if self._redis_gone():
                    redis_lost = True      # it ends as on a stop (results written), then says why
                    break
                self._collect(wait=False)
                if time.monotonic() - gallery_checked >= GALLERY_CHECK_S:
                    gallery_checked = time.monotonic()
                    self._follow_gallery()
                self._say_alive()
                time.sleep(POLL_S)
            camera_stop.set()
            ended = time.monotonic()
            reader.join(self.camera.open_timeout + 30)    # it closes the open segment and sends it
            self._collect(wait=True, give_up_at=None if self.stop_wait_s is None else ended + self.stop_wait_s)
            if self.keep_results:
                if not self.received:
                    raise WatchError(f"{redacted(self.url)}: no frames received")
                self._write_results(time.monotonic() - started)
            if redis_lost:
                where = f"; what it had is in {self.out_dir / 'results.json'}" if self.keep_results else ""
                raise WatchError(f"{REDIS_AWAY} (for {REDIS_AWAY_S:g} s): the watch ended{where}")
        finally:
            camera_stop.set()
            if not self._redis_ok:     # ended by an error with Redis away: what is still awaited goes quietly
                for sent in self.sent:
                    if sent.result is not None:
                        _let_go(sent.result)
            self._redis.close()
            shutil.rmtree(self.scratch, ignore_errors=True)
            runtime.store().delete_prefix(live_key(self.watch_id))
        return self.summary

    def _say_alive(self) -> None:
        """Every ``ALIVE_EVERY_S``: this watch's folder is in use. A watch killed outright
        (SIGKILL, the OOM killer) never sweeps its folder, and nothing else knew it was left."""
        if time.monotonic() - self._alive_at < ALIVE_EVERY_S:
            return
        self._alive_at = time.monotonic()
        try:
            put_json(alive_key(self.watch_id), {"at": time.time()})
        except Exception as error:    # a store away for a moment ends no watch; the next try is a minute on
            log.warning("watch %s: could not say it is alive: %s", self.watch_id, error)

    def _follow_gallery(self) -> None:
        """Match what comes next against the shared gallery as it is now: a person enrolled
        while the camera runs is named from the next segment on, an erased one no longer
        (their embeddings leave this process's memory). A watch's own gallery never changes."""
        if self.matching.fingerprint == "job":
            return
        try:
            if runtime.records().gallery_fingerprint() == self.matching.fingerprint:
                return
            matching = job_matching(self.options)
        except SQLAlchemyError as error:      # the database away for a moment: look again later
            log.warning("the gallery could not be read, keeping the one in use: %s", error)
            return
        self.matching = matching
        self.stitch.gallery = self.matching.gallery
        self.stitch.options = result_options(self.matching.watchlist)

    def _follow_status(self) -> None:
        """Report the camera's status when it changes, and how far behind the analysis is when
        that starts, ends, or moves by a segment or more."""
        status, behind = self.camera.status, self.behind_s()
        moved = (behind is None) != (self._behind is None) or (
            behind is not None and abs(behind - self._behind) >= self.segment_seconds)
        if status != self._status or moved:
            self._status, self._behind = status, behind
            self.report(f"camera {redacted(self.url)}: {status_text(str(status), behind)}")
            self.on_status(str(status), behind)

    def behind_s(self) -> float | None:
        """How far the analysis trails capture (whole seconds): how long ago the oldest segment
        still waiting for its results was captured, when that is more than ``BEHIND_SEGMENTS``
        segments ago; else None. Nothing waiting (a camera that dropped, say) is not behind."""
        waiting = self.sent[0] if self.sent else None     # the camera thread appends as this reads
        lag = 0 if waiting is None else round(time.time() - waiting.segment.captured_at)
        return lag if lag > BEHIND_SEGMENTS * self.segment_seconds else None

    def _send(self, segment: LiveSegment) -> None:
        """Called by the camera thread with each finished segment. Not queued while the farm's
        Redis does not answer (Celery's result subscription would retry it for 20 s, holding
        the camera thread and a stop): its frames still count, unanalysed."""
        self.camera.give_up_after = None
        runtime.store().move_file(piece_key(self.watch_id, segment.index, "segment"), segment.path)
        job = SegmentJob(self.watch_id, segment.index, tuple(segment.pts), live_media(segment),
                         fence=None if self.fence is None else tuple(self.fence))
        result = None
        if self._redis_answers():
            try:
                result = app.send_task("vidfarm.live_segment", (job.to_message(),), queue=LIVE_QUEUE)
            except (OperationalError, RedisError, RuntimeError) as error:  # RuntimeError: Celery's result consumer gave up
                log.info("segment %d not queued: %s", segment.index, error)
        self.sent.append(_Sent(segment, result, time.monotonic()))

    def _redis_answers(self, within_s: float = 0.0) -> bool:
        """A PING, unless one was sent less than ``within_s`` ago: then its answer. The answer is
        kept (``_redis_ok``) for the loop's look at the results right after."""
        if self._redis_asked_at is None or time.monotonic() - self._redis_asked_at >= within_s:
            try:
                self._redis.ping()
                self._redis_ok = True
            except RedisError:
                self._redis_ok = False
            self._redis_asked_at = time.monotonic()
        return self._redis_ok

    def _redis_gone(self) -> bool:
        """Whether the farm's Redis has not answered for ``REDIS_AWAY_S`` (looked at while results
        are awaited, and then until it answers: the segments sent meanwhile fail at once, not
        queued), from the first PING it did not answer; asked every ``PING_EVERY_S``, the time
        since looked at each poll. Says once when it stops answering."""
        if (not self.sent and self._redis_away_since is None) or self._redis_answers(PING_EVERY_S):
            self._redis_away_since = None
            return False
        if self._redis_away_since is None:
            self._redis_away_since = self._redis_asked_at
            self.report(f"{REDIS_AWAY}: waiting up to {REDIS_AWAY_S:g} s for it")
        return time.monotonic() - self._redis_away_since >= REDIS_AWAY_S

    def _stored(self, result) -> bool:
        """Whether a task's result (or its start) is in the backend, asked with the watch's own
        client: it fails at once (``RedisError``) where Redis went away since the last PING, so
        Celery reads the result right after Redis answered, never into its 40 s of retries."""
        return bool(self._redis.exists(app.backend.get_key_for_task(result.id)))

    def _collect(self, wait: bool, give_up_at: float | None = None) -> None:
        """Take the results that are in, in segment order (with ``wait``: all of them, those
        still out at ``give_up_at`` (monotonic) as failed)."""
        while self.sent:
            head = self.sent[0]
            fenced = away = False
            try:
                if head.result is None:
                    error, away = f"not queued: {REDIS_AWAY}", True
                elif not (self._redis_answers(PING_EVERY_S) if wait else self._redis_ok):
                    # (without wait: as ``_redis_gone`` found it at most PING_EVERY_S ago)
                    if not wait:        # the loop looks again at its next poll (``_redis_gone``)
                        return
                    error, away = f"no result: {REDIS_AWAY}", True      # at the end: a stop must not wait on it
                elif self._stored(head.result) and head.result.ready():
                    error = None if head.result.successful() else _one_line(head.result.result)
                    if error is None and head.result.result.get("fenced"):
                        error, fenced = head.result.result["fenced"], True     # dropped unanalysed: this owner is stale
                elif time.monotonic() - head.sent_at > self.result_timeout_s:
                    error = f"no result within {self.result_timeout_s} s"
                elif give_up_at is not None and time.monotonic() >= give_up_at:
                    # (the farm stopping: its live workers may be gone, or going, with this segment queued)
                    error = f"no result within {self.stop_wait_s:g} s of the watch's end"
                elif wait:
                    self._say_alive()      # a long wait for the farm at the end is still alive
                    time.sleep(POLL_S)
                    continue
                else:
                    return
            except (BackendGetMetaError, RedisError):     # it went away between the looks
                if not wait:
                    return
                error, away = f"no result: {REDIS_AWAY}", True
            self.sent.popleft()
            self._take(head.segment, error, fenced, away)
            if not away:
                head.result.forget()
            elif head.result is not None:
                _let_go(head.result)

    # --- one result ----------------------------------------------------------------------

    def _captured_at(self, alert: dict) -> float:
        """When the alert's frame was captured (unix s): its timestamp (the alert's ``t`` from the
        watch's first frame) on the watch's timeline; an alert may name an earlier segment's frame
        (a watchlist alert is at its track's first). Not the frames counted at the camera's rate: a
        camera that drops frames (a Wi-Fi camera, RTSP over UDP losing packets) would date every
        alert after a loss early by the time lost."""
        pts = self._start_pts + round(alert["t"] / TIMELINE)
        return round(self.segmenter.timeline.captured_at(pts), 3)

    def _take(self, segment: LiveSegment, error: str | None, fenced: bool = False, away: bool = False) -> None:
        """fenced: the segment was dropped (this watch's owner is stale): it is neither drawn
        nor recorded; its line goes out, and the registry refuses it. away: its result could
        not be had from the farm's Redis (the watch says so once, not per segment)."""
        store = runtime.store()
        if error is None:
            data = json.loads(store.local_path(piece_key(self.watch_id, segment.index, "analysis")).read_text())
            output = SegmentOutput(segment.pts, data["frames"], data["tracks"], data["thumbnails"], data["damage"],
                                   continues=segment.continues)
            for stage, seconds in data["stages"].items():
                self.stages[stage] = round(self.stages.get(stage, 0.0) + seconds, 4)
        else:   # its frames count, unanalysed; no track crosses it
            if fenced:      # the camera was deleted or taken by another replica: nothing went wrong
                log.info("%s: segment %d dropped", error, segment.index)
            elif away:
                log.info("live segment %d failed: %s", segment.index, error)
            else:
                log.warning("live segment %d failed: %s", segment.index, error)
            output = SegmentOutput(segment.pts, [[] for _ in segment.pts], [], None, continues=False)
            self._failed.add(segment.index)
        if self._start_pts is None:
            self._start_pts = segment.pts[0]
        update = self.stitch.add(output, segment.first_frame, media.frame_times(segment.pts, self._start_pts, TIMELINE))
        ready_at, captured_at = round(time.time(), 3), round(segment.captured_at, 3)
        line = {"segment": segment.index, "first_frame": segment.first_frame, "frames": segment.frames,
                "captured_at": captured_at, "ready_at": ready_at, "latency_s": round(ready_at - captured_at, 3),
                "faces": update.faces, "alerts": [{**alert, "captured_at": self._captured_at(alert)}
                                                  for alert in update.alerts], "tracks": update.tracks,
                "clock": segment.clock, "reencoded": segment.reencoded}
        gap = next((g for g in self.segmenter.gaps if g.after_frame == segment.first_frame - 1), None)
        if gap is not None and not segment.continues:
            line["gap_before"] = gap.to_json()
        if error is not None:
            line["error"] = error
        if self.repeats is not None:
            line["alerts"] = self.repeats.mark(line)
        if self.keep_results:      # a camera watched for good has its events in the registry instead
            with self.lines_path.open("a") as lines:
                lines.write(json.dumps(line) + "\n")
            self.outputs.append(output)
            self.received.append(segment)
        taken = self.on_view is not None and not fenced and bool(self.on_view(self.watch_id, segment, update.frames))
        if not self.keep_results:  # ... and keeps no files of segments done
            for piece in PIECES:
                if piece != "segment" or not taken:
                    store.delete_prefix(piece_key(self.watch_id, segment.index, piece))
        self.on_line(line, segment.fps)
        self.summary.segments += 1
        self.summary.frames += segment.frames
        self.summary.latencies.append(line["latency_s"])
        self.summary.failed_segments = len(self._failed)
        self.summary.repeats += repeats_in(line)
        self.summary.alerts += len(line["alerts"]) - repeats_in(line)
        self.report(segment_report(line))

    # --- the end -------------------------------------------------------------------------

    def _write_results(self, wall_s: float) -> None:
        first, last = self.received[0], self.received[-1]
        source = {"path": redacted(self.url), "width": first.width, "height": first.height,
                  "fps": round(first.fps, 6), "frames": self.summary.frames,
                  "duration_s": round(float((last.end_pts - first.pts[0]) * TIMELINE), 6), "has_audio": False}
        timing = {"wall_s": round(wall_s, 3), "stages": self.stages}
        results = assemble_results(source, TIMELINE, first.pts[0], self.outputs, timing, self.matching.gallery,
                                   result_options(self.matching.watchlist))
        self.summary.gaps = len(self.segmenter.gaps)
        results["gaps"] = [gap.to_json() for gap in self.segmenter.gaps]
        results["live"] = {"url": redacted(self.url), "segments": self.summary.segments,
                           "failed_segments": self.summary.failed_segments,
                           "latency_p50_s": self.summary.percentile(50), "latency_p95_s": self.summary.percentile(95)}
        self._write_video(results)
        (self.out_dir / "results.json").write_text(json.dumps(results, separators=(",", ":")))

    def _write_video(self, results: dict) -> None:
        """Each segment drawn from the results (a failed one: its frames as they came), joined."""
        store, config = runtime.store(), render_config(self.options)
        files = []
        for segment in self.received:
            self._say_alive()       # drawing a long watch takes many minutes: its folder is still in use
            out = self.scratch / f"drawn-{segment.index:06d}.mp4"
            labels = segment_labels(results, segment.first_frame, segment.frames, config.fever_c)
            stages = render_segment(store.local_path(piece_key(self.watch_id, segment.index, "segment")), out,
                                    segment.pts, TIMELINE, segment.fps, segment.width, segment.height, labels, config)
            for stage, seconds in stages.items():
                self.stages[stage] = round(self.stages.get(stage, 0.0) + seconds, 4)
            files.append(out)
        media.concat_segments(files, [media.SegmentTiming(s.pts, s.end_pts) for s in self.received], TIMELINE,
                              self.out_dir / "annotated.mp4")


def _let_go(result) -> None:
    """Drop a result the farm's Redis took away with it, without a word to Redis: a Celery
    AsyncResult, when collected, unsubscribes from its result's channel, and retries a Redis
    that is away for 40 s and more, deaf to a stop (a watch outlived its SIGTERM so, or printed
    Celery's traceback as it exited)."""
    app.backend._remove_pending_result(result)
    consumer = app.backend.result_consumer       # nor resubscribed at each reconnect, a watch long
    consumer.subscribed_to.discard(consumer._get_key_for_task(result.id))
    result.backend = None


def check_live_workers() -> None:
    """Fail at once, with the fix, where no worker serves the live queue (else every segment
    would wait forever): one look (``LOOK_S``), as the ingester's gate takes."""
    if not live_queue_served():
        raise WatchError(f"no worker serves the {LIVE_QUEUE!r} queue "
                         f"(start workers with: celery -A tasks.app worker -Q live,ingest,cpu)")


def _one_line(error) -> str:
    return " ".join(str(error).split()) or type(error).__name__
