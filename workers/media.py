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
from contextlib import ExitStack
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import cv2
import numpy as np

# Demuxers that read single pictures: such a file is a photo, not a recording.
_IMAGE_DEMUXERS = ("image2", "_pipe", "apng", "webp")


class MediaError(ValueError):
    """A recording vidfarm cannot process. The message is one line, fit to show a user."""


@dataclass
class PacketInfo:
    pts: int
    duration: int
    keyframe: bool
    timed: bool = True      # it carried the time it is shown (raw streams: counted; see probe)
    shown: bool = True      # False: pre-roll an edit list cuts (decoded as a reference, never shown)


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
    packets: list[PacketInfo] = field(default_factory=list, repr=False)

    @property
    def tb(self) -> Fraction:
        return Fraction(*self.time_base)

    def summary(self) -> dict:
        """Everything but the packet table (asdict would first deep-copy every packet of it:
        seconds for a long recording)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "packets"}


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
    min_side: int = 16
    max_width: int = 7680
    max_height: int = 4320
    max_duration_s: float = 6 * 3600


def _open(path: Path | str, probe_pictures: bool = True) -> av.container.InputContainer:
    """Opening a file decodes its first pictures to learn their format: 10-15 ms for a 720p
    H.264 file. ``probe_pictures=False`` skips that where the caller decodes anyway (the
    decoder learns the same) or only remuxes a file vidfarm wrote itself (a segment task's
    input, each segment in the serial stitch). Formats that reveal their streams only by
    probing (MPEG program streams) are probed regardless."""
    try:
        if not probe_pictures:
            try:
                return av.open(str(path), stream_options=[{"skip_frame": "all"}])
            except ValueError as exc:   # PyAV: no streams before probing, per-stream options refused
                if isinstance(exc, av.error.FFmpegError):   # a damaged file: one open is enough
                    raise
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise MediaError(f"not a readable video file ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())


def probe(path: Path | str, limits: Limits | None = None) -> MediaInfo:
    """Read a recording's streams and packet table and check that vidfarm can process it."""
    limits = limits or Limits()
    path = Path(path)
    if path.stat().st_size == 0:
        raise MediaError("the file is empty (0 bytes)")
    with _open(path) as container:
        fmt = container.format.name
        if any(marker in fmt for marker in _IMAGE_DEMUXERS):
            raise MediaError("this is a photo, not a video")
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise MediaError(f"this file holds no video, only {' and '.join(kinds)}")
        video = container.streams.video[0]
        ctx = video.codec_context
        width, height = ctx.width, ctx.height
        if min(width, height) < limits.min_side:
            raise MediaError(f"the picture is too small ({width}x{height} pixels; at least {limits.min_side} "
                             "on each side)")
        if width > limits.max_width or height > limits.max_height:
            raise MediaError(f"the picture is too large ({width}x{height} pixels; at most "
                             f"{limits.max_width}x{limits.max_height})")
        audio = container.streams.audio[0] if container.streams.audio else None
        packets = _read_packet_table(container, video)
        if ctx.has_b_frames and all(a.pts < b.pts for a, b in zip(packets, packets[1:])):
            # Pictures are reordered, yet the times rise in decode order: they are decode times
            # (H.264 with B-frames in AVI), not when each picture is shown. Cut only at keyframes.
            packets = [replace(p, timed=False) for p in packets]
        declared = video.frames
        if declared and len(packets) < declared:
            raise MediaError(f"the file is cut short: only {len(packets)} of its {declared} frames are in it "
                             "(was the copy or upload interrupted?)")
        packets = _check_decodes(path, packets)
        tb = video.time_base or Fraction(1, 90000)
        shown = [p for p in packets if p.shown]
        if not shown:
            raise MediaError("the video holds no pictures to show")
        start = min(p.pts for p in shown)
        end = max(p.pts + p.duration for p in shown)
        duration_s = float((end - start) * tb)
        if duration_s > limits.max_duration_s:
            raise MediaError(f"the recording is too long ({duration_s:.0f} s; at most {limits.max_duration_s:.0f} s)")
        rate = video.average_rate or video.guessed_rate
        fps = float(rate) if rate else (len(shown) / duration_s if duration_s else 0.0)
        return MediaInfo(container=fmt, video_codec=ctx.name, width=width, height=height, fps=fps,
                         time_base=(tb.numerator, tb.denominator), frames=len(shown),
                         start_pts=start, duration_s=duration_s, has_audio=audio is not None,
                         audio_codec=audio.codec_context.name if audio else None,
                         pts_offset=max(0, -min(p.pts for p in packets)), packets=packets)


def _nominal_duration(video) -> int:
    rate = video.average_rate or video.guessed_rate or Fraction(25)
    tb = video.time_base or Fraction(1, 90000)
    return max(1, round(1 / (rate * tb)))


def _video_packets(container, video) -> Iterator[av.Packet]:
    """The video stream's real packets in decode order (PyAV's empty flush packets dropped)."""
    for packet in container.demux(video):
        if packet.size:
            yield packet


def _read_packet_table(container, video) -> list[PacketInfo]:
    nominal = _nominal_duration(video)
    table: list[PacketInfo] = []
    try:
        for packet in _video_packets(container, video):
            pts = packet.pts if packet.pts is not None else packet.dts
            timed = pts is not None
            if not timed:  # raw streams carry no timestamps: count frames at the nominal rate
                pts = len(table) * nominal
            table.append(PacketInfo(pts=pts, duration=packet.duration or nominal,
                                    keyframe=packet.is_keyframe, timed=timed, shown=not packet.is_discard))
    except av.error.FFmpegError as exc:
        raise MediaError(f"the file is damaged after frame {len(table)} ({_reason(exc)})") from None
    if not table:
        raise MediaError("the video stream holds no frames")
    return table


def _check_decodes(path: Path, packets: list[PacketInfo]) -> list[PacketInfo]:
    """The stream must decode to a picture; the packet table comes back with the pictures no
    decoder shows marked. A recording cut from a running stream can begin with pictures that
    reference what was cut off: anything before its first keyframe, or the pictures an open
    GOP shows before its keyframe. The decoder drops them, so nothing may count them. Only
    such a start is decoded through its first GOP to find them; any other, to one picture."""
    gop_end = next((i for i, p in enumerate(packets) if p.keyframe and i > 0), len(packets))
    first = packets[:gop_end]
    cut_start = all(p.timed for p in first) and not (
        first[0].keyframe and all(p.pts >= first[0].pts for p in first))
    shown: set[int] = set()
    with _open(path, probe_pictures=False) as container:
        stream = container.streams.video[0]
        try:
            for position, packet in enumerate(_video_packets(container, stream)):
                if cut_start and position == gop_end:
                    break
                shown.update(frame.pts for frame in packet.decode())
                if shown and not cut_start:
                    return packets
            shown.update(frame.pts for frame in stream.codec_context.decode(None))
        except av.error.FFmpegError as exc:
            if not shown:
                raise MediaError(f"the video stream does not decode ({_reason(exc)})") from None
            return packets          # it decodes; later damage is concealed or repaired
    if not shown:
        raise MediaError("the video stream does not decode (no picture in it)")
    if not cut_start or None in shown:   # pictures without times: nothing to match them by
        return packets
    return [replace(p, shown=p.shown and p.pts in shown) if i < gop_end else p for i, p in enumerate(packets)]


# --- split -------------------------------------------------------------------------------

def plan_segments(info: MediaInfo, target_s: float, min_segments: int = 1) -> list[SegmentPlan]:
    """Cut a recording into segments of equal frame counts, about ``target_s`` each; a short
    recording is cut finer (down to 1 s) to still make ``min_segments`` pieces for the workers
    to share. Equal pieces finish together: cutting on keyframes only left one worker idle
    for up to a GOP at the end of every job.

    Segment files are still remuxed from keyframes, never re-encoded: a segment that starts
    mid-GOP carries its GOP from the keyframe on, and its task decodes and drops the frames
    before its own (``segment_frames``), which costs a few percent of analysing them. Where a
    GOP spans two segments or more (long-GOP cameras), or the stream has no timestamps to
    tell frames apart by, the cut moves to the nearest keyframe instead.
    """
    packets = info.packets
    gop_starts = [0] + [i for i, p in enumerate(packets) if p.keyframe and i > 0]
    gop_pts = [sorted(p.pts for p in packets[a:b] if p.shown)
               for a, b in zip(gop_starts, gop_starts[1:] + [len(packets)])]
    frame_pts = [pts for gop in gop_pts for pts in gop]
    gop_first_frame = list(itertools.accumulate((len(g) for g in gop_pts), initial=0))  # ends with N
    total = len(frame_pts)
    target_s = min(target_s, max(1.0, info.duration_s / max(1, min_segments)))
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

    cuts = set()
    for i in range(1, count):
        cut = round(i * frames_each)
        gop = decodable_from(cut)
        first = keyframe_at[gop]
        end = keyframe_at[gop + 1] if gop + 1 < len(keyframe_at) else total
        if not mid_gop_ok or end - first >= 2 * frames_each:
            cut = first if cut - first <= end - cut or end == total else end
        if 0 < cut < total:
            cuts.add(cut)
    bounds = [0, *sorted(cuts), total]
    recording_end = max(p.pts + p.duration for p in packets if p.shown)
    # A segment file ends with the last packet (in decode order) of its own frames: what comes
    # after it in its GOP is not needed to decode them (a picture only references pictures
    # decoded before it), so it is neither copied nor read.
    decode_index = {p.pts: i for i, p in enumerate(packets)}
    plans = []
    for index, (a, b) in enumerate(zip(bounds, bounds[1:])):
        plans.append(SegmentPlan(
            index=index, start_frame=a, frames=b - a, pts=frame_pts[a:b],
            end_pts=frame_pts[b] if b < total else recording_end,
            first_packet=gop_starts[decodable_from(a)],
            end_packet=1 + max(decode_index[pts] for pts in frame_pts[a:b])))
    return plans


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
        for position, packet in enumerate(_video_packets(source, video)):
            while waiting and waiting[-1][0].first_packet <= position:
                plan, target = waiting.pop()
                # Timestamps move only by the offset, the same for every file: FFmpeg's own
                # shift (a B-frame stream decodes from before 0) would differ from file to
                # file and move frames against the source times segment_frames selects by.
                out = files.enter_context(av.open(str(target), "w", format="nut",
                                                  options={"avoid_negative_ts": "disabled"}))
                writing.append((plan, out, _stream_like(out, video)))
            if not info.packets[position].timed:   # else NUT numbers each file's frames from 0
                packet.pts = packet.dts = info.packets[position].pts
            if info.pts_offset:
                packet.pts += info.pts_offset
                if packet.dts is not None:
                    packet.dts += info.pts_offset
            for _, out, stream in writing:
                packet.stream = stream
                out.mux(packet)
            for done in [w for w in writing if w[0].end_packet <= position + 1]:
                done[1].close()
                writing.remove(done)
    return outputs


def _stream_like(out: av.container.OutputContainer, video: av.video.stream.VideoStream):
    """A stream to remux ``video`` into. PyAV builds it around an encoder named like the
    source's decoder; a codec whose decoder has a name of its own (AV1's libdav1d) has no such
    encoder, and then the stream copies the source's codec parameters as they are."""
    try:
        return out.add_stream_from_template(video)
    except av.codec.codec.UnknownCodecError:
        return out.add_stream_from_template(video, opaque=True)


# --- decode / encode ---------------------------------------------------------------------

def decode_frames(path: Path | str, threads: int = 0) -> Iterator[av.VideoFrame]:
    """Decoded frames of a file's first video stream, in presentation order."""
    with _open(path, probe_pictures=False) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        try:
            yield from container.decode(stream)
        except av.error.FFmpegError as exc:
            raise MediaError(f"a segment failed to decode ({_reason(exc)})") from None


def segment_frames(path: Path | str, first_pts: int, time_base: Fraction, threads: int = 0,
                   pts_offset: int = 0) -> Iterator[av.VideoFrame]:
    """A segment file's own frames: those from ``first_pts`` (source time base) on. A segment
    that starts mid-GOP holds the GOP's earlier frames too (its pictures reference them);
    they are decoded and dropped here. Frames without a timestamp are kept. ``pts_offset``:
    the shift ``split_segments`` gave the file's timestamps (``MediaInfo.pts_offset``)."""
    start = (first_pts + pts_offset) * time_base - Fraction(1, 2000)   # half a millisecond: rounding slack
    decoded = decode_frames(path, threads)
    try:
        for frame in decoded:
            if frame.pts is None or frame.pts * frame.time_base >= start:
                yield frame
                break
        yield from decoded
    finally:
        decoded.close()


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

    def canvas(self, picture: av.VideoFrame | np.ndarray) -> np.ndarray:
        """A writable I420 copy, at the encoder's size, of a decoded frame that ``fits`` or of
        a BGR image (which the caller converts however suits the source, e.g. a thermal
        frame's false colours). Never draw on a decoded frame: the decoder may reference it."""
        if isinstance(picture, av.VideoFrame):
            return picture.to_ndarray()
        h, w = picture.shape[:2]
        if (w, h) != (self.width, self.height):
            picture = np.pad(picture, ((0, self.height - h), (0, self.width - w), (0, 0)), mode="edge")
        return cv2.cvtColor(picture, cv2.COLOR_BGR2YUV_I420)

    def write(self, picture: av.VideoFrame | np.ndarray, pts: int) -> None:
        """Encode a decoded frame that ``fits``, or an I420 canvas, at timestamp pts."""
        if isinstance(picture, np.ndarray):
            frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        elif self.fits(picture):
            frame = picture
        else:
            raise ValueError("convert frames that do not fit with canvas() first")
        frame.pts, frame.time_base = pts, self.time_base
        frame.pict_type = av.video.frame.PictureType.NONE  # let x264 place keyframes, not the source
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

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
