"""A camera recording's video: the live segments of one hour joined by remux, no picture decoded.

Each live segment file holds its own frames' packets (and, for the cut, the next segment's
keyframe); the recording takes each segment's own packets only, in order, into one NUT file
(the recording's source, which a re-analysis splits like any upload) and into one file per
segment (what the recording's job draws its annotated video from, as its live analysis saw
them). Timestamps move so that the recording starts at ``timeline.START``: a job's timestamps
stay small (a camera's watch timeline grows without end).

A camera with B-frames and open GOPs shows a few pictures before each cutting keyframe that
reference it; those pictures cannot be decoded from the recording's source alone (their
reference went with the next segment) and are shown as their segment's analysis saw them in
the annotated video only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from workers.live.segmenter import write_packets
from workers.live.timeline import START, TIMELINE


@dataclass
class RecordedSegment:
    path: Path              # a live segment file (NUT, watch timeline)
    pts: list[int]          # its own frames' times, watch timeline


def join_recording(segments: list[RecordedSegment], source: Path, segment_dir: Path) -> tuple[int, list[Path]]:
    """Write the recording's source and its segment files; returns the shift applied to
    every timestamp (new = old - shift) and the segment files, in order."""
    shift = segments[0].pts[0] - START
    # Decode times for the whole source: presentation times in order, moved back just enough
    # that none is later than its own (as ``write_packets`` does for one segment).
    order = [packet.pts for segment in segments for packet, _ in _own_packets(segment)]
    in_order = sorted(order)
    lag = max((a - b for a, b in zip(in_order, order)), default=0)
    decode_times = iter(t - lag - shift for t in in_order)
    segment_dir.mkdir(parents=True, exist_ok=True)
    files, out = [], None
    try:
        for k, segment in enumerate(segments):
            with av.open(str(segment.path)) as container:
                stream = container.streams.video[0]
                if out is None:
                    out = av.open(str(source), "w", format="nut", options={"avoid_negative_ts": "disabled"})
                    target = out.add_stream_from_template(stream, opaque=True)
                    target.time_base = TIMELINE
                own = set(segment.pts)
                packets = [(packet, packet.pts - shift) for packet in container.demux(stream)
                           if packet.pts is not None and packet.pts in own]
                files.append(segment_dir / f"{k:06d}.nut")
                write_packets(files[-1], stream, [(_copy(packet), pts) for packet, pts in packets])
                for packet, pts in packets:       # muxing hands a packet's data over: the copies went first
                    packet.stream, packet.time_base = target, TIMELINE
                    packet.pts, packet.dts = pts, next(decode_times)
                    out.mux(packet)
    finally:
        if out is not None:
            out.close()
    return shift, files


def _own_packets(segment: RecordedSegment):
    own = set(segment.pts)
    with av.open(str(segment.path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.pts is not None and packet.pts in own:
                yield packet, packet.pts


def _copy(packet: av.Packet) -> av.Packet:
    copy = av.Packet(bytes(packet))
    copy.is_keyframe = packet.is_keyframe
    return copy
