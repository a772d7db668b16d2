"""Re-encoded segments, for a stream whose keyframes are too far apart to cut at.

A camera sending one keyframe every 10 s cannot be cut into 2 s pieces by remux: each piece
must start at a keyframe. Such a connection is decoded and re-encoded (libx264, ultrafast,
near-transparent quality, no B-frames) into segments of the target length, each opening with
a keyframe of its own. This costs a decode and an encode per frame, so it is only done where
the stream demands it; the analysis then sees the re-encoded pictures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import av

from workers.live.timeline import TIMELINE

CRF = "18"      # near-transparent: the detector should not see coding artefacts the camera did not make


class Transcoder:
    def __init__(self, stream: av.video.stream.VideoStream, target: int, next_path: Callable[[], Path],
                 emit: Callable[..., None], fps: float, threads: int = 1):
        """target: segment length in timeline ticks. ``emit(path, pts, end_pts, width,
        height, reencoded=True)`` receives each finished segment."""
        self.decoder = av.CodecContext.create(stream.codec_context.name, "r")
        self.decoder.extradata = stream.codec_context.extradata
        self.decoder.thread_count = threads
        self.target, self.next_path, self.emit = target, next_path, emit
        self.fps, self.threads = fps, threads
        self._out = self._encoder = None
        self._path: Path | None = None
        self._pts: list[int] = []

    def feed(self, packet: av.Packet, pts: int) -> None:
        """A packet (decode order) and its timeline time, which its picture comes out with."""
        packet.pts, packet.dts, packet.time_base = pts, None, TIMELINE
        try:
            frames = self.decoder.decode(packet)
        except av.error.InvalidDataError:
            return      # a damaged packet: its picture is lost, the next keyframe heals the rest
        for frame in frames:
            self._write(frame)

    def close(self) -> None:
        """Flush the decoder and finish the open segment."""
        try:
            for frame in self.decoder.decode(None):
                self._write(frame)
        except av.error.FFmpegError:
            pass
        self._finish(end=None)

    def _write(self, frame: av.VideoFrame) -> None:
        pts = frame.pts
        if pts is None or (self._pts and pts <= self._pts[-1]):
            return      # a picture without a time, or out of order: nothing to place it at
        if self._pts and pts - self._pts[0] >= self.target:
            self._finish(end=pts)
        if self._out is None:
            self._open(frame)
        picture = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
        picture.pts, picture.time_base = pts, TIMELINE
        picture.pict_type = av.video.frame.PictureType.NONE
        self._out.mux(self._encoder.encode(picture))
        self._pts.append(pts)

    def _open(self, frame: av.VideoFrame) -> None:
        self._path = self.next_path()
        self._out = av.open(str(self._path), "w", format="nut")
        encoder = self._out.add_stream("libx264", rate=round(self.fps) or 15)
        encoder.width, encoder.height, encoder.pix_fmt = frame.width, frame.height, "yuv420p"
        encoder.time_base = encoder.codec_context.time_base = TIMELINE
        encoder.codec_context.max_b_frames = 0
        encoder.codec_context.thread_count = self.threads
        encoder.options = {"preset": "ultrafast", "crf": CRF}
        self._encoder = encoder

    def _finish(self, end: int | None) -> None:
        if self._out is None:
            return
        self._out.mux(self._encoder.encode(None))
        self._out.close()
        pts, path, encoder = self._pts, self._path, self._encoder
        self._out = self._encoder = None
        self._pts = []
        if end is None:
            end = pts[-1] + (pts[-1] - pts[-2] if len(pts) > 1 else round(1 / self.fps / TIMELINE))
        self.emit(path, pts, end, encoder.width, encoder.height, reencoded=True)
