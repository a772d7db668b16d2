"""A browser camera: a video track a browser publishes over WebRTC, received with aiortc and
fed to the rolling segmenter like a camera's packets.

A browser cannot serve RTSP; it publishes: it sends an SDP offer (through the web app, which
hands it over in Redis, ``core.camera_offers``), this source answers it and receives the track.
aiortc hands over decoded pictures (it decodes VP8 or H.264 itself), so each picture is
encoded once more, H.264 (libx264 ultrafast, zerolatency, a keyframe a second), and the
packets go to the same ``RollingSegmenter`` an RTSP camera's go to: segments, gaps, capture
times and everything after are the same. Capture times are arrival times (a browser's RTCP
clock is not exposed by aiortc).

The status follows the camera's contract: ``connecting`` while no browser publishes, ``live``
while pictures come, ``reconnecting (reason)`` after the browser left, stalled or sent an offer
that cannot be answered, waiting for the next offer. A new offer while one browser publishes
takes over (a page reloaded). Nothing a browser sends can end the thread.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import av

from workers.frame_timing import encoder_rate
from workers.live.segmenter import RollingSegmenter
from workers.live.source import CameraStatus

log = logging.getLogger(__name__)

# (offer {sdp, type}, reply(answer or {"error"})) when a browser has sent one within the
# timeout (0: only one already waiting), else None.
Offers = Callable[[float], "tuple[dict, Callable[[dict], None]] | None"]

RATE_FRAMES = 8           # pictures looked at to learn the browser's frame rate before encoding
TAKEOVER_CHECK_S = 1.0


@dataclass
class _Session:
    """Why a publishing session ended, and an offer that ended it (a new publisher)."""
    reason: str | None
    next_offer: tuple | None = None


class BrowserSource:
    """Receives one browser camera into a ``RollingSegmenter`` until stopped (``run`` in a thread)."""

    def __init__(self, url: str, segmenter: RollingSegmenter, offers: Offers, open_timeout: float = 10.0,
                 read_timeout: float = 5.0, keyframe_s: float = 1.0, threads: int = 1):
        self.url, self.segmenter, self.offers = url, segmenter, offers
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        self.keyframe_s, self.threads = keyframe_s, threads
        self.give_up_after: int | None = None     # a browser camera is waited for
        self.history: deque[tuple[float, CameraStatus]] = deque(maxlen=256)
        self.connections = 0
        self._status = CameraStatus("connecting")
        self.history.append((time.time(), self._status))

    @property
    def status(self) -> CameraStatus:
        return self._status

    def _set(self, status: CameraStatus) -> None:
        if self.history[-1][1] != status:
            self.history.append((time.time(), status))
            log.info("browser camera %s: %s", self.url, status)
        self._status = status

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="browser-camera", daemon=True)
        thread.start()
        return thread

    def run(self, stop: threading.Event) -> None:
        reason, waiting = None, None
        while not stop.is_set():
            self._set(CameraStatus("reconnecting", reason) if reason else CameraStatus("connecting"))
            got, waiting = waiting or self.offers(1.0), None
            if got is None:
                continue
            self.connections += 1
            try:
                session = asyncio.run(self._publish(*got, stop))
            except Exception as exc:      # a bug must not end the camera: say it, wait for the next offer
                log.exception("browser camera %s: the session failed", self.url)
                session = _Session(f"the session failed ({exc})")
            reason, waiting = session.reason, session.next_offer
        self._set(CameraStatus("stopped"))

    async def _publish(self, offer: dict, reply: Callable[[dict], None], stop: threading.Event) -> _Session:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))   # one host or a LAN: no STUN, no TURN
        tracks: asyncio.Queue = asyncio.Queue()
        peer.on("track", lambda track: tracks.put_nowait(track) if track.kind == "video" else None)
        try:
            try:
                await peer.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
                await peer.setLocalDescription(await peer.createAnswer())
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                reply({"error": f"the offer cannot be answered ({_one_line(exc)})"})
                return _Session(f"an offer that cannot be answered ({_one_line(exc)})")
            if tracks.empty():
                reply({"error": "the offer cannot be answered (it has no video track)"})
                return _Session("an offer without video")
            reply({"sdp": peer.localDescription.sdp, "type": peer.localDescription.type})
            return await self._receive(tracks.get_nowait(), stop)
        finally:
            await peer.close()

    async def _receive(self, track, stop: threading.Event) -> _Session:
        """Pictures -> encoder -> segmenter until the browser leaves, stalls or is replaced."""
        from aiortc.mediastreams import MediaStreamError

        encoder: _Encoder | None = None
        first: list[av.VideoFrame] = []
        timeout, checked, reason, taken_over = self.open_timeout, time.monotonic(), None, None
        try:
            while not stop.is_set():
                try:
                    frame = await asyncio.wait_for(track.recv(), timeout)
                except asyncio.TimeoutError:
                    reason = f"no video for {timeout:g} s"
                    break
                except MediaStreamError:
                    reason = "the browser stopped publishing"
                    break
                timeout = self.read_timeout
                if encoder is None:          # learn the frame rate from the first pictures
                    first.append(frame)
                    if len(first) < RATE_FRAMES:
                        continue
                    encoder = _Encoder(first[0], _frame_rate(first), self.keyframe_s, self.threads)
                    self.segmenter.begin(encoder.stream, lambda pts, arrival: (arrival, "arrival"))
                    pending, first = first, []
                else:
                    pending = [frame]
                for picture in pending:
                    for packet in encoder.encode(picture):
                        self.segmenter.feed(packet, time.time())
                if self._status.state != "live":
                    self._set(CameraStatus("live"))
                if time.monotonic() - checked >= TAKEOVER_CHECK_S:
                    checked = time.monotonic()
                    taken_over = self.offers(0)
                    if taken_over is not None:
                        reason = "another browser took over"
                        break
        finally:
            if encoder is not None:
                self.segmenter.end(None if stop.is_set() else reason or "the browser stopped publishing")
                encoder.close()
        return _Session(reason, taken_over)


class _Encoder:
    """H.264 packets of a browser's pictures, on the pictures' own clock (90 kHz, RTP's)."""

    def __init__(self, first: av.VideoFrame, fps: Fraction, keyframe_s: float, threads: int):
        self.width, self.height = first.width - first.width % 2, first.height - first.height % 2
        self.container = av.open(io.BytesIO(), "w", format="nut")   # never written: it holds the stream
        stream = self.container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = first.time_base or Fraction(1, 90000)
        stream.codec_context.thread_count = threads
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "18",
                          "g": str(max(1, round(fps * Fraction(keyframe_s))))}
        # Opens the encoder and fills the stream's parameters (SPS/PPS included), which the
        # segmenter copies into every segment file.
        self.container.start_encoding()
        self.stream = stream
        self.origin = first.pts
        self.last: int | None = None

    def encode(self, frame: av.VideoFrame) -> list[av.Packet]:
        pts = frame.pts - self.origin
        if pts < 0 or (self.last is not None and pts <= self.last):
            return []            # out of order or repeated: nowhere to place it
        self.last = pts
        if (frame.width, frame.height, frame.format.name) != (self.width, self.height, "yuv420p"):
            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        frame.pts, frame.time_base = pts, self.stream.time_base
        frame.pict_type = av.video.frame.PictureType.NONE
        return list(self.stream.encode(frame))

    def close(self) -> None:
        try:
            self.container.close()
        except av.error.FFmpegError:
            pass


def _frame_rate(frames: list[av.VideoFrame]) -> Fraction:
    """The browser's frame rate as its first pictures' times say (RTP's 90 kHz clock unless
    they name another), read as an upload's or a camera's is."""
    return encoder_rate([frame.pts for frame in frames], frames[0].time_base or Fraction(1, 90000))


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
