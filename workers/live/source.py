"""A camera: open its stream, hand its packets to the segmenter, reconnect with backoff, and
say how it is doing (``connecting``, ``live``, ``reconnecting (reason)``, ``failed (reason)``).

PyAV (FFmpeg) reads the stream: ``rtsp://`` over TCP or UDP, or anything else FFmpeg opens.
Every wait is bounded: opening by ``open_timeout``, each read by ``read_timeout`` (a camera
that stalls, or a server that accepts and never answers, is noticed then), so nothing a
camera does can hang or crash the reader; it reconnects instead, waiting longer after each
failure in a row (``Backoff``).

A frame's capture time comes from the sender's RTCP sender reports where FFmpeg has them
(``start_time_realtime``: the sender's wall clock at the stream's timestamp 0; on one host or
with NTP-synced cameras, comparable to ours), else from when its packet reached us ("arrival":
network and buffering delay is then not counted). A sender clock that puts frames in the
future, or more than ``MAX_CLOCK_SKEW_S`` before they arrived, is not believed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import av

from core.cameras import redacted
from workers.live.segmenter import RollingSegmenter

log = logging.getLogger(__name__)

MAX_CLOCK_SKEW_S = 30.0
FUTURE_SLACK_S = 0.5
# Demuxers whose timestamps are made up, not the camera's: FFmpeg's reader of an HTTP MJPEG
# camera (multipart/x-mixed-replace) numbers the pictures at 25 a second whatever comes.
UNTIMED_FORMATS = frozenset({"mpjpeg"})


@dataclass(frozen=True)
class CameraStatus:
    state: str                  # connecting | live | reconnecting | failed | stopped
    reason: str | None = None

    def __str__(self) -> str:
        return f"{self.state} ({self.reason})" if self.reason else self.state


class CameraError(Exception):
    """A stream that cannot be opened; the message is one line."""


@dataclass
class Backoff:
    first_s: float = 0.5
    max_s: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures in a row (1, 2, ...)."""
        return min(self.max_s, self.first_s * 2 ** max(0, failures - 1))


def open_camera(url: str, transport: str = "tcp", open_timeout: float = 10.0,
                read_timeout: float = 5.0) -> av.container.InputContainer:
    """The stream, opened and probed, with at least one video stream; else ``CameraError``."""
    options = {"rtsp_transport": transport, "analyzeduration": "1000000",
               "timeout": str(round(open_timeout * 1e6))} if url.startswith("rtsp") else {}
    started = time.monotonic()
    try:
        container = av.open(url, options=options, timeout=(open_timeout, read_timeout))
    except (av.error.FFmpegError, OSError) as exc:
        # A server that never answers, or only with junk: FFmpeg's RTSP code waits for a
        # reply it can read until the timeout, and then reports invalid data.
        if isinstance(exc, av.error.ExitError) or time.monotonic() - started >= 0.95 * open_timeout:
            raise CameraError(f"{redacted(url)}: no usable answer within {open_timeout:g} s") from None
        raise CameraError(f"{redacted(url)}: cannot open ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise CameraError(f"{redacted(url)}: no video stream")
    return container


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


class CameraSource:
    """Reads one camera into a ``RollingSegmenter`` until stopped (``run`` in a thread)."""

    def __init__(self, url: str, segmenter: RollingSegmenter, transport: str = "tcp",
                 open_timeout: float = 10.0, read_timeout: float = 5.0, backoff: Backoff | None = None,
                 give_up_after: int | None = None):
        """give_up_after: failed opens in a row after which the camera is ``failed`` and
        ``run`` returns (None: keep trying)."""
        self.url, self.segmenter, self.transport = url, segmenter, transport
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        self.backoff = backoff or Backoff()
        self.give_up_after = give_up_after
        self.history: deque[tuple[float, CameraStatus]] = deque(maxlen=256)   # (unix s, status)
        self.connections = 0
        self._status = CameraStatus("connecting")
        self._set(self._status)

    @property
    def status(self) -> CameraStatus:
        return self._status

    def _set(self, status: CameraStatus) -> None:
        if not self.history or self.history[-1][1] != status:
            self.history.append((time.time(), status))
            log.info("camera %s: %s", redacted(self.url), status)
        self._status = status

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="camera", daemon=True)
        thread.start()
        return thread

    def run(self, stop: threading.Event) -> None:
        failures, reason = 0, None
        while not stop.is_set():
            self._set(CameraStatus("reconnecting", reason) if reason else CameraStatus("connecting"))
            try:
                container = open_camera(self.url, self.transport, self.open_timeout, self.read_timeout)
            except CameraError as exc:
                failures, reason = failures + 1, str(exc)
                self.segmenter.open_gap(reason)
                if self.give_up_after is not None and failures >= self.give_up_after:
                    self._set(CameraStatus("failed", reason))
                    return
                stop.wait(self.backoff.delay(failures))
                continue
            self.connections += 1
            frames_before = self.segmenter.frames
            try:
                reason = self._read(container, stop)
            except Exception as exc:   # a bug must not end the camera: say it, reconnect
                log.exception("camera %s: reading failed", redacted(self.url))
                reason = f"reading failed ({_reason(exc)})"
            finally:   # the segmenter copies the stream's parameters: end it before closing
                try:
                    self.segmenter.end(None if stop.is_set() else reason or "the stream ended")
                finally:
                    container.close()
            if stop.is_set():
                break
            # A connection that delivered frames resets the backoff; one that did not counts as a failure.
            failures = 0 if self.segmenter.frames > frames_before else failures + 1
            stop.wait(self.backoff.delay(max(1, failures)) if failures else 0)
        self._set(CameraStatus("stopped"))

    def _read(self, container: av.container.InputContainer, stop: threading.Event) -> str | None:
        """Feed packets until the stream ends, fails or stops; returns why it ended."""
        video = container.streams.video[0]

        def wallclock(pts: int, arrival: float) -> tuple[float, str]:
            realtime = container.start_time_realtime
            if realtime:
                sent = realtime / 1e6 + float(pts * video.time_base)
                if arrival - MAX_CLOCK_SKEW_S <= sent <= arrival + FUTURE_SLACK_S:
                    return sent, "rtcp"
            return arrival, "arrival"

        self.segmenter.begin(video, wallclock, stamp_by_arrival=container.format.name in UNTIMED_FORMATS)
        try:
            for packet in container.demux(video):
                if stop.is_set():
                    return None
                if packet.size:
                    self.segmenter.feed(packet, time.time())
                    if self._status.state != "live":
                        self._set(CameraStatus("live"))
        except av.error.ExitError:
            return f"no data for {self.read_timeout:g} s"
        except (av.error.FFmpegError, OSError) as exc:
            return f"stream error ({_reason(exc)})"
        return "the stream ended"
