"""Drawing a segment by copying what it need not draw: untouched GOPs are remuxed from the
source, only GOPs with something to draw are decoded, drawn and re-encoded.

Most GOPs of a surveillance recording hold no face. A GOP is copied when it is whole in the
segment, starts with an IDR picture, shows its pictures in decode order (no B-frames: the
join retimes packets in order), and none of its frames has a label. The copied and the
encoded GOPs share one H.264 stream, each with its own parameter sets: every IDR picture of
such a segment carries its SPS/PPS in-band (the source's or the encoder's), so a decoder
switches at each GOP; the MP4's sample entry keeps the encoder's, so every segment of one
video has the same and they still join by remux (``media.concat_segments``).

Only intact recordings are copied this way (``render_segment``'s caller says so): a damaged
GOP's stand-in pictures exist only after decoding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av

from workers import media

COPYABLE_PIX_FMTS = ("yuv420p",)      # what the encoder takes as decoded


@dataclass
class Gop:
    packets: list[av.Packet]       # in decode order
    slots: list[int]               # the segment frame each packet shows (-1: not this segment's)
    copy: bool = False


START = b"\x00\x00\x00\x01"


def is_annexb(extradata: bytes) -> bool:
    """Whether a stream's extradata (and so its packets) is Annex B (start codes), not an
    ``avcC`` record (packets with 4-byte lengths). Packets alone cannot tell: a length of
    256-511 bytes starts like a start code."""
    return extradata.startswith(START) or extradata.startswith(b"\x00\x00\x01")


def nal_units(data: bytes, annexb_framing: bool = False) -> list[bytes]:
    """The NAL units of an H.264 packet: Annex B, or MP4-style with 4-byte lengths."""
    if annexb_framing:
        return _split_start_codes(data)
    units, position = [], 0
    while position + 4 <= len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        units.append(data[position + 4:position + 4 + length])
        position += 4 + length
    return units


def _split_start_codes(data: bytes) -> list[bytes]:
    units, position = [], 0
    while True:
        found = data.find(b"\x00\x00\x01", position)
        if found < 0:
            break
        begin = found + 3
        following = data.find(b"\x00\x00\x01", begin)
        end = len(data) if following < 0 else following
        units.append(data[begin:end].rstrip(b"\x00") if following >= 0 else data[begin:end])
        position = end
    return units


def annexb(data: bytes) -> bytes:
    """An MP4-style packet as Annex B: how the MP4 muxer takes packets for a stream whose
    encoder gave Annex B headers (x264); it writes them back with 4-byte lengths, byte for byte."""
    return b"".join(START + unit for unit in nal_units(data))


def parameter_sets(extradata: bytes) -> bytes:
    """The SPS and PPS of a stream's extradata (an ``avcC`` record or Annex B), as Annex B:
    what goes in-band at the start of a keyframe's packet."""
    if is_annexb(extradata):
        return b"".join(START + unit for unit in _split_start_codes(extradata) if unit[0] & 0x1F in (7, 8))
    units, position = [], 6
    for count_mask in (0x1F, 0xFF):            # SPS count (low 5 bits), then PPS count
        for _ in range(extradata[position - 1] & count_mask):
            length = int.from_bytes(extradata[position:position + 2], "big")
            units.append(extradata[position + 2:position + 2 + length])
            position += 2 + length
        position += 1
    return b"".join(START + unit for unit in units)


def is_idr(packet: av.Packet, annexb_framing: bool = False) -> bool:
    """Whether an H.264 packet's first picture slice is an IDR slice."""
    for unit in nal_units(bytes(packet), annexb_framing):
        if unit and 1 <= unit[0] & 0x1F <= 5:
            return unit[0] & 0x1F == 5
    return False


def copyable_stream(stream: av.video.stream.VideoStream, width: int, height: int) -> bool:
    """H.264 (MP4-style with 4-byte lengths, or Annex B) at the output's size and 4:2:0, its
    pictures upright as stored (none the farm must turn): its GOPs can sit between the encoder's."""
    ctx = stream.codec_context
    extradata = ctx.extradata or b""
    framing = is_annexb(extradata) or (len(extradata) > 6 and extradata[0] == 1 and extradata[4] & 3 == 3)
    return (ctx.name == "h264" and framing and (ctx.width, ctx.height) == (width, height)
            and not media.rotation_of(stream)
            and width % 2 == 0 and height % 2 == 0 and ctx.pix_fmt in COPYABLE_PIX_FMTS)


def plan_gops(container, stream, pts: list[int], time_base: Fraction, pts_offset: int,
              drawn: Callable[[int], bool]) -> list[Gop]:
    """The segment file's packets grouped by keyframe, each GOP marked whether it is copied.
    ``drawn(slot)``: whether that frame has something to draw."""
    slot_of = {stamp: slot for slot, stamp in enumerate(pts)}
    framing = is_annexb(stream.codec_context.extradata or b"")
    own_sps = _sps_units(parameter_sets(stream.codec_context.extradata or b""), True)
    gops: list[Gop] = []
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        if packet.is_keyframe or not gops:
            gops.append(Gop([], []))
        stamp = None if packet.pts is None else round(packet.pts * packet.time_base / time_base) - pts_offset
        gops[-1].packets.append(packet)
        gops[-1].slots.append(slot_of.get(stamp, -1))
    for gop in gops:
        first = gop.slots[0]
        gop.copy = (first >= 0 and gop.slots == list(range(first, first + len(gop.slots)))
                    and gop.packets[0].is_keyframe and is_idr(gop.packets[0], framing)
                    and _sps_units(bytes(gop.packets[0]), framing) <= own_sps
                    and not any(p.is_corrupt for p in gop.packets) and not any(drawn(s) for s in gop.slots))
    return gops


def _sps_units(data: bytes, annexb_framing: bool) -> set[bytes]:
    """The sequence parameter sets (picture size among them) in a packet or parameter sets. A
    GOP whose keyframe brings one the stream's extradata lacks (a camera that changed its
    resolution) is decoded and scaled to the stream's size, not copied at another size."""
    return {unit.rstrip(b"\x00") for unit in nal_units(data, annexb_framing) if unit and unit[0] & 0x1F == 7}


class MixedWriter:
    """An ``H264Writer`` whose stream also takes copied GOPs. The encoder may hold frames
    back (lookahead, frame threads): a copied GOP waits until every frame before it has come
    out of the encoder, so packets reach the file in frame order."""

    def __init__(self, writer: media.H264Writer, time_base: Fraction, source_extradata: bytes):
        self.writer, self.time_base = writer, time_base
        self.source_sets, self.source_annexb = parameter_sets(source_extradata), is_annexb(source_extradata)
        self.sent = 0                 # frames given to the encoder or copied
        self.out = 0                  # frames the file holds
        self.waiting: list[tuple[int, list[tuple[av.Packet, int, int]]]] = []   # (frames before it, GOP)
        self.encoder_sets: bytes | None = None
        self.after_copy = False

    def encode(self, picture, timestamp: int) -> None:
        # After a copied GOP the encoder's references are not what a decoder holds: an IDR.
        self._mux_encoded(self.writer.encode(picture, timestamp, keyframe=self.after_copy))
        self.after_copy = False
        self.sent += 1

    def copy(self, packets: list[tuple[av.Packet, int, int]]) -> None:
        """A GOP's packets in order, each with its timestamp and duration (the segment's)."""
        first, timestamp, duration = packets[0]
        as_annexb = (lambda data: data) if self.source_annexb else annexb
        packets = [(_repacked(first, self.source_sets + as_annexb(bytes(first))), timestamp, duration)] + [
            (p if self.source_annexb else _repacked(p, annexb(bytes(p))), t, d) for p, t, d in packets[1:]]
        self.waiting.append((self.sent, packets))
        self.sent += len(packets)
        self.after_copy = True
        self._release()

    def close(self) -> None:
        self._mux_encoded(self.writer.stream.encode(None))
        self._release()
        self.writer.container.close()

    def _release(self) -> None:
        while self.waiting and self.waiting[0][0] == self.out:
            _, packets = self.waiting.pop(0)
            for packet, timestamp, duration in packets:
                packet.stream = self.writer.stream
                packet.time_base = self.time_base
                packet.pts = packet.dts = timestamp
                packet.duration = duration
                self.writer.container.mux(packet)
            self.out += len(packets)

    def _mux_encoded(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self._release()
            if packet.is_keyframe:
                # Every IDR of the video carries its parameter sets: the GOP before it may be
                # a copied one, with the source's.
                if self.encoder_sets is None:
                    self.encoder_sets = parameter_sets(self.writer.stream.codec_context.extradata)
                packet = _repacked(packet, self.encoder_sets + bytes(packet))     # x264 gives Annex B
            packet.stream = self.writer.stream
            self.writer.container.mux(packet)
            self.out += 1
        self._release()


def _repacked(packet: av.Packet, data: bytes) -> av.Packet:
    """A packet like ``packet`` with other bytes."""
    out = av.Packet(data)
    out.pts, out.dts, out.duration, out.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
    out.is_keyframe = packet.is_keyframe
    return out


def stream_copyable(src: Path, width: int, height: int) -> bool:
    with av.open(str(src)) as container:
        return copyable_stream(container.streams.video[0], width, height)


def render_copying(src: Path, writer: media.H264Writer, pts: list[int], time_base: Fraction,
                   drawn: Callable[[int], bool], draw: Callable[[av.VideoFrame, int], object],
                   threads: int, pts_offset: int = 0, pictures: list | None = None) -> dict[str, float]:
    """Write a segment of an intact recording into ``writer`` and close it: GOPs with nothing
    drawn copied, the others decoded and ``draw(frame, slot)`` -> the picture to encode.
    ``pictures``: the segment's frames decoded already (one per slot, as ``media.segment_frames``
    gave them to its analysis): then nothing is decoded again, not even the GOP's frames before
    the segment's first. Returns seconds per stage."""
    stages = {"render_decode": 0.0, "draw": 0.0, "encode": 0.0, "copy": 0.0}
    slot_of = {stamp: slot for slot, stamp in enumerate(pts)}
    ends = pts[1:] + [pts[-1] + (pts[-1] - pts[-2] if len(pts) > 1 else 1)]
    # A segment file vidfarm wrote, decoded by a decoder of our own: opening it need not decode
    # its first pictures too (docs/design-notes.md, ``_open``; ``stream_copyable`` did already).
    with media._open(src, probe_pictures=False) as container:
        stream = container.streams.video[0]
        gops = plan_gops(container, stream, pts, time_base, pts_offset, drawn)
        decoder = av.CodecContext.create(stream.codec_context.name, "r")
        decoder.extradata = stream.codec_context.extradata
        decoder.thread_type, decoder.thread_count = "AUTO", threads
        mixed = MixedWriter(writer, time_base, stream.codec_context.extradata)
        written = 0

        def encode_frames(frames: list[av.VideoFrame]) -> None:
            for frame in frames:
                stamp = round(frame.pts * (frame.time_base or stream.time_base) / time_base) - pts_offset
                slot = slot_of.get(stamp, -1) if frame.pts is not None else -1
                if slot < written:      # the GOP's frames before the segment (a mid-GOP start)
                    continue
                encode_slot(frame, slot)

        def encode_slot(frame: av.VideoFrame, slot: int) -> None:
            nonlocal written
            if slot > written:
                raise media.MediaError(f"frames {written}-{slot - 1} of a segment did not decode")
            t0 = time.perf_counter()
            # as segment_frames gives them: a picture of another size is scaled to the stream's
            picture = draw(media.at_size(frame, writer.width, writer.height), slot)
            t1 = time.perf_counter()
            mixed.encode(picture, pts[slot])
            stages["draw"] += t1 - t0
            stages["encode"] += time.perf_counter() - t1
            written = slot + 1

        def decoded(packet: av.Packet | None) -> list[av.VideoFrame]:
            t0 = time.perf_counter()
            frames = decoder.decode(packet)
            stages["render_decode"] += time.perf_counter() - t0
            return frames

        decoding = False
        for gop in gops:
            if not gop.copy and pictures is not None:
                for slot in sorted(s for s in gop.slots if s >= written):     # presentation order
                    encode_slot(pictures[slot], slot)
                continue
            if not gop.copy:
                decoding = True
                for packet in gop.packets:
                    encode_frames(decoded(packet))
                continue
            if decoding:            # what the decoder still holds comes before this GOP
                encode_frames(decoded(None))
                decoder.flush_buffers()
                decoding = False
            if gop.slots[0] != written:
                raise media.MediaError(f"frames {written}-{gop.slots[0] - 1} of a segment did not decode")
            t0 = time.perf_counter()
            mixed.copy([(p, pts[s], ends[s] - pts[s]) for p, s in zip(gop.packets, gop.slots)])
            stages["copy"] += time.perf_counter() - t0
            written = gop.slots[-1] + 1
        if decoding:
            encode_frames(decoded(None))
        if written != len(pts):
            raise media.MediaError(f"a segment of {len(pts)} frames gave {written} when drawn")
        t0 = time.perf_counter()
        mixed.close()
        stages["encode"] += time.perf_counter() - t0
    return {k: round(v, 4) for k, v in stages.items()}
