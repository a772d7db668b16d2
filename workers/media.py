"""Media plumbing with PyAV: probe, keyframe split, decode, encode, concat.

The split never re-encodes: it cuts the source's packets at keyframes into NUT segments
(FFmpeg's own container: it holds any codec, GIF and MJPEG included, where Matroska refuses
some). Each segment remembers the exact presentation timestamps of its
frames in the source's time base; the annotated segments are encoded with those timestamps and
the stitch remuxes them back in order with the source's audio copied, so the output has the
source's frame count, frame rate and duration, variable frame rate included.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import cv2
import numpy as np

from core import defaults
from workers.frame_timing import frame_rate, frame_ticks

# Demuxers that read single pictures: such a file is a photo, not a recording.
_IMAGE_DEMUXERS = ("image2", "_pipe", "apng", "webp")


class MediaError(ValueError):
    """A recording vidfarm cannot process. The message is one line, fit to show a user."""


@dataclass(slots=True)   # slots: a long recording's table holds a million of these
class PacketInfo:
    pts: int
    duration: int
    keyframe: bool
    timed: bool = True      # it carried the time it is shown (raw streams: counted; see probe)
    shown: bool = True      # False: pre-roll an edit list cuts (decoded as a reference, never shown)
    damaged: bool = False   # the demuxer flagged it corrupt, or it lost its timestamps


@dataclass
class MediaInfo:
    container: str
    video_codec: str
    width: int
    height: int
    fps: float
    time_base: tuple[int, int]       # numerator, denominator of the video stream's time base
    frames: int
    start_pts: int
    duration_s: float
    has_audio: bool
    audio_codec: str | None = None
    # Segment files shift every timestamp by this much: NUT refuses negative ones, and an edit
    # list's pre-roll has them. Whoever reads a segment file adds it to the source's times.
    pts_offset: int = 0
    # Every frame's timestamp says when it is shown, so decoded pictures are matched to frames
    # by time (``segment_frames``); False for counted times, or decode times only.
    timed: bool = True
    packets: list[PacketInfo] = field(default_factory=list, repr=False)
    # Frames of the recording the file no longer holds (cut short, or lost in a damaged
    # stretch), by time: they count as frames, and segment_frames reports them as damaged.
    lost: list[int] = field(default_factory=list, repr=False)
    # Degrees (counter-clockwise: 0, 90, 180 or 270) the stored pictures turn to be shown
    # upright (a phone's display matrix). width and height are the upright picture's; every
    # frame is analysed and drawn upright (``segment_frames``), so boxes are in its pixels.
    rotation: int = 0

    @property
    def tb(self) -> Fraction:
        return Fraction(*self.time_base)

    def summary(self) -> dict:
        """Everything but the packet table and the lost frames (asdict would first deep-copy
        every packet of it: seconds for a long recording)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("packets", "lost")}


@dataclass
class SegmentPlan:
    index: int
    start_frame: int
    frames: int
    pts: list[int]          # presentation timestamps of its frames, in presentation order
    end_pts: int            # where the next segment (or the recording) starts
    first_packet: int       # decode-order packet range [first_packet, end_packet): from the
    end_packet: int         # keyframe at or before its first frame to the last of its own packets


@dataclass
class Limits:
    min_side: int = defaults.MIN_SIDE
    max_width: int = defaults.MAX_WIDTH
    max_height: int = defaults.MAX_HEIGHT
    max_duration_s: float = defaults.MAX_DURATION_S
    max_fps: float = defaults.MAX_FPS
    max_frames: int = defaults.MAX_FRAMES
    budget_s: float = defaults.PROBE_BUDGET_S          # the longest a probe may read before it gives up


def _open(path: Path | str, probe_pictures: bool = True) -> av.container.InputContainer:
    """Opening a file decodes its first pictures to learn their format (docs/design-notes.md
    says what that costs). ``probe_pictures=False`` skips that where the caller decodes anyway (the
    decoder learns the same) or only remuxes a file vidfarm wrote itself (a segment task's
    input, each segment in the serial stitch). Formats that reveal their streams only by
    probing (MPEG program streams) are probed regardless. Either way FFmpeg reads a bounded
    part of the file (its probesize, 5 MB) to learn the streams."""
    try:
        if not probe_pictures:
            try:
                return av.open(str(path), stream_options=[{"skip_frame": "all"}])
            except ValueError as exc:   # PyAV: no streams before probing, per-stream options refused
                if isinstance(exc, av.error.FFmpegError):   # a damaged file: one open is enough
                    raise
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise MediaError(f"not a readable video file{_missing_index(path)} ({_reason(exc)})") from None


def _missing_index(path: Path | str) -> str:
    """Why an MP4 or MOV that FFmpeg cannot open has nothing to read, when its top-level boxes
    say so: no index (``moov``), which many cameras and editors write last, so a copy or an
    upload cut short loses it and with it where every frame lies. '' otherwise."""
    kinds, end_of_data = [], 0
    try:
        with open(path, "rb") as fh:
            size_of_file = os.fstat(fh.fileno()).st_size
            while end_of_data + 8 <= size_of_file and len(kinds) < 64:
                fh.seek(end_of_data)
                header = fh.read(16)
                size, kind = int.from_bytes(header[:4], "big"), header[4:8]
                if size == 1 and len(header) == 16:     # a 64-bit size follows the type
                    size = int.from_bytes(header[8:16], "big")
                if size < 8 or not kind.isalnum():
                    break
                kinds.append(kind)
                end_of_data += size
    except OSError:
        return ""
    if not kinds or kinds[0] != b"ftyp" or b"moov" in kinds:
        return ""
    if end_of_data > size_of_file:
        return (": an MP4 cut short before its index (the moov box, which this file keeps at its end), "
                "so no frame can be found")
    return ": an MP4 without its index (the moov box), so no frame can be found"


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())


def check_upload(path: Path | str, limits: Limits | None = None) -> None:
    """A bounded look at an upload before it becomes a job (the web process runs it): the
    container opens, holds a video stream of a size within the limits, declares a sane frame
    rate, frame count and duration, runs at a sane rate over its first second, and its first
    picture decodes. Once a picture has decoded it only counts packets, and it stops after a
    second of the recording (or the maximum frame rate's worth of packets), within
    ``limits.budget_s`` in any case; the ingest task's ``probe`` then reads the whole file
    under the same limits."""
    limits = limits or Limits()
    path = Path(path)
    started = time.monotonic()
    _check_size(path)
    with _open(path) as container:
        video = _video_stream(container, limits)
        duration = container.duration / av.time_base if container.duration else 0.0
        if duration > limits.max_duration_s:
            raise MediaError(f"the recording is too long ({duration:.0f} s; at most {limits.max_duration_s:.0f} s)")
        guard = _ScanGuard(video, limits, started)
        decoded, failure = False, None
        for packet in _video_packets(container, video):
            measured = guard.count(packet)
            if not decoded:     # decode until the first picture; after it, only count packets
                frames, failed = _decode(packet.decode)
                decoded, failure = bool(frames), failed or failure
            if measured and decoded:
                return
        if not decoded:
            decoded = bool(_decode(lambda: _flush(video))[0])
    if not decoded:
        raise MediaError(f"the video stream does not decode ({failure or 'no picture in it'})")


def _check_size(path: Path) -> None:
    if path.stat().st_size == 0:
        raise MediaError("the file is empty (0 bytes)")


def _video_stream(container, limits: Limits):
    """The recording's video stream, if its header shows one vidfarm can take."""
    fmt = container.format.name
    if any(marker in fmt for marker in _IMAGE_DEMUXERS):
        raise MediaError("this is a photo, not a video")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise MediaError(f"this file holds no video, only {' and '.join(kinds)}")
    video = container.streams.video[0]
    width, height = video.codec_context.width, video.codec_context.height
    if min(width, height) < limits.min_side:
        raise MediaError(f"the picture is too small ({width}x{height} pixels; at least {limits.min_side} "
                         "on each side)")
    if width > limits.max_width or height > limits.max_height:
        raise MediaError(f"the picture is too large ({width}x{height} pixels; at most "
                         f"{limits.max_width}x{limits.max_height})")
    # average_rate: frames over time, as the header or the first packets say. (guessed_rate
    # is the finest rate that expresses every timestamp: a millisecond clock reads 1000.)
    if video.average_rate and video.average_rate > limits.max_fps:
        # An MP4 whose frames all carry one time gets its rate from that: frames over ~nothing.
        stalled = _stalled_times([entry.timestamp for entry in video.index_entries], video.time_base)
        raise MediaError(stalled or _too_fast(float(video.average_rate), limits))
    if video.frames > limits.max_frames:
        raise MediaError(_too_many(limits))
    return video


def _too_fast(fps: float, limits: Limits) -> str:
    return f"frame rate {fps:.0f} fps exceeds the {limits.max_fps:g} fps maximum"


def _stalled_times(stamps: list[int], tb: Fraction | None) -> str | None:
    """Why frames that all carry one time cannot be processed, or None. Frames are told apart,
    cut into segments and put back in order by their times: a file whose timestamps never
    advance (a faulty recorder writes 0 for each) has none of that, and no frame rate (the
    header's is then frames over no time: thousands of fps). A time repeated here and there
    is not this: an MPEG program stream's demuxer guesses some that way (``_distinct_times``)."""
    if len(stamps) < 2 or min(stamps) != max(stamps):
        return None
    return _no_usable_times(f"all {len(stamps)}", stamps[0], tb)


def _no_usable_times(frames: str, stamp: int, tb: Fraction | None) -> str:
    return (f"its frames carry no usable timestamps: {frames} say {_seconds(stamp, tb)} "
            "(each frame needs its own time, later than the one before)")


def _seconds(stamp: int, tb: Fraction | None) -> str:
    return f"{float(stamp * (tb or Fraction(1, 90000))):.2f} s"


def _too_many(limits: Limits) -> str:
    return f"too many frames (more than the {limits.max_frames} allowed)"


class _ScanGuard:
    """Keeps a packet scan within the limits: frame count, measured frame rate, time. A file
    of a million tiny packets is refused after its first second, not after the millionth."""

    CHECK_EVERY = 256        # packets between looks at the clock

    def __init__(self, video, limits: Limits, started: float):
        self.limits, self.started = limits, started
        self.tb = video.time_base or Fraction(1, 90000)
        self.packets = 0
        self.first = self.last = None

    def count(self, packet: av.Packet) -> bool:
        """Count a packet; raises MediaError past a limit. True once a second of media (or
        the maximum frame rate's worth of packets) has been measured."""
        self.packets += 1
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is not None:
            self.first = stamp if self.first is None else min(self.first, stamp)
            self.last = stamp if self.last is None else max(self.last, stamp)
        limits = self.limits
        if self.packets > limits.max_frames:
            raise MediaError(_too_many(limits))
        if self.packets % self.CHECK_EVERY == 0 and time.monotonic() - self.started > limits.budget_s:
            raise MediaError(f"reading the file took longer than the {limits.budget_s:g} s allowed "
                             f"({self.packets} packets read)")
        if self.first is None:      # no timestamps (a raw stream): no rate to measure
            return self.packets > limits.max_fps
        span = float((self.last - self.first) * self.tb)
        if self.packets > limits.max_fps and self.packets - 1 > limits.max_fps * span:
            if self.last == self.first:
                raise MediaError(_no_usable_times(f"the first {self.packets} all", self.first, self.tb))
            raise MediaError(f"{self.packets} frames in {span:.2f} s: the frame rate exceeds the "
                             f"{limits.max_fps:g} fps maximum")
        return span >= 1.0 or self.packets > limits.max_fps


def probe(path: Path | str, limits: Limits | None = None) -> MediaInfo:
    """Read a recording's streams and packet table and check that vidfarm can process it,
    within ``limits`` (frames, frame rate, reading time). Damage is read past: a damaged
    packet stays in the table (flagged), and frames the file lost (``MediaInfo.lost``) count
    where the file shows they were there. Only a stream with no decodable picture fails."""
    limits = limits or Limits()
    path = Path(path)
    started = time.monotonic()
    _check_size(path)
    with _open(path) as container:
        video = _video_stream(container, limits)
        ctx = video.codec_context
        audio = container.streams.audio[0] if container.streams.audio else None
        packets, damaged = _read_packet_table(container, video, _ScanGuard(video, limits, started))
        stalled = _stalled_times([p.pts for p in packets if p.shown and p.timed], video.time_base)
        if stalled:     # segment files of such times crash the muxer (SIGABRT): refuse them here
            raise MediaError(stalled)
        if ctx.has_b_frames and all(a.pts < b.pts for a, b in zip(packets, packets[1:])):
            # Pictures are reordered, yet the times rise in decode order: they are decode times
            # (H.264 with B-frames in AVI), not when each picture is shown. Cut only at keyframes.
            packets = [replace(p, timed=False) for p in packets]
        lost = _lost_frames(packets, _beyond_end(video, path.stat().st_size), damaged, video.frames)
        packets, rotation = _check_decodes(path, packets, limits, started)
        packets = _distinct_times(packets, lost)
        tb = video.time_base or Fraction(1, 90000)
        shown = [p for p in packets if p.shown]
        if not shown:
            raise MediaError("the video holds no pictures to show")
        frames = len(shown) + len(lost)
        if frames > limits.max_frames:
            raise MediaError(_too_many(limits))
        start = min(p.pts for p in shown)
        duration_s = float((_recording_end(shown, lost) - start) * tb)
        if duration_s > limits.max_duration_s:
            raise MediaError(f"the recording is too long ({duration_s:.0f} s; at most {limits.max_duration_s:.0f} s)")
        fps = _frame_rate(video, shown, lost, tb) or (frames / duration_s if duration_s else 0.0)
        width, height = (ctx.height, ctx.width) if rotation % 180 else (ctx.width, ctx.height)
        return MediaInfo(container=container.format.name, video_codec=ctx.name, width=width, height=height,
                         fps=fps, time_base=(tb.numerator, tb.denominator), frames=frames,
                         start_pts=start, duration_s=duration_s, has_audio=audio is not None,
                         audio_codec=audio.codec_context.name if audio else None,
                         pts_offset=max(0, -min(p.pts for p in packets)), timed=all(p.timed for p in packets),
                         packets=packets, lost=lost, rotation=rotation)


def _frame_rate(video, shown: list[PacketInfo], lost: list[int], tb: Fraction) -> float | None:
    """The rate FFmpeg reads in the file (``average_rate``) where the frames' timestamps agree
    (within 10% of their frames over time: a millisecond clock's 33 and 34 ms steps, a
    variable-rate recording's average); else the one their median interval says, as a live
    camera's rate is read (``workers.frame_timing``). A container with no frame-rate field of
    its own (MPEG-TS), or one its muxer filled from the codec (AVI), gets the H.264 stream's
    timing info, which may count half-frames: a 29.97 fps recording read as 59.94 (results.json,
    the job page, and a lost track kept twice as long). (Times counted for a raw stream agree:
    they were counted at that rate.)"""
    declared = video.average_rate or video.guessed_rate
    times = sorted({p.pts for p in shown} | set(lost))
    if len(times) < 2:
        return float(declared) if declared else None
    average = (len(times) - 1) / float((times[-1] - times[0]) * tb)
    if declared and abs(float(declared) - average) <= average / 10:
        return float(declared)
    return frame_rate(frame_ticks(times), tb)


def _distinct_times(packets: list[PacketInfo], lost: list[int]) -> list[PacketInfo]:
    """The packet table with every shown picture at a time of its own. An MPEG program
    stream's demuxer guesses some times and now and then gives two pictures the same one: frames
    are told apart, cut and put back in order by their times, and the split's NUT muxer refuses
    a repeat. Each picture whose time is not after the one before (in presentation order; decode
    order among equals) moves to one tick after it: the smallest step, every other time is kept,
    and the frame count with it. A frame the file lost keeps its time; a moved picture steps past it."""
    pictures = sorted((i for i, p in enumerate(packets) if p.shown and p.timed), key=lambda i: packets[i].pts)
    taken = set(lost)
    retimed = list(packets)
    previous = None
    for i in pictures:
        stamp = packets[i].pts
        if previous is not None and stamp <= previous:
            stamp = previous + 1
            while stamp in taken:
                stamp += 1
            retimed[i] = replace(packets[i], pts=stamp)
        previous = stamp
    return retimed


def _nominal_duration(video) -> int:
    rate = video.average_rate or video.guessed_rate or Fraction(25)
    tb = video.time_base or Fraction(1, 90000)
    return max(1, round(1 / (rate * tb)))


def _video_packets(container, video, errors: list[str] | None = None) -> Iterator[av.Packet]:
    """The video stream's real packets in decode order (PyAV's empty flush packets dropped).
    Reading ends early, not with an error, where the demuxer cannot read on (no demuxer
    tried on damaged MP4, MPEG-TS, Matroska, WebM, AVI, FLV, NUT or MPEG-PS files raised
    one: each resyncs by itself); ``errors``, when given, gets the reason."""
    try:
        for packet in container.demux(video):
            if packet.size:
                yield packet
    except av.error.FFmpegError as exc:
        if errors is not None:
            errors.append(_reason(exc))


def _read_packet_table(container, video, guard: _ScanGuard) -> tuple[list[PacketInfo], bool]:
    """The packet table, and whether the file shows damage (a demuxer error, a packet
    flagged corrupt, or one that lost the timestamps the others have)."""
    nominal = _nominal_duration(video)
    table: list[PacketInfo] = []
    errors: list[str] = []
    last_stamp = None
    for packet in _video_packets(container, video, errors):
        guard.count(packet)
        pts = packet.pts if packet.pts is not None else packet.dts
        entry = PacketInfo(pts=pts, duration=packet.duration or nominal, keyframe=packet.is_keyframe,
                           shown=not packet.is_discard, damaged=packet.is_corrupt)
        if pts is None and last_stamp is None:
            # Raw streams carry no timestamps: count frames at the nominal rate.
            entry.pts, entry.timed = len(table) * nominal, False
        elif pts is None:
            # A damaged packet lost its timestamps: nobody can say where it is shown, so it is
            # not counted; its data still goes to the decoder (later pictures may need it).
            # split_segments writes it just after the packet before.
            entry.pts, entry.shown, entry.damaged = last_stamp + 1, False, True
        else:
            last_stamp = packet.dts if packet.dts is not None else pts
        table.append(entry)
    if not table:
        raise MediaError(f"the video stream holds no frames{f' ({errors[-1]})' if errors else ''}")
    return table, bool(errors) or any(p.damaged for p in table)


def _beyond_end(video, file_size: int) -> int:
    """How many frames the container's index lists past the end of the file: a recording
    cut short (a power cut, a full disk) whose index came first (MP4's moov) keeps the index,
    not the data. Only an index of every frame counts (Matroska's lists keyframes only)."""
    entries = video.index_entries
    if not video.frames or len(entries) != video.frames:
        return 0
    return sum(1 for entry in entries if entry.size and entry.pos >= file_size)


def _recording_end(shown: list[PacketInfo], lost: list[int]) -> int:
    """Where the last frame ends; a lost frame lasts as long as the last one present."""
    last = max(shown, key=lambda p: p.pts + p.duration)
    return max(last.pts + last.duration, max(lost, default=last.pts) + last.duration)


REORDER_REACH = 16


def _lost_frames(packets: list[PacketInfo], beyond_end: int, damaged: bool, listed: int = 0) -> list[int]:
    """The times of the frames the file lost. A damaged stretch of a steady-rate stream
    (MPEG-TS, say) loses whole frame intervals between two timestamps; a file cut short
    loses what its index lists past the end (``listed``: how many frames it lists), continued
    at the frame interval. A stream that varies its rate, or skips frames without damage,
    loses nothing here: no gap is taken for a lost frame without the damage to show for it."""
    if not (damaged or beyond_end) or not all(p.timed for p in packets):
        return []
    shown = sorted(p.pts for p in packets if p.shown)
    steps = [b - a for a, b in zip(shown, shown[1:])]
    if not steps:
        return []
    interval = sorted(steps)[len(steps) // 2]
    steady = interval > 0 and sum(abs(s - interval) * 10 <= interval for s in steps) >= 0.9 * len(steps)
    # A cut in decode order leaves gaps only among the last pictures present (a B-frame's
    # reference lies at most 16 pictures ahead in H.264): before those, one interval each.
    on_grid = interval > 0 and all(s >= interval and _whole_steps(s, interval) for s in steps) and all(
        abs(s - interval) * 10 <= interval for s in steps[:-REORDER_REACH])
    if beyond_end and listed and on_grid:
        return _cut_from_the_grid(shown, interval, listed)
    lost = []
    if damaged and steady:
        for a, step in zip(shown, steps):
            whole = round(step / interval)
            if whole >= 2 and _whole_steps(step, interval):
                lost += [a + k * interval for k in range(1, whole)]
    return lost + [shown[-1] + k * max(1, interval) for k in range(1, beyond_end + 1)]


def _whole_steps(step: int, interval: int) -> bool:
    """Whether ``step`` is a whole number of frame intervals (within a tenth of one)."""
    return abs(step - round(step / interval) * interval) * 10 <= interval


def _cut_from_the_grid(shown: list[int], interval: int, listed: int) -> list[int]:
    """A steady stream cut short whose index lists all ``listed`` frames: the file is cut in
    decode order, so with B-frames pictures shown before the last one present are lost too.
    The lost are the places on the frame grid that no picture present takes, as many as the
    index lists beyond those present (a picture within a tenth of an interval takes its place)."""
    lost: list[int] = []
    place = shown[0]
    while len(lost) < listed - len(shown):
        nearest = bisect.bisect_left(shown, place - interval // 10)
        if nearest == len(shown) or shown[nearest] > place + interval // 10:
            lost.append(place)
        place += interval
    return lost


def _check_decodes(path: Path, packets: list[PacketInfo], limits: Limits,
                   started: float) -> tuple[list[PacketInfo], int]:
    """The stream must decode to a picture (past any damage before the first one); the
    packet table comes back with the pictures no decoder shows marked, and the rotation
    the pictures carry (``MediaInfo.rotation``). A recording cut from
    a running stream can begin with pictures that reference what was cut off: anything
    before its first keyframe, or the pictures an open GOP shows before its keyframe. The
    decoder drops them, so nothing may count them. Only such a start is decoded through its
    first GOP to find them; any other, to one picture."""
    gop_end = next((i for i, p in enumerate(packets) if p.keyframe and i > 0), len(packets))
    first = packets[:gop_end]
    cut_start = all(p.timed for p in first) and not (
        first[0].keyframe and all(p.pts >= first[0].pts for p in first))
    shown: set[int] = set()
    failure = None
    rotation = None
    with _open(path, probe_pictures=False) as container:
        stream = container.streams.video[0]
        for position, (_, frames, failed) in enumerate(_decode_packets(container, stream)):
            shown.update(frame.pts for frame in frames)
            if frames and rotation is None:
                rotation = _upright_turn(frames[0].rotation)
            failure = failed or failure
            if cut_start and position >= gop_end:     # the first GOP and one packet more were fed:
                shown.update(frame.pts for frame in _decode(lambda: _flush(stream))[0])
                break                                  # what the decoder holds of them comes out
            if shown and not cut_start:
                break
            if time.monotonic() - started > limits.budget_s:
                raise MediaError(f"no picture decoded within the {limits.budget_s:g} s allowed "
                                 f"({failure or 'none yet'})")
    if not shown:
        raise MediaError(f"the video stream does not decode ({failure or 'no picture in it'})")
    rotation = rotation or 0
    if not cut_start or None in shown:   # pictures without times: nothing to match them by
        return packets, rotation
    if failure or any(p.damaged for p in first):
        return packets, rotation    # a damaged start, not a cut one: its pictures count (as damaged)
    return [replace(p, shown=p.shown and p.pts in shown) if i < gop_end else p
            for i, p in enumerate(packets)], rotation


def _upright_turn(degrees: float) -> int:
    """A display matrix's rotation (PyAV: counter-clockwise, -180..180) as 0, 90, 180 or 270;
    a rotation between right angles (no phone writes one) is taken to the nearest."""
    return round(degrees / 90) % 4 * 90


# --- split -------------------------------------------------------------------------------

def segment_length(duration_s: float, target_s: float, min_segments: int = 1, max_segments: int = 0,
                   longest_s: float = 0.0) -> float:
    """How long a recording's segments are: ``target_s``, but shorter (down to 1 s) where that
    makes fewer than ``min_segments`` pieces for the workers to share, and longer where it
    makes more than ``max_segments`` (0: no such bound), up to ``longest_s`` (0: no such
    bound; never below ``target_s``). A segment costs its task, a detector and tracks that
    start afresh, its file's opens and GOP decoded before its first frame, whatever its
    length (measured in docs/benchmarks.md, "Segment length": 8-11 % of the farm CPU
    of a quiet camera's 10 minutes, in 32 segments instead of 150). The ceiling keeps one segment's task well inside
    its time limit and a lost worker's redone work small on long recordings."""
    length = min(target_s, max(1.0, duration_s / max(1, min_segments)))
    if max_segments:
        length = max(length, min(duration_s / max_segments, max(longest_s or float("inf"), target_s)))
    return length


def plan_segments(info: MediaInfo, target_s: float, min_segments: int = 1, max_segments: int = 0,
                  longest_s: float = 0.0, keyframe_snap: float = 0.0) -> list[SegmentPlan]:
    """Cut a recording into segments of equal frame counts, about ``segment_length`` each
    (``target_s``, finer for short recordings, longer for long ones). Equal pieces finish
    together: cutting on keyframes only left one worker idle for up to a GOP at the end of
    every job.

    Segment files are still remuxed from keyframes, never re-encoded: a segment that starts
    mid-GOP carries its GOP from the keyframe on, and its task decodes and drops the frames
    before its own (``segment_frames``), which costs a few percent of analysing them. Where a
    GOP spans two segments or more (long-GOP cameras), or the stream has no timestamps to
    tell frames apart by, the cut moves to the nearest keyframe instead. Frames the file
    lost (``info.lost``) belong to the GOP they fall in by time; no segment is made of lost
    frames only (it would have no picture to show for them).

    ``keyframe_snap`` (a fraction of a segment's frames, 0: off) moves a mid-GOP cut to a
    keyframe that lies within that reach, so that neither of its segment's tasks (the analysis,
    the drawing) decodes the frames before it. The count stays: a cut never moves onto or past
    another. The last segments (``_equal_tail``) keep their equal cuts: the workers pull them
    last, and their sizes decide how long one worker waits for another at the end of the job.
    """
    packets = info.packets
    gop_starts = [0] + [i for i, p in enumerate(packets) if p.keyframe and i > 0]
    gop_pts = [sorted(p.pts for p in packets[a:b] if p.shown)
               for a, b in zip(gop_starts, gop_starts[1:] + [len(packets)])]
    _add_lost_frames(gop_pts, info.lost)
    frame_pts = [pts for gop in gop_pts for pts in gop]
    gop_first_frame = list(itertools.accumulate((len(g) for g in gop_pts), initial=0))  # ends with N
    total = len(frame_pts)
    target_s = segment_length(info.duration_s, target_s, min_segments, max_segments, longest_s)
    count = max(1, min(total, round(info.duration_s / target_s)))
    frames_each = total / count
    mid_gop_ok = all(p.timed for p in packets)

    # The frame at which each GOP's keyframe is shown: an open GOP shows a few pictures before
    # it (decoded after it, from the GOP before); elsewhere it is the GOP's first frame.
    keyframe_at = [gop_first_frame[g] + bisect.bisect_left(gop_pts[g], packets[start].pts)
                   for g, start in enumerate(gop_starts)]

    def decodable_from(frame: int) -> int:
        """The GOP to decode a frame from: the last one whose keyframe is shown at or before it."""
        return max(0, bisect.bisect_right(keyframe_at, frame) - 1)

    def gop_around(frame: int) -> tuple[int, int]:
        """The frames at which the GOP to decode ``frame`` from and the next one start (or the end)."""
        gop = decodable_from(frame)
        return keyframe_at[gop], keyframe_at[gop + 1] if gop + 1 < len(keyframe_at) else total

    snapping_cuts = count - _equal_tail(count) - 1  # cuts 1 .. this one may move to a keyframe
    placed: dict[int, bool] = {}    # each cut where equal pieces or the long-GOP rule put it -> may it snap
    for i in range(1, count):
        cut = round(i * frames_each)
        first, end = gop_around(cut)
        long_gop = not mid_gop_ok or end - first >= 2 * frames_each
        if long_gop:
            cut = first if cut - first <= end - cut or end == total else end
        if 0 < cut < total:
            placed[cut] = placed.get(cut, False) or (not long_gop and i <= snapping_cuts)
    # Snapped only once every cut is placed, and only between its placed neighbours: a cut that
    # the long-GOP rule moved back onto a keyframe is not known until it is placed, and a snap
    # onto that keyframe would merge two segments into one.
    cuts = sorted(placed)
    for k, cut in enumerate(cuts):
        if keyframe_snap and placed[cut]:
            first, end = gop_around(cut)
            cuts[k] = _snapped(cut, [first] + ([end] if end < total else []), keyframe_snap * frames_each,
                               after=cuts[k - 1] if k else 0, before=cuts[k + 1] if k + 1 < len(cuts) else total)
    bounds = _without_lost_only(frame_pts, [0, *cuts, total], info.lost)
    recording_end = _recording_end([p for p in packets if p.shown], info.lost)
    # A segment file ends with the last packet (in decode order) of its own frames: what comes
    # after it in its GOP is not needed to decode them (a picture only references pictures
    # decoded before it), so it is neither copied nor read.
    decode_index = {p.pts: i for i, p in enumerate(packets) if p.shown}
    plans = []
    for index, (a, b) in enumerate(zip(bounds, bounds[1:])):
        plans.append(SegmentPlan(
            index=index, start_frame=a, frames=b - a, pts=frame_pts[a:b],
            end_pts=frame_pts[b] if b < total else recording_end,
            first_packet=gop_starts[decodable_from(a)],
            end_packet=1 + max(decode_index[pts] for pts in frame_pts[a:b] if pts in decode_index)))
    return plans


# Segments at the end of a recording that keep equal cuts under ``keyframe_snap``: at least
# this many, and a quarter of a long recording's.
_EQUAL_TAIL = 2


def _equal_tail(count: int) -> int:
    """How many of ``count`` segments, the last ones, keep their equal cuts (``plan_segments``)."""
    return max(_EQUAL_TAIL, count // 4)


def _snapped(cut: int, keyframes: list[int], reach: float, after: int, before: int) -> int:
    """The nearest of ``keyframes`` (the frames at which the cut's GOP and the next one start)
    within ``reach`` frames of ``cut`` and strictly between the cut before (``after``, already
    snapped) and the cut after (``before``, as placed), so that no segment is lost; else ``cut``
    itself."""
    for keyframe in sorted(keyframes, key=lambda k: abs(k - cut)):
        if abs(keyframe - cut) <= reach and after < keyframe < before:
            return keyframe
    return cut


def _add_lost_frames(gop_pts: list[list[int]], lost: list[int]) -> None:
    """Put each lost frame's time into the GOP whose pictures it falls among (the last one
    starting at or before it)."""
    shown = [(g[0], index) for index, g in enumerate(gop_pts) if g]
    starts = [first for first, _ in shown]
    for stamp in lost:
        _, gop = shown[max(0, bisect.bisect_right(starts, stamp) - 1)]
        bisect.insort(gop_pts[gop], stamp)


def _without_lost_only(frame_pts: list[int], bounds: list[int], lost: list[int]) -> list[int]:
    """Segment bounds with every segment of lost frames only joined to the one before."""
    missing = set(lost)
    if not missing:
        return bounds
    kept = [bounds[0]]
    for start, end in zip(bounds[1:-1], bounds[2:]):
        if not all(pts in missing for pts in frame_pts[start:end]):
            kept.append(start)
    return kept + [bounds[-1]]


# A segment file's stream tag: the turn (``MediaInfo.rotation``) that shows its pictures upright.
ROTATION_TAG = "vidfarm_rotation"


def rotation_of(stream) -> int:
    """The turn a segment file's pictures take to stand upright (``ROTATION_TAG``)."""
    return int(stream.metadata.get(ROTATION_TAG, 0))


def split_segments(path: Path | str, info: MediaInfo, plans: list[SegmentPlan], out_dir: Path) -> list[Path]:
    """Remux the source's video packets into one NUT file per plan (no re-encode). Plans that
    share a GOP each get a copy of the part they need, so one pass writes a few files at once.
    Every file carries the source's timestamps, shifted by ``info.pts_offset``; a raw stream's
    packets (which have none) carry the ones ``probe`` counted for them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = [out_dir / f"{plan.index:05d}.nut" for plan in plans]
    waiting = list(zip(plans, outputs))[::-1]          # popped in packet order
    # The upload is probed in full: a remux copies its stream parameters, which only probing
    # completes (without it NUT refuses an odd-sized 4:4:4 stream).
    with _open(path) as source, ExitStack() as files:
        video = source.streams.video[0]
        writing: list[tuple[SegmentPlan, av.container.OutputContainer, av.video.stream.VideoStream]] = []
        last_dts = None
        for position, packet in enumerate(_video_packets(source, video)):
            if position >= len(info.packets):     # only what the probe read (damage read alike)
                break
            while waiting and waiting[-1][0].first_packet <= position:
                plan, target = waiting.pop()
                # Timestamps move only by the offset, the same for every file: FFmpeg's own
                # shift (a B-frame stream decodes from before 0) would differ from file to
                # file and move frames against the source times segment_frames selects by.
                out = files.enter_context(av.open(str(target), "w", format="nut",
                                                  options={"avoid_negative_ts": "disabled"}))
                stream = _stream_like(out, video)
                if info.rotation:   # NUT keeps no display matrix: the file says it for its readers
                    stream.metadata[ROTATION_TAG] = str(info.rotation)
                writing.append((plan, out, stream))
            entry = info.packets[position]
            # A raw stream's packets (NUT would number each file's frames from 0) and a damaged
            # one that lost its timestamps take the ones probe gave them.
            if not entry.timed or packet.pts is None and packet.dts is None:
                packet.pts = packet.dts = entry.pts
            elif packet.pts is not None:
                packet.pts = entry.pts      # probe moved a repeated time on (_distinct_times)
            last_dts = _decode_time_after(packet, last_dts, info.tb)
            if info.pts_offset:
                packet.pts += info.pts_offset
                if packet.dts is not None:
                    packet.dts += info.pts_offset
            for _, out, stream in writing:
                packet.stream = stream
                _mux_cut(out, packet, position)
            for done in [w for w in writing if w[0].end_packet <= position + 1]:
                done[1].close()
                writing.remove(done)
    return outputs


def _decode_time_after(packet: av.Packet, last_dts: int | None, tb: Fraction) -> int | None:
    """Give a packet a decode time after ``last_dts`` (NUT refuses a repeat, which comes with a
    repeated presentation time) and at most its presentation time; the decode time it ends with."""
    if packet.dts is None:
        return last_dts
    if last_dts is not None and packet.dts <= last_dts:
        packet.dts = last_dts + 1
        if packet.pts is not None and packet.pts < packet.dts:
            raise MediaError(f"its frames' timestamps run backwards: a frame shown at {_seconds(packet.pts, tb)} "
                             f"comes after one decoded at {_seconds(last_dts, tb)}")
    return packet.dts


def _mux_cut(out: av.container.OutputContainer, packet: av.Packet, position: int) -> None:
    """Write a packet to a segment file; a packet the muxer refuses fails the job in a line."""
    try:
        out.mux(packet)
    except av.error.FFmpegError as exc:
        raise MediaError(f"the video cannot be cut into segments: its frame {position + 1} (in decode order) "
                         f"was refused ({_reason(exc)})") from None


def _stream_like(out: av.container.OutputContainer, video: av.video.stream.VideoStream):
    """A stream to remux ``video`` into. PyAV builds it around an encoder named like the
    source's decoder; a codec whose decoder has a name of its own (AV1's libdav1d) has no such
    encoder, and then the stream copies the source's codec parameters as they are."""
    try:
        return out.add_stream_from_template(video)
    except av.codec.codec.UnknownCodecError:
        return out.add_stream_from_template(video, opaque=True)


# --- decode / encode ---------------------------------------------------------------------

def _decode(step) -> tuple[list[av.VideoFrame], str | None]:
    """The pictures one decoding step gives, or the reason it gave none."""
    try:
        return step(), None
    except av.error.FFmpegError as exc:
        return [], _reason(exc)


def _decode_packets(container, stream) -> Iterator[tuple[av.Packet | None, list[av.VideoFrame], str | None]]:
    """Each video packet with the pictures decoding it gave, or the reason it did not decode;
    last, packet None: what the decoder still held. Decoding carries on past a packet that
    does not decode: the decoder picks up at the next picture it can decode (at the latest
    the next keyframe), so one damaged stretch costs only the pictures that depend on it."""
    for packet in _video_packets(container, stream):
        yield packet, *_decode(packet.decode)
    yield None, *_decode(lambda: _flush(stream))


def _flush(stream) -> list[av.VideoFrame]:
    """The pictures a decoder still holds at the end (PyAV leaves their time base unset)."""
    frames = stream.decode(None)
    for frame in frames:
        frame.time_base = frame.time_base or stream.time_base
    return frames


def decode_frames(path: Path | str, threads: int = 0) -> Iterator[av.VideoFrame]:
    """Decoded frames of a file's first video stream, in presentation order (what decodes:
    a damaged packet is skipped; ``segment_frames`` accounts for what is lost)."""
    with _open(path, probe_pictures=False) as container:
        stream = _threaded(container.streams.video[0], threads)
        for _, frames, _ in _decode_packets(container, stream):
            yield from frames


def _threaded(stream, threads: int):
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = threads
    return stream


# Why a frame of a segment is not the source's intact picture (SegmentFrame.damage).
MISSING = "missing from the file"
CONCEALED = "decoded with errors concealed"
UNDECODABLE = "did not decode"
# Until the next keyframe, pictures reference the damaged one: they decode, but wrongly where
# anything moved (a face, say), so they count as damaged too.
PROPAGATED = "decoded from a damaged picture"


@dataclass
class SegmentFrame:
    """One frame of a segment, as the analysis (and whatever draws on it) takes it."""
    frame: av.VideoFrame            # the picture to show for it
    damage: str | None = None       # why it is not the source's intact picture; None: it is
    repeated: bool = False          # its own picture was lost: a neighbour's stands in


def at_size(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """``frame`` itself when it is ``width`` x ``height``; else a new frame scaled to it, with
    its timestamp: a recording holds pictures of one size, whatever its stream switched to."""
    if (frame.width, frame.height) == (width, height):
        return frame
    return frame.reformat(width=width, height=height)     # keeps pts and time base


def upright(frame: av.VideoFrame, turn: int) -> av.VideoFrame:
    """A new frame: ``frame`` turned ``turn`` degrees counter-clockwise (90, 180 or 270), with
    its timestamp. 4:2:0 frames turn plane by plane; other formats are converted to 4:2:0 first
    (as the encoder would), except single-plane ones (grey, a thermal camera's 16-bit values,
    RGB), which turn as they are."""
    k = turn // 90
    if frame.format.name not in ("yuv420p", "yuvj420p") and len(frame.planes) == 1:
        turned = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(frame.to_ndarray(), k)),
                                            format=frame.format.name)
    else:
        source = frame if frame.format.name in ("yuv420p", "yuvj420p") else frame.reformat(format="yuv420p")
        width, height = (frame.height, frame.width) if k % 2 else (frame.width, frame.height)
        turned = av.VideoFrame(width, height, source.format.name)
        for plane, target in zip(yuv_planes(source), yuv_planes(turned)):
            np.copyto(target, np.rot90(plane, k))
    # A new frame is untagged: a full-range picture in plain yuv420p (a VP9 or AV1 camera's)
    # would then be read as limited range (its BGR picture, the motion stage's thumbnail).
    turned.color_range, turned.colorspace = frame.color_range, frame.colorspace
    turned.pts, turned.time_base = frame.pts, frame.time_base
    return turned


def segment_frames(path: Path | str, pts: list[int], time_base: Fraction, threads: int = 0,
                   pts_offset: int = 0, timed: bool = True) -> Iterator[SegmentFrame]:
    """A segment file's own frames: one ``SegmentFrame`` per timestamp of ``pts`` (its
    frames' presentation times in the source time base), in order, whatever the damage.

    A segment that starts mid-GOP holds the GOP's earlier frames too (its pictures reference
    them); they are decoded and dropped here. Decoding carries on past damage; a picture the
    decoder lost (or a frame the file lost) is filled with the last good picture (before the
    first one: the first one; where none decodes at all: black), so the frame count and the
    timing stay the source's, and its ``damage`` says why; so does every picture after it up
    to the next keyframe (or intra picture), where the decoder is in step again. The
    decoder's concealed pictures are kept, marked the same way. ``pts_offset``: the shift
    ``split_segments`` gave the file's timestamps (``MediaInfo.pts_offset``). ``timed``
    (``MediaInfo.timed``): pictures are matched to ``pts`` by their times; else by order (a
    stream without presentation times), and then the pictures lost are filled at the end.
    The pictures come at the recording's size, upright: a picture of another size (a camera
    that changed its resolution mid-stream) is scaled to the size the file's header gives (the
    recording's first picture's, ``MediaInfo``), then turned as the file's ``ROTATION_TAG`` says.
    """
    slot_of = {stamp: slot for slot, stamp in enumerate(pts)}
    first = (pts[0] + pts_offset) * time_base - Fraction(1, 2000)   # half a millisecond: rounding slack
    carried: set[int] = set()       # frame times the file's packets carry
    failure = None                  # why the latest packet that did not decode did not
    waiting: list[str] = []         # why each lost frame not yet filled was lost
    good = None                     # the last intact picture
    tainted = False                 # a picture was lost or concealed since the last keyframe
    next_slot = 0

    def source_time(stamp: int, stamp_base: Fraction) -> int:
        if stamp_base == time_base:     # as good as always: no Fraction arithmetic per frame
            return stamp - pts_offset
        return round(stamp * stamp_base / time_base) - pts_offset

    def placed(frame: av.VideoFrame) -> int | None:
        """The slot a decoded picture fills: None for one that is not this segment's."""
        if frame.pts is None:
            return next_slot
        if not timed:
            return next_slot if next_slot or frame.pts * frame.time_base >= first else None
        slot = slot_of.get(source_time(frame.pts, frame.time_base))
        return None if slot is None or slot < next_slot else slot

    def lost(slot: int) -> str:
        if timed and pts[slot] not in carried:
            return MISSING
        return f"{UNDECODABLE} ({failure})" if failure else UNDECODABLE

    with _open(path, probe_pictures=False) as container:
        stream = _threaded(container.streams.video[0], threads)
        turn, size = rotation_of(stream), (stream.codec_context.width, stream.codec_context.height)

        def shaped(picture: av.VideoFrame) -> av.VideoFrame:
            """At the recording's size (the file header's), then upright (``ROTATION_TAG``)."""
            picture = at_size(picture, *size) if size[0] and size[1] else picture
            return upright(picture, turn) if turn else picture

        for packet, frames, failed in _decode_packets(container, stream):
            if packet is not None and packet.pts is not None:
                carried.add(source_time(packet.pts, packet.time_base))
            failure = failed or failure
            # A picture that did not decode before this segment's first frame (a mid-GOP cut
            # decodes its GOP's start, the segment before's): its own frames reference it.
            tainted = tainted or bool(failed and next_slot == 0)
            for frame in frames:
                slot = placed(frame)
                if slot is None:
                    continue
                waiting += [lost(s) for s in range(next_slot, slot)]
                stand_in = good if good is not None else shaped(frame)
                yield from (SegmentFrame(stand_in, damage, repeated=True) for damage in waiting)
                tainted = (tainted or bool(waiting)) and not (frame.key_frame or frame.pict_type == _INTRA)
                waiting.clear()
                damage = CONCEALED if frame.is_corrupt else PROPAGATED if tainted else None
                tainted = damage is not None
                picture = shaped(frame)
                yield SegmentFrame(picture, damage)
                good = picture if damage is None else good
                next_slot = slot + 1
                if next_slot == len(pts):
                    return
        waiting += [lost(s) for s in range(next_slot, len(pts))]
        stand_in = good if good is not None else shaped(_black(stream.codec_context))
        yield from (SegmentFrame(stand_in, damage, repeated=True) for damage in waiting)


_INTRA = av.video.frame.PictureType.I


def _black(ctx) -> av.VideoFrame:
    """What stands in for a segment none of whose pictures decodes."""
    return av.VideoFrame.from_ndarray(np.zeros((ctx.height, ctx.width, 3), np.uint8), format="bgr24")


def yuv_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views (writable) of a 4:2:0 frame's Y, U and V planes, without their rows' padding."""
    return tuple(np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:plane.height, :plane.width]
                 for plane in frame.planes)


class H264Writer:
    """Encodes frames to an H.264 MP4 with caller-given timestamps.

    B-frames are off so that decode order equals presentation order: segments then join by
    plain remux with monotonic timestamps. Decoded 4:2:0 frames of the right size go to the
    encoder untouched; anything else is converted once. Odd frame sizes are padded by one
    pixel (4:2:0 needs even sizes); coordinates are unchanged because padding goes right and
    bottom.
    """

    def __init__(self, path: Path, width: int, height: int, time_base: Fraction, fps: float,
                 preset: str = "veryfast", crf: int = 23, threads: int = 0, params: str = ""):
        """params: extra x264 options, ``key=value:key=value`` (x264's --x264-params)."""
        self.width, self.height = width + width % 2, height + height % 2
        self.time_base = time_base
        self.container = av.open(str(path), "w", format="mp4")
        stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(100000) or 25)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.codec_context.max_b_frames = 0
        stream.codec_context.thread_count = threads
        stream.options = {"preset": preset, "crf": str(crf), **({"x264-params": params} if params else {})}
        self.stream = stream
        self.frames = 0

    def fits(self, frame: av.VideoFrame) -> bool:
        """Whether a decoded frame can go to the encoder as it is."""
        return frame.format.name == "yuv420p" and (frame.width, frame.height) == (self.width, self.height)

    def canvas(self, picture: av.VideoFrame | np.ndarray) -> av.VideoFrame:
        """A new 4:2:0 frame, at the encoder's size, to draw on (:func:`yuv_planes`): a copy of
        a decoded frame that ``fits``, or a BGR image converted (which the caller converts
        however suits the source, e.g. a thermal frame's false colours). Never draw on a
        decoded frame: the decoder may reference it. One copy, plane by plane, rather than
        ``to_ndarray`` and ``from_ndarray`` again (two: 0.9 against 0.6 ms a 720p frame)."""
        if isinstance(picture, av.VideoFrame):
            copy = av.VideoFrame(picture.width, picture.height, "yuv420p")
            for source, target in zip(yuv_planes(picture), yuv_planes(copy)):
                np.copyto(target, source)
            return copy
        h, w = picture.shape[:2]
        if (w, h) != (self.width, self.height):
            picture = np.pad(picture, ((0, self.height - h), (0, self.width - w), (0, 0)), mode="edge")
        return av.VideoFrame.from_ndarray(cv2.cvtColor(picture, cv2.COLOR_BGR2YUV_I420), format="yuv420p")

    def write(self, picture: av.VideoFrame, pts: int) -> None:
        """Encode a decoded frame that ``fits``, or a ``canvas``, at timestamp pts."""
        self.container.mux(self.encode(picture, pts))

    def encode(self, frame: av.VideoFrame, pts: int, keyframe: bool = False) -> list[av.Packet]:
        """``write`` without the muxing: the packets the encoder gives back for this frame
        (it may hold frames back). ``keyframe``: make this frame an IDR picture."""
        if not self.fits(frame):
            raise ValueError("convert frames that do not fit with canvas() first")
        frame.pts, frame.time_base = pts, self.time_base
        # x264 places keyframes, not the source (unless asked: IDR, open GOPs being off)
        frame.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        self.frames += 1
        return self.stream.encode(frame)

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.container.close()

    def __enter__(self) -> "H264Writer":
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()
        else:
            self.container.close()


# --- concat ------------------------------------------------------------------------------

@dataclass
class SegmentTiming:
    pts: list[int]
    end_pts: int


def concat_segments(segment_files: list[Path], timings: list[SegmentTiming], time_base: Fraction,
                    out_path: Path, audio_source: Path | None = None) -> int:
    """Join encoded segments by remux, in order, restoring the source's timestamps, and copy
    the audio of ``audio_source`` (if any) alongside. Returns the number of video frames."""
    if not segment_files or len(segment_files) != len(timings):
        raise ValueError("need one timing per segment file")
    with ExitStack() as opened:
        inputs = [opened.enter_context(_open(f, probe_pictures=False)) for f in segment_files]
        source = opened.enter_context(_open(audio_source)) if audio_source else None
        return _concat(inputs, source, timings, time_base, out_path)


def _concat(inputs, source, timings: list[SegmentTiming], time_base: Fraction, out_path: Path) -> int:
    template = inputs[0].streams.video[0]
    for other in inputs[1:]:
        if other.streams.video[0].codec_context.extradata != template.codec_context.extradata:
            raise MediaError("segments were encoded with different codec settings")
    with av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        out_video = out.add_stream_from_template(template)
        out_video.time_base = time_base
        streams = [_retimed_video(inputs, timings, time_base, out_video)]
        if source is not None and source.streams.audio:
            audio_in = source.streams.audio[0]
            out_audio = out.add_stream_from_template(audio_in)
            streams.append(_copied(source, audio_in, out_audio))
        written = 0
        for _, packet in heapq.merge(*(_timed(stream) for stream in streams), key=lambda timed: timed[0]):
            out.mux(packet)
            written += packet.stream is out_video
    return written


def _timed(packets: Iterator[av.Packet]) -> Iterator[tuple[float, av.Packet]]:
    """(decode time in seconds, packet): the key that interleaves audio and video. A float
    is exact enough to order packets and, per packet, far cheaper than PyAV's Fraction."""
    scale = None
    for packet in packets:
        if scale is None:
            scale = float(packet.time_base)
        yield packet.dts * scale, packet


def _retimed_video(inputs, timings: list[SegmentTiming], time_base: Fraction, out_stream
                   ) -> Iterator[av.Packet]:
    for container, timing in zip(inputs, timings):
        stream = container.streams.video[0]
        bounds = timing.pts + [timing.end_pts]
        count = 0
        for packet in _video_packets(container, stream):
            if count >= len(timing.pts):
                raise MediaError("an encoded segment has more frames than its source segment")
            packet.stream = out_stream
            packet.time_base = time_base
            packet.pts = packet.dts = bounds[count]
            packet.duration = bounds[count + 1] - bounds[count]
            count += 1
            yield packet
        if count != len(timing.pts):
            raise MediaError(f"an encoded segment has {count} frames, its source {len(timing.pts)}")


def _copied(container, stream, out_stream) -> Iterator[av.Packet]:
    for packet in container.demux(stream):
        if packet.size and packet.dts is not None:
            packet.stream = out_stream
            yield packet


def frame_times(pts: Iterable[int], start_pts: int, time_base: Fraction) -> list[float]:
    return [round(float((p - start_pts) * time_base), 6) for p in pts]
