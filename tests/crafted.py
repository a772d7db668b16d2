"""Crafted recordings, good and bad, for the robustness suite (issue 6's bad-input list).

Each case makes one file and says what vidfarm must do with it: finish ("done", with every
frame) or refuse ("failed", with a one-line reason containing ``reason``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np

from tests.clipmaker import make_clip


@dataclass
class Case:
    name: str
    make: Callable[[Path], Path]
    outcome: str                 # "done" or "failed"
    reason: str = ""             # a fragment of the failure message
    note: str = ""


def _clip(path: Path, **kwargs) -> Path:
    kwargs.setdefault("seconds", 2)
    kwargs.setdefault("fps", 15)
    kwargs.setdefault("gop", 15)
    kwargs.setdefault("face_windows", [])
    return make_clip(path, **kwargs).path


def _bytes(data: bytes, suffix: str = ".mp4"):
    def make(folder: Path) -> Path:
        path = folder / f"file{suffix}"
        path.write_bytes(data)
        return path
    return make


def _truncated(folder: Path) -> Path:
    data = _clip(folder / "whole.mp4").read_bytes()
    path = folder / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path


def _boxes(data: bytes):
    """Top-level MP4 boxes: (type, start, size)."""
    position = 0
    while position + 8 <= len(data):
        size = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        if size < 8:
            break
        yield kind, position, size
        position += size


def _without_moov(folder: Path) -> Path:
    data = _clip(folder / "whole.mp4").read_bytes()
    kept = b"".join(data[start:start + size] for kind, start, size in _boxes(data) if kind != b"moov")
    path = folder / "no_moov.mp4"
    path.write_bytes(kept)
    return path


def _corrupt_middle(folder: Path) -> Path:
    data = bytearray(_clip(folder / "whole.mp4", seconds=3).read_bytes())
    mdat = next((start, size) for kind, start, size in _boxes(bytes(data)) if kind == b"mdat")
    rng = np.random.default_rng(1)
    middle = mdat[0] + mdat[1] // 2
    data[middle:middle + 400] = rng.integers(0, 256, 400, dtype=np.uint8).tobytes()
    path = folder / "corrupt_middle.mp4"
    path.write_bytes(bytes(data))
    return path


def _encode(path: Path, codec: str, size: tuple[int, int], frames: int = 20, pix_fmt: str = "yuv420p",
            container: str | None = None, options: dict | None = None, rate: int = 15) -> Path:
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], pix_fmt
        if options:
            stream.options = options
        for i in range(frames):
            image = np.full((size[1], size[0], 3), (i * 9) % 255, np.uint8)
            cv2.putText(image, str(i), (2, max(10, size[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            frame.time_base = Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def program_stream(path: Path, frames: int = 25) -> Path:
    """An MPEG-2 program stream, each frame a shade of grey brighter than the one before (up to
    25 frames; then from black again). Its demuxer repeats a timestamp now and then (of 25
    frames, the 11th gets the 10th's)."""
    with av.open(str(path), "w", format="mpeg") as out:
        stream = out.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), 10 * (index % 25), np.uint8), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def audio_only(folder: Path) -> Path:
    path = folder / "voice.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def still_image(suffix: str):
    def make(folder: Path) -> Path:
        path = folder / f"photo{suffix}"
        cv2.imwrite(str(path), np.full((120, 160, 3), 100, np.uint8))
        return path
    return make


def _rotated(folder: Path) -> Path:
    source = _clip(folder / "upright.mp4")
    path = folder / "rotated.mp4"
    with av.open(str(source)) as src, av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        stream.set_display_rotation(90)     # a display matrix (FFmpeg ignores a "rotate" tag)
        for packet in src.demux(video=0):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    return path


def trimmed(folder: Path) -> Path:
    """What a trim without re-encoding makes (``ffmpeg -ss T -c copy``, a phone's trim): an MP4
    whose edit list starts the video 5 frames in. Those frames stay in the file, with negative
    timestamps, as pre-roll the decoder needs but never shows. B-frames and audio."""
    source = _clip(folder / "untrimmed.mp4", seconds=3, gop=20, bframes=3, audio=True)
    path = folder / "trimmed.mp4"
    with av.open(str(source)) as src, av.open(str(path), "w", format="mp4") as out:
        video, audio = src.streams.video[0], src.streams.audio[0]
        streams = {video: out.add_stream_from_template(video), audio: out.add_stream_from_template(audio)}
        cut = 5 / 15        # seconds
        for packet in src.demux(video, audio):
            if packet.size:
                shift = round(cut / packet.time_base)
                packet.pts -= shift
                packet.dts -= shift
                packet.stream = streams[packet.stream]
                out.mux(packet)
    return path


def cut_from_a_running_stream(folder: Path) -> Path:
    """A recording that starts at an open GOP's keyframe, as one cut from a running broadcast
    or camera stream does: the pictures shown before that keyframe reference what was cut."""
    source = _encode(folder / "running.ts", "libx264", (320, 240), frames=60,
                     options={"x264-params": "open-gop=1:keyint=15:bframes=3"})
    path = folder / "cut.ts"
    with av.open(str(source)) as src, av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        keyframes = 0
        for packet in src.demux(video=0):
            keyframes += packet.is_keyframe
            if packet.size and keyframes >= 2:
                packet.stream = stream
                out.mux(packet)
    return path


def tiny_packets(path: Path, packets: int, fps: int = 1000, calm: int = 0) -> Path:
    """A Matroska file of ``packets`` tiny H.264 frames (one encoded 32x32 keyframe, then
    copies of one encoded skip frame: about 15 bytes each) at ``fps``; the first ``calm`` of
    them at 25 fps, so that its header (which FFmpeg reads from the first seconds) declares
    that. A million packets make 15 MB: what issue 11 (item 8) saw eat 290 MiB of the web
    process when every packet was listed."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width = encoder.height = 32
    encoder.pix_fmt, encoder.time_base = "yuv420p", Fraction(1, 1000)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    encoded = []
    for index in range(2):
        frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        frame.pts = index
        encoded += encoder.encode(frame)
    encoded += encoder.encode(None)
    keyframe, skip = bytes(encoded[0]), bytes(encoded[1])
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("h264", rate=25 if calm else fps)
        stream.width = stream.height = 32
        stream.pix_fmt, stream.time_base = "yuv420p", Fraction(1, 1000)
        stream.codec_context.extradata = encoder.extradata
        at = 0
        for index in range(packets):
            packet = av.Packet(keyframe if index == 0 else skip)
            packet.pts = packet.dts = at
            packet.time_base, packet.stream, packet.is_keyframe = Fraction(1, 1000), stream, index == 0
            out.mux(packet)
            at += 40 if index < calm else 1000 // fps
    return path


CASES = [
    Case("zero bytes", _bytes(b""), "failed", "empty"),
    Case("text file named .mp4", _bytes(b"meeting notes\n" * 40), "failed", "not a readable video"),
    Case("random bytes", _bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()),
         "failed", "not a readable video"),
    Case("truncated MP4 (index at the end, cut in half)", _truncated, "failed",
         "not a readable video file: an MP4 cut short before its index"),
    Case("MP4 without its moov atom", _without_moov, "failed", "not a readable video file: an MP4 without its index"),
    Case("corrupt bytes in the middle", _corrupt_middle, "done", note="decoder conceals the damage; every frame kept"),
    Case("audio only", audio_only, "failed", "no video, only audio"),
    Case("PNG still image", still_image(".png"), "failed", "a photo, not a video"),
    Case("JPEG still image", still_image(".jpg"), "failed", "a photo, not a video"),
    Case("frames too small (8x8)", lambda f: _encode(f / "tiny.mp4", "mpeg4", (8, 8)), "failed", "too small"),
    Case("absurdly wide (8000x16)", lambda f: _encode(f / "wide.mkv", "mpeg4", (8000, 16)), "failed", "too large"),
    Case("1000 frames per second (tiny packets)", lambda f: tiny_packets(f / "fast.mkv", 5000), "failed",
         "exceeds the 240 fps maximum"),
    Case("1000 frames per second after a first 12 s at 25", lambda f: tiny_packets(f / "burst.mkv", 5000, calm=300),
         "failed", "exceeds the 240 fps maximum", note="measured while the probe reads: the header says 25 fps"),
    Case("one frame", lambda f: _encode(f / "one.mp4", "libx264", (320, 240), frames=1), "done"),
    Case("variable frame rate", lambda f: _clip(f / "vfr.mp4", vfr=True), "done"),
    Case("rotation metadata (display matrix, 90 degrees)", _rotated, "done",
         note="analysed and drawn upright; sizes and boxes in the upright picture's pixels"),
    Case("trimmed MP4 (edit list over B-frames, audio)", trimmed, "done",
         note="the 5 frames before the trim point are decoded as references, never shown or counted"),
    Case("10-bit H.264", lambda f: _encode(f / "ten.mp4", "libx264", (320, 240), pix_fmt="yuv420p10le"), "done",
         note="annotated output is 8-bit"),
    Case("odd frame size (321x241)", lambda f: _encode(f / "odd.mkv", "libx264", (321, 241), pix_fmt="yuv444p"), "done",
         note="annotated output padded to 322x242"),
    Case("very long GOP (one keyframe)", lambda f: _clip(f / "gop.mp4", seconds=4, gop=1000, audio=False), "done",
         note="one segment: never cut mid-GOP"),
    Case("open GOP with B-frames", lambda f: _encode(f / "open.mp4", "libx264", (320, 240), frames=60,
                                                      options={"x264-params": "open-gop=1:keyint=15:bframes=3"}), "done"),
    Case("HEVC in MP4", lambda f: _encode(f / "hevc.mp4", "libx265", (320, 240)), "done"),
    Case("VP9 in WebM", lambda f: _encode(f / "vp9.webm", "libvpx-vp9", (320, 240)), "done"),
    Case("AV1 in Matroska", lambda f: _encode(f / "av1.mkv", "libsvtav1", (320, 240)), "done"),
    Case("H.264 with B-frames in AVI", lambda f: _encode(f / "bframes.avi", "libx264", (320, 240), frames=40,
                                                         options={"x264-params": "bframes=3:keyint=10"}), "done",
         note="AVI holds decode times only: cut at keyframes"),
    Case("MJPEG in AVI", lambda f: _encode(f / "mjpeg.avi", "mjpeg", (320, 240), pix_fmt="yuvj420p"), "done"),
    Case("MPEG-TS", lambda f: _encode(f / "stream.ts", "libx264", (320, 240), frames=30), "done"),
    Case("MPEG program stream (the demuxer repeats a timestamp now and then)",
         lambda f: program_stream(f / "program.mpg", frames=100), "done",
         note="a picture given the time of the one before is moved one tick after it"),
    Case("MPEG-TS cut from a running open-GOP stream", cut_from_a_running_stream, "done",
         note="the first pictures reference what was cut: not counted, as no decoder shows them"),
    Case("raw H.264 elementary stream (no container, no timestamps, B-frames)",
         lambda f: _encode(f / "camera.h264", "libx264", (320, 240), frames=40, container="h264",
                           options={"x264-params": "bframes=3:keyint=10"}), "done",
         note="timestamps counted at the nominal rate"),
    Case("animated GIF", lambda f: _encode(f / "anim.gif", "gif", (160, 120), pix_fmt="rgb8"), "done"),
]


@dataclass
class Damaged:
    """A recording damaged the way a power cut or a bad disk leaves one (issue 20): the bytes
    of one frame's packet overwritten with noise, or the file cut short. Whatever still
    decodes is analysed; the job is done with the damage reported."""
    name: str
    container: str               # "mp4" or "mpegts"
    frame: int | None            # the frame whose packet is overwritten; None: cut short
    # The damaged ranges the farm reports: (first frame, last frame, how the reason begins).
    damaged: list[tuple[int, int, str]]
    head: bool = False           # overwrite the packet's first half (else: its last three quarters)
    note: str = ""
    gop: int = 15

    SECONDS, FPS = 4, 15

    def make(self, folder: Path):
        """The damaged file and the clip it was made from (its frame count, its faces)."""
        suffix = ".ts" if self.container == "mpegts" else ".mp4"
        clip = make_clip(folder / f"source{suffix}", seconds=self.SECONDS, fps=self.FPS, gop=self.gop,
                         face_windows=[(0, self.SECONDS)], container=self.container if suffix == ".ts" else None)
        path = folder / f"damaged{suffix}"
        if self.frame is None:
            data = _index_first(clip.path, folder / "indexed.mp4").read_bytes()
            path.write_bytes(data[: int(len(data) * 0.7)])
            return path, clip
        return overwrite_packet(clip.path, path, self.frame, self.head), clip

    @property
    def outcome(self) -> str:
        return "; ".join(f"frame {a}: {why}" if a == b else f"frames {a}-{b}: {why}" for a, b, why in self.damaged)


def overwrite_packet(source: Path, path: Path, frame: int, head: bool = False) -> Path:
    """``source`` with the bytes of video frame ``frame``'s packet overwritten with noise (its
    first half with ``head``, else its last three quarters), written to ``path``."""
    with av.open(str(source)) as container:
        pos, size = [(p.pos, p.size) for p in container.demux(video=0) if p.size][frame]
    start, end = (pos, pos + size // 2) if head else (pos + size // 4, pos + size)
    data = bytearray(source.read_bytes())
    data[start:end] = np.random.default_rng(frame).integers(0, 256, end - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def _index_first(source: Path, path: Path) -> Path:
    """The recording as a camera writing its index first (MP4 faststart) leaves it."""
    with av.open(str(source)) as src, av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        streams = {s: out.add_stream_from_template(s) for s in (src.streams.video[0], src.streams.audio[0])}
        for packet in src.demux():
            if packet.size:
                packet.stream = streams[packet.stream]
                out.mux(packet)
    return path


UNDECODABLE, MISSING, CONCEALED = "did not decode", "missing from the file", "decoded with errors concealed"
PROPAGATED = "decoded from a damaged picture"
DAMAGED = [
    Damaged("MP4, damage in the first keyframe", "mp4", 0, [(0, 14, UNDECODABLE)],
            note="its GOP (here its segment) decodes to no picture: black"),
    Damaged("MP4, damage in a keyframe mid-file", "mp4", 30, [(30, 44, UNDECODABLE)],
            note="its GOP does not decode: the last good picture stands in"),
    Damaged("MP4, damage between keyframes", "mp4", 37, [(37, 37, UNDECODABLE), (38, 44, PROPAGATED)],
            note="the pictures up to the next keyframe decode, against the one before it"),
    Damaged("MP4, damage in the last frame", "mp4", 59, [(59, 59, UNDECODABLE)]),
    Damaged("MP4, index first, data cut short at 70 %", "mp4", None, [(38, 38, UNDECODABLE), (39, 59, MISSING)],
            note="the index lists every frame: those past the cut count, as missing"),
    Damaged("MPEG-TS, damage in the first keyframe", "mpegts", 0, [(0, 0, CONCEALED), (1, 14, PROPAGATED)]),
    Damaged("MPEG-TS, a keyframe's packet lost mid-file", "mpegts", 30, [(30, 30, MISSING), (31, 44, PROPAGATED)],
            head=True, note="a whole frame interval missing from a steady stream's timestamps is a lost frame"),
    Damaged("MPEG-TS, a packet lost between keyframes", "mpegts", 37, [(37, 37, MISSING), (38, 44, PROPAGATED)],
            head=True),
    Damaged("MPEG-TS, damage in the last frame", "mpegts", 59, [(59, 59, CONCEALED)]),
]


DOC = Path(__file__).resolve().parents[1] / "docs" / "robustness.md"
GENERATED_FROM = "## Crafted inputs"


def render_docs() -> str:
    """docs/robustness.md from its crafted-inputs section on (regenerate with
    `python -m tests.crafted`, which keeps the hand-written faults table above it; a test checks
    that the file matches, and tests/test_robustness.py checks every outcome)."""
    lines = [GENERATED_FROM, "",
             "Each file is made by `tests/crafted.py` and sent through a real two-worker farm by "
             "`tests/test_robustness.py`. *done* means the job finished with every frame of the input in "
             "results.json and annotated.mp4; *failed* means the job ended with a one-line reason (the "
             "quoted fragment is checked) while the workers kept running.", "",
             "| input | outcome | reason or note |", "| --- | --- | --- |"]
    for case in CASES:
        detail = f"\"...{case.reason}...\"" if case.reason else case.note
        lines.append(f"| {case.name} | {case.outcome} | {detail} |")
    lines += ["", "## Damaged recordings", "",
              "Each file is a 4 s, 15 fps clip (a face in every frame, AAC audio, a keyframe every 15 "
              "frames) with one frame's packet overwritten with noise, or cut short; "
              "`tests/test_damage.py` sends it through the farm. Every one ends *done* with the source's "
              "frame count in results.json and annotated.mp4, the damaged frames listed in `damaged` "
              "(no faces on them, faces found on the intact ones) and a warning on the job. A damaged "
              "frame shows the last good picture (the first one after it where none came before; black "
              "where its segment decodes to no picture at all), or the decoder's concealed picture.", "",
              "| damaged input | what is lost | note |", "| --- | --- | --- |"]
    for case in DAMAGED:
        lines.append(f"| {case.name} | {case.outcome} | {case.note} |")
    lines += ["", "Also checked: file names are labels, never paths (`../../etc/passwd`, undecodable bytes, "
              "`a/b\\c:d*?.mp4`, 1000 characters): the upload is stored under `jobs/<id>/source`."]
    return "\n".join(lines) + "\n"


def write_docs() -> None:
    head = DOC.read_text().split(GENERATED_FROM)[0] if DOC.exists() else "# Robustness\n\n"
    DOC.write_text(head + render_docs())


if __name__ == "__main__":
    write_docs()
