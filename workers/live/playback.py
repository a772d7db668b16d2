"""A camera's live view played back over WebRTC (aiortc): the alternative to the page's MSE player.

The same drawn pieces the MSE page appends (``workers.live.view``, fragmented MP4 listed in the
registry) are decoded here and sent as one WebRTC video track, paced at their own frame times:
a piece starts when it is drawn (or when the one before it has played out), so the picture runs
as far behind live as the drawing does, plus the browser's jitter buffer. aiortc encodes each
picture again (VP8 or H.264, as the browser's answer chose), which costs CPU per viewer; MSE
sends the drawn files as they are.

A viewer that falls more than one piece behind skips to the newest one. A data channel
("clock") carries, for each picture sent, when it was captured and when it was sent, so the
page can say how far behind live the picture on screen is (send delay + its own playout delay).

``ViewerServer`` runs every viewer's peer connection on one asyncio loop in a thread of the
camera's ingester (the process that holds the camera), as browser cameras' sessions run there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
from aiortc import MediaStreamTrack

log = logging.getLogger(__name__)

CLOCK = Fraction(1, 90000)     # RTP's video clock
POLL_S = 0.05
MAX_VIEWERS = 8                # per ingester: each costs an encoder

# The newest drawn pieces of a camera, oldest first (``CameraRegistry.view``), and where a piece's file is.
Pieces = Callable[[], list]
PiecePath = Callable[[dict], Path]


def decode_piece(path: Path) -> list[tuple[float, av.VideoFrame]]:
    """A drawn piece's pictures, each with its time from the piece's first frame (seconds)."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    if not frames:
        return []
    first = frames[0].pts or 0
    return [(float((frame.pts - first) * frame.time_base) if frame.pts is not None else 0.0, frame)
            for frame in frames]


class PieceTrack(MediaStreamTrack):
    """A video track that plays a camera's drawn pieces in order, in real time."""

    kind = "video"

    def __init__(self, pieces: Pieces, path: PiecePath, on_frame: Callable[[float, float], None] | None = None):
        """on_frame(captured_at, sent_at) for each picture handed to the encoder."""
        super().__init__()
        self.pieces, self.path, self.on_frame = pieces, path, on_frame or (lambda captured, sent: None)
        self.queue: list[tuple[float, av.VideoFrame]] = []
        self.piece: dict | None = None
        self.piece_start = 0.0         # wall clock (time.time) at which the current piece's first frame plays
        self.origin: float | None = None
        self.sent = 0

    def _next_piece(self) -> dict | None:
        listed = self.pieces()
        if self.piece is None:
            return listed[-1] if listed else None          # start at the newest: as live as it gets
        key = (self.piece["watch"], self.piece["segment"])
        later = [p for p in listed if (p["watch"], p["segment"]) != key and
                 (p["watch"] != key[0] or p["segment"] > key[1])]
        if len(later) > 1:
            return later[-1]       # fallen behind by more than a piece: skip to the newest
        return later[0] if later else None

    async def recv(self) -> av.VideoFrame:
        loop = asyncio.get_running_loop()
        while not self.queue:
            piece = self._next_piece()
            if piece is None:
                await asyncio.sleep(POLL_S)
                continue
            try:
                frames = await loop.run_in_executor(None, decode_piece, self.path(piece))
            except (FileNotFoundError, av.error.FFmpegError) as exc:   # pushed out meanwhile: take the next
                log.info("live view piece %s/%s skipped: %s", piece["watch"], piece["segment"], exc)
                frames = []
            # The piece plays from now, or right after the one before it if that still plays.
            ends = self.piece_start + (self.piece or {}).get("duration_s", 0.0)
            self.piece, self.piece_start = piece, max(time.time(), ends)
            self.queue = frames
        offset, frame = self.queue.pop(0)
        due = self.piece_start + offset
        wait = due - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        if self.origin is None:
            self.origin = due
        frame.pts, frame.time_base = round((due - self.origin) / CLOCK), CLOCK
        self.sent += 1
        self.on_frame(self.piece["captured_at"] + offset, time.time())
        return frame


class ViewerServer:
    """Answers viewers' WebRTC offers and plays each its camera's live view (one asyncio loop)."""

    def __init__(self, pieces: Callable[[str], list], path: PiecePath, max_viewers: int = MAX_VIEWERS):
        self.pieces, self.path, self.max_viewers = pieces, path, max_viewers
        self.loop = asyncio.new_event_loop()
        self.viewers: dict[object, str] = {}       # peer connection -> camera id
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-viewers", daemon=True)
        self.thread.start()

    def watched(self) -> set[str]:
        """The cameras somebody watches over WebRTC now."""
        return set(dict(self.viewers).values())     # a copy: the loop's thread changes it

    def offer(self, camera_id: str, offer: dict, reply: Callable[[dict], None]) -> None:
        """Answer an offer (from any thread); ``reply`` gets the answer or ``{"error"}``."""
        asyncio.run_coroutine_threadsafe(self._answer(camera_id, offer, reply), self.loop)

    def drop(self, camera_id: str) -> None:
        """Hang up every viewer of a camera (it was deleted or went to another replica)."""
        for peer, watched in list(self.viewers.items()):
            if watched == camera_id:
                asyncio.run_coroutine_threadsafe(self._close(peer), self.loop)

    def stop(self) -> None:
        for peer in list(self.viewers):
            asyncio.run_coroutine_threadsafe(self._close(peer), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _close(self, peer) -> None:
        self.viewers.pop(peer, None)
        await peer.close()

    async def _answer(self, camera_id: str, offer: dict, reply: Callable[[dict], None]) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        if len(self.viewers) >= self.max_viewers:
            reply({"error": f"this ingester plays {self.max_viewers} live views already (use the MSE player)"})
            return
        peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))    # one host or a LAN: no STUN, no TURN
        clock: list = []
        peer.on("datachannel", lambda channel: clock.append(channel))

        def on_frame(captured_at: float, sent_at: float) -> None:
            for channel in clock:
                if channel.readyState == "open":
                    channel.send(json.dumps({"captured_at": round(captured_at, 4), "sent_at": round(sent_at, 4)}))

        @peer.on("connectionstatechange")
        async def on_state() -> None:
            if peer.connectionState in ("failed", "closed", "disconnected"):
                await self._close(peer)

        try:
            await peer.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
            if not any(t.kind == "video" for t in peer.getTransceivers()):
                raise ValueError("it asks for no video")
            peer.addTrack(PieceTrack(lambda: self.pieces(camera_id), self.path, on_frame))
            await peer.setLocalDescription(await peer.createAnswer())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            await peer.close()
            reply({"error": f"the offer cannot be answered ({' '.join(str(exc).split()) or type(exc).__name__})"})
            return
        self.viewers[peer] = camera_id
        reply({"sdp": peer.localDescription.sdp, "type": peer.localDescription.type})
