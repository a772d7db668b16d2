"""Rolling segments: a live stream's packets cut into short NUT files as they arrive.

Cuts go at keyframes (a remux: no picture is decoded or encoded): at the keyframe nearest to
``segment_seconds`` after the segment's start (a camera's GOP of 1.9 s gives 1.9 s segments,
not 3.8 s). A stream whose keyframes are more than ``max_gop_factor`` times
the segment length apart cannot be cut that finely by remux; from the moment a segment grows
that long, the connection's packets are decoded and re-encoded instead (``transcode``), each
segment starting with a keyframe of its own.

Each segment file holds the packets its frames need, in decode order, with timestamps on the
watch timeline (``timeline``), and lists the presentation times of its own frames. An open
GOP's leading pictures (shown before the keyframe that cuts, decoded after it) belong to the
segment before the cut: that file also takes the cutting keyframe and those pictures (they
reference both sides), as the file split does. Decode times are recomputed from the
presentation times (cameras' RTP packets carry none; FFmpeg guesses some).

A segment's frame rate is the one its frames' presentation times say (the median interval
between them), never the rate FFmpeg's probe reports: that one is an estimate from the first
packets, and a 29.97 fps camera sending B-frames read as 59.94 fps (its detect pace, tracks
and alert times then ran at half speed). The stream's timestamps are the camera's own (RTP's
clock) where it sends them, and the arrival times where it does not (HTTP MJPEG).

Frames are numbered across the whole watch. A connection that ends (the camera dropped,
stalled, or sent garbage) closes its open segment and leaves a ``Gap``; the next
connection's first segment says that it does not continue the one before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av

from workers.frame_timing import frame_rate, frame_ticks
from workers.live.timeline import TIMELINE, ConnectionClock, Timeline
from workers.live.transcode import Transcoder

log = logging.getLogger(__name__)


@dataclass
class LiveSegment:
    index: int                # 0, 1, ... over the whole watch
    path: Path                # NUT file, timestamps on the watch timeline
    pts: list[int]            # its frames' presentation times (``TIMELINE`` ticks), in order
    end_pts: int              # where it ends: the time of the frame after its last
    first_frame: int          # global index of its first frame
    captured_at: float        # unix s: when its first frame was captured
    width: int
    height: int
    fps: float
    continues: bool           # False: a gap lies just before it (or it is the first)
    reencoded: bool           # True: cut by re-encoding (the camera's keyframes are too far apart)
    clock: str                # "rtcp": the sender's RTCP wall clock; "arrival": when it reached us

    @property
    def frames(self) -> int:
        return len(self.pts)


@dataclass
class Gap:
    after_frame: int          # global index of the last frame before the gap
    since: float              # unix s: capture time just after that frame
    until: float | None       # unix s: capture time of the first frame after it (None: not back yet)
    reason: str

    def to_json(self) -> dict:
        return {"after_frame": self.after_frame, "since": round(self.since, 3), "until": _round(self.until),
                "reason": self.reason}


# (captured_at unix s, "rtcp" | "arrival") of a connection's frame at pts (its own time base),
# given the unix time its packet arrived.
WallClock = Callable[[int, float], tuple[float, str]]

# Timed pictures seen after an untimed first keyframe before its time is guessed: enough to
# see past a camera's B-frame reordering.
REORDER_WINDOW = 8
# The frame interval (timeline ticks) of a camera whose frames' times have said none yet (a
# single picture so far): 15 fps, a common camera rate, until two frames are timed.
UNKNOWN_FRAME_TICKS = round(1 / 15 / TIMELINE)
# How much of a new connection's stream may wait for the sender's first RTCP report before it
# is placed by arrival times instead. RFC 3550 senders report first after 1.25-3.75 s; the
# first segment waits this long at most, later ones not at all.
RTCP_WAIT_S = 4.0


@dataclass
class _Pending:
    """A segment being gathered: packets in decode order with their timeline times."""
    start: int                                  # timeline time of its keyframe
    packets: list[tuple[av.Packet, int]]
    end: int | None = None                      # set once the next keyframe cut it
    last_key: int | None = None                 # its latest keyframe (the camera's GOP so far)

    def cut_at(self, key: int, target: int) -> bool:
        """Cut at keyframe ``key``? Yes once the segment is long enough, or when the next
        keyframe (one GOP on) would overshoot the target more than this one falls short."""
        gop = key - (self.last_key if self.last_key is not None else self.start)
        self.last_key = key
        return key - self.start >= target or (gop > 0 and key - self.start > target - gop / 2)


class RollingSegmenter:
    def __init__(self, out_dir: Path, on_segment: Callable[[LiveSegment], None],
                 segment_seconds: float = 2.0, max_gop_factor: float = 2.0, threads: int = 1):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.on_segment = on_segment
        self.target = round(segment_seconds / TIMELINE)
        self.max_gop = round(max_gop_factor * segment_seconds / TIMELINE)
        self.threads = threads
        self.timeline = Timeline()
        self.gaps: list[Gap] = []
        self.frames = 0                 # frames placed in segments so far (the next global index)
        self.segments = 0
        self.skipped_packets = 0        # packets before a connection's first clean keyframe, or untimed
        self._files = 0
        # The camera's frame interval as its latest frames' times say it (kept across reconnects).
        self._frame_ticks = UNKNOWN_FRAME_TICKS
        self._gap_open = True           # the first segment continues nothing
        self._connected = False

    # --- a connection --------------------------------------------------------------------

    def begin(self, stream: av.video.stream.VideoStream, wallclock: WallClock, stamp_by_arrival: bool = False) -> None:
        """A new connection's video stream; ``wallclock`` dates its first clean keyframe.
        ``stamp_by_arrival``: the stream's timestamps are made up (FFmpeg's HTTP MJPEG reader
        numbers pictures at 25 a second whatever the camera sends), so each picture is timed
        by its arrival instead. Either way the frame rate is learnt from the frames' times."""
        self._stream, self._wallclock = stream, wallclock
        self._stamp_by_arrival = stamp_by_arrival
        self._arrival_origin: float | None = None
        self._last_stamp = -1
        self._clock: ConnectionClock | None = None
        self._method = "arrival"
        self._current: _Pending | None = None
        self._closing: _Pending | None = None
        self._transcoder: Transcoder | None = None
        self._unplaced: list[tuple[av.Packet, float]] = []    # (packet, arrival) before placing
        self._connected = True

    def feed(self, packet: av.Packet, arrival: float) -> None:
        if self._stamp_by_arrival:
            self._stamp(packet, arrival)
        if self._clock is None:
            self._gather(packet, arrival)
        elif packet.pts is None or not packet.size:
            self.skipped_packets += 1    # nowhere to place it: its picture is lost
        else:
            self._add(packet)

    def _stamp(self, packet: av.Packet, arrival: float) -> None:
        """Time a picture by its arrival (on the timeline's clock, from the connection's first),
        each a tick at least after the one before: the first few come in one burst."""
        if self._arrival_origin is None:
            self._arrival_origin = arrival
        self._last_stamp = max(round((arrival - self._arrival_origin) / TIMELINE), self._last_stamp + 1)
        packet.time_base = TIMELINE
        packet.pts = packet.dts = self._last_stamp

    def _gather(self, packet: av.Packet, arrival: float) -> None:
        """A connection's first packets, from its first keyframe, until it is placed on the
        timeline. FFmpeg hands a camera's first picture over before its timestamps: that
        keyframe is kept and given its time from the pictures after it. Where it is
        followed by another keyframe, it was one slice of a picture split in two, and the
        connection starts at the next keyframe instead."""
        unplaced = self._unplaced
        head_untimed = bool(unplaced) and unplaced[0][0].pts is None
        if not packet.size or (packet.pts is None and (unplaced or not packet.is_keyframe)) or \
                (not unplaced and not packet.is_keyframe):
            self.skipped_packets += 1
            return
        if head_untimed and len(unplaced) == 1 and packet.is_keyframe:
            unplaced.clear()
            self.skipped_packets += 2
            return
        unplaced.append((packet, arrival))
        timed = [p.pts for p, _ in unplaced if p.pts is not None]
        if len(timed) < (REORDER_WINDOW if head_untimed else 1):
            return
        # The sender's clock (RTCP) may come a moment after the first pictures: wait for it
        # (the first segment gathers meanwhile), then place the connection.
        if self._wallclock(timed[0], arrival)[1] == "rtcp" or \
                (max(timed) - min(timed)) * packet.time_base >= max(self.target * TIMELINE, RTCP_WAIT_S):
            self._place_connection()

    def _place_connection(self) -> None:
        """Put the connection on the timeline from its first keyframe's capture time."""
        unplaced, self._unplaced = self._unplaced, []
        head = unplaced[0][0]
        if head.pts is None:
            timed = [p.pts for p, _ in unplaced if p.pts is not None]
            if not timed:
                self.skipped_packets += len(unplaced)
                return
            # Shown one frame before the earliest picture decoded after it (B-frames reorder).
            self._learn_frame_ticks([round(pts * head.time_base / TIMELINE) for pts in timed])
            head.pts = min(timed) - round(self._frame_ticks * TIMELINE / head.time_base)
        # When the head would have arrived had it come in real time: the first pictures
        # come in a burst (held back while FFmpeg probed the stream), later ones as shown.
        arrival = min(t - float((p.pts - head.pts) * p.time_base) for p, t in unplaced if p.pts is not None)
        captured_at, self._method = self._wallclock(head.pts, arrival)
        self._clock = self.timeline.connect(head.time_base, head.pts, captured_at)
        for packet, _ in unplaced:
            self._add(packet)

    def _add(self, packet: av.Packet) -> None:
        pts = self._clock(packet.pts)
        if self._transcoder is not None:
            self._transcoder.feed(packet, pts)
            return
        if self._closing is not None and (packet.is_keyframe or pts > self._closing.end):
            self._finish(self._closing)      # its last leading picture has come
            self._closing = None
        current = self._current
        if current is None:
            self._current = _Pending(pts, [(packet, pts)])
            return
        if packet.is_keyframe and current.cut_at(pts, self.target):
            current.end = pts
            current.packets.append((packet, pts))   # leading pictures reference it
            self._closing, self._current = current, _Pending(pts, [(packet, pts)])
            return
        current.packets.append((packet, pts))
        if self._closing is not None and pts < self._closing.end:
            self._closing.packets.append((packet, pts))   # a leading picture of the cut
        if _span(current) > self.max_gop:
            self._start_transcoding()

    def end(self, reason: str | None) -> None:
        """The connection is gone: close what it left open, and open a gap unless ``reason``
        is None (the watch itself stopped)."""
        if not self._connected:
            return
        self._connected = False
        if self._unplaced:
            self._place_connection()
        if self._transcoder is not None:
            self._transcoder.close()
        for pending in (self._closing, self._current):
            if pending is not None:
                self._finish(pending)
        self._closing = self._current = self._transcoder = None
        if reason is not None:
            self.open_gap(reason)

    def open_gap(self, reason: str) -> None:
        """Frames stop here (a drop, a failed connection); the gap closes when frames come back."""
        if not self.frames or (self.gaps and self.gaps[-1].until is None):
            return    # nothing before it yet, or already open (a reconnect that failed again)
        self.gaps.append(Gap(self.frames - 1, self.timeline.captured_at(self.timeline.end), None, reason))
        self._gap_open = True

    # --- writing segments ----------------------------------------------------------------

    def _start_transcoding(self) -> None:
        current, self._current = self._current, None
        if self._closing is not None:
            self._finish(self._closing)
            self._closing = None
        fps = frame_rate(self._learn_frame_ticks([pts for _, pts in current.packets]), TIMELINE)
        self._transcoder = Transcoder(self._stream, self.target, self._next_path, self._emit, fps=fps,
                                      threads=self.threads)
        for packet, pts in current.packets:
            self._transcoder.feed(packet, pts)

    def _next_path(self) -> Path:
        self._files += 1
        return self.out_dir / f"{self._files:06d}.nut"

    def _finish(self, pending: _Pending) -> None:
        """Write a remuxed segment: every packet it holds, its own frames listed."""
        own = sorted(pts for _, pts in pending.packets
                     if pts >= pending.start and (pending.end is None or pts < pending.end))
        if not own:
            return
        path = self._next_path()
        try:
            write_packets(path, self._stream, pending.packets)
        except av.error.FFmpegError as exc:   # its frames are lost: say so, as a gap
            log.warning("segment %s could not be written: %s", path.name, exc)
            path.unlink(missing_ok=True)
            self.open_gap(f"{len(own)} frames could not be written ({exc})")
            return
        end = pending.end if pending.end is not None else own[-1] + self._learn_frame_ticks(own)
        codec = self._stream.codec_context
        self._emit(path, own, end, codec.width, codec.height, reencoded=False)

    def _learn_frame_ticks(self, pts: list[int]) -> int:
        """The frame interval these times say (``frame_ticks``), kept as the connection's; the
        one known so far where they say none (a single frame)."""
        self._frame_ticks = frame_ticks(pts) or self._frame_ticks
        return self._frame_ticks

    def _emit(self, path: Path, pts: list[int], end: int, width: int, height: int, reencoded: bool) -> None:
        fps = frame_rate(self._learn_frame_ticks(pts), TIMELINE)
        if self.gaps and self.gaps[-1].until is None:
            self.gaps[-1].until = self.timeline.captured_at(pts[0])
        segment = LiveSegment(index=self.segments, path=path, pts=pts, end_pts=end, first_frame=self.frames,
                              captured_at=self.timeline.captured_at(pts[0]), width=width, height=height,
                              fps=fps, continues=not self._gap_open, reencoded=reencoded, clock=self._method)
        self.segments += 1
        self.frames += len(pts)
        self.timeline.end = end
        self._gap_open = False
        self.on_segment(segment)


def write_packets(path: Path, stream: av.video.stream.VideoStream, packets: list[tuple[av.Packet, int]]) -> None:
    """A NUT file of ``packets`` (decode order) at their timeline times. Decode times are the
    presentation times in order, moved back just enough that none is later than its own."""
    shown = [pts for _, pts in packets]
    in_order = sorted(shown)
    shift = max(a - b for a, b in zip(in_order, shown))
    with av.open(str(path), "w", format="nut", options={"avoid_negative_ts": "disabled"}) as out:
        target = out.add_stream_from_template(stream, opaque=True)   # parameters copied, no codec
        target.time_base = TIMELINE
        for (packet, pts), dts in zip(packets, in_order):
            packet.stream = target
            packet.time_base = TIMELINE
            packet.pts, packet.dts = pts, dts - shift
            out.mux(packet)


def _span(pending: _Pending) -> int:
    return max(pts for _, pts in pending.packets) - pending.start


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
