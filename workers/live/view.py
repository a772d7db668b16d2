"""The live view's pieces: one camera segment drawn with its labels, as a fragmented MP4.

A browser plays a camera a few seconds behind live by appending these pieces, one after
another, to a Media Source Extensions buffer (``web/static/live.js``). Each piece is drawn
exactly as a recording's annotated video is (``workers.render.render_segment``: the same
decode, labels and encoder) and then remuxed, without re-encoding, into a fragmented MP4 that
carries its own initialisation (``ftyp``/``moov``, then ``moof``/``mdat``): any piece can be the
first one a page appends, and a camera that changes resolution needs no other signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av

from workers.live.timeline import TIMELINE
from workers.render import RenderConfig, render_segment

FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}


def draw_view_piece(src: Path, out: Path, pts: list[int], fps: float, width: int, height: int,
                    labels: Sequence[Sequence[Sequence]], config: RenderConfig) -> tuple[dict[str, float], str]:
    """Draw a segment (``labels``: per frame, ``Label.to_json`` rows) into ``out``; returns
    the seconds per stage and the piece's codec, as a MIME ``codecs`` parameter."""
    drawn = out.with_name(out.stem + "-drawn.mp4")
    try:
        stages = render_segment(src, drawn, pts, TIMELINE, fps, width, height, labels, config)
        return stages, fragment(drawn, out)
    finally:
        drawn.unlink(missing_ok=True)


def fragment(src: Path, out: Path) -> str:
    """Remux an MP4's video into a fragmented MP4; returns its codec string (``avc1.PPCCLL``)."""
    with av.open(str(src)) as source, av.open(str(out), "w", format="mp4", options=FRAGMENTED) as target:
        video = source.streams.video[0]
        stream = target.add_stream_from_template(video)
        for packet in source.demux(video):
            if packet.dts is None:
                continue     # the demuxer's end-of-stream packet
            packet.stream = stream
            target.mux(packet)
        return codec_string(video.codec_context.extradata)


def codec_string(avcc: bytes | None) -> str:
    """RFC 6381's name of an H.264 stream from its avcC record (profile, constraints, level)."""
    if not avcc or len(avcc) < 4 or avcc[0] != 1:
        return "avc1.42E01E"     # no avcC: Baseline 3.0, which every MSE implementation accepts
    return "avc1." + avcc[1:4].hex().upper()
