"""How to make the detector's 640x360 BGR copy of a decoded 720p/1080p frame, measured.

``python -m bench.bgr_copy [WORKDIR]``: decodes a few clips (the generated 720p30 and 1080p25
clips of ``bench.busy``, a 720p quiet scene with Intel's real footage in a window, and
../shared/media's real Hamilton clip scaled up to 720p and 1080p) and, on every decoded frame,
makes the copy each way in turn (frame by frame, one process, so load hits all alike). Prints
CPU and wall ms per copy and the difference from ``frame.to_ndarray`` with a fresh swscale
context a frame (the copy the detector read before ``Picture`` kept its contexts): mean and max
absolute difference in grey levels. One-off measurement, not a test.
"""

from __future__ import annotations

import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from bench.shared_media import HAMILTON, WALKING
from workers.analytics.picture import Picture

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "to_ndarray (before: fresh context)"


def _i420(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray()            # yuv420p: (H * 3/2, W), the planes one after another


def _planes_area(frame: av.VideoFrame, size) -> np.ndarray:
    """Each plane shrunk by INTER_AREA (1.5 bytes a pixel, not 3), then one colour conversion."""
    w, h = size
    yuv = _i420(frame)
    H, W = frame.height, frame.width
    y = cv2.resize(yuv[:H], (w, h), interpolation=cv2.INTER_AREA)
    chroma = yuv[H:].reshape(2, H // 2, W // 2)
    u = cv2.resize(chroma[0], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    v = cv2.resize(chroma[1], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(np.concatenate([y, u.reshape(-1, w), v.reshape(-1, w)]), cv2.COLOR_YUV2BGR_I420)


_AUTO_THREADS = {}


def _kept_auto_threads(frame: av.VideoFrame, size) -> np.ndarray:
    """Picture's kept context, but with swscale's own thread count (a thread a core)."""
    r = _AUTO_THREADS.setdefault(size, VideoReformatter())
    return r.reformat(frame, *size, "bgr24", threads=0).to_ndarray()


METHODS = {
    BEFORE: lambda f, s: f.to_ndarray(width=s[0], height=s[1], format="bgr24"),
    "to_ndarray, threads=1": lambda f, s: f.to_ndarray(width=s[0], height=s[1], format="bgr24", threads=1),
    "Picture.bgr_at (kept context, 1 thread)": lambda f, s: Picture(f).bgr_at(s),
    "kept context, auto threads": _kept_auto_threads,
    "pyav FAST_BILINEAR": lambda f, s: f.to_ndarray(width=s[0], height=s[1], format="bgr24", interpolation=Interpolation.FAST_BILINEAR),
    "pyav BILINEAR": lambda f, s: f.to_ndarray(width=s[0], height=s[1], format="bgr24", interpolation=Interpolation.BILINEAR),
    "pyav AREA": lambda f, s: f.to_ndarray(width=s[0], height=s[1], format="bgr24", interpolation=Interpolation.AREA),
    "pyav POINT": lambda f, s: f.to_ndarray(width=s[0], height=s[1], format="bgr24", interpolation=Interpolation.POINT),
    "pyav yuv420p@size + cv2 cvtColor": lambda f, s: cv2.cvtColor(
        f.to_ndarray(width=s[0], height=s[1], format="yuv420p"), cv2.COLOR_YUV2BGR_I420),
    "cv2 cvtColor full + resize AREA": lambda f, s: cv2.resize(
        cv2.cvtColor(_i420(f), cv2.COLOR_YUV2BGR_I420), s, interpolation=cv2.INTER_AREA),
    "cv2 planes resize AREA + cvtColor": _planes_area,
    "full frame: to_ndarray": lambda f, s: f.to_ndarray(format="bgr24"),
    "full frame: Picture.bgr": lambda f, s: Picture(f).bgr()[0],
}


def clips(work: Path) -> dict[str, Path]:
    from tests.clipmaker import make_clip
    from tests.quietclip import Appearance, make_quiet_clip

    work.mkdir(parents=True, exist_ok=True)
    out = {}

    def once(name, make):
        path = work / name
        if not path.exists():
            make(path)
        return path

    out["generated 720p30"] = once("gen720.mp4", lambda p: make_clip(p, seconds=4, fps=30, size=(1280, 720), audio=False))
    out["generated 1080p25"] = once("gen1080.mp4", lambda p: make_clip(p, seconds=4, fps=25, size=(1920, 1080),
                                                                     photo_height=400, audio=False))
    out["quiet 720p + Intel footage"] = once("quiet720.mp4", lambda p: make_quiet_clip(
        p, 4, size=(1280, 720), appearances=[Appearance(0, 4, height=400, walk=False,
                                                        footage=WALKING)]))
    for height in (720, 1080):
        out[f"Hamilton scaled to {height}p"] = once(f"hamilton{height}.mp4", lambda p, h=height: scaled(HAMILTON, p, h))
    return out


def scaled(source: Path, path: Path, height: int, frames: int | None = 120, rate: int = 25,
           options: dict[str, str] | None = None) -> None:
    """Real footage at a camera's size: scaled up by swscale's bicubic, encoded by libx264 at
    ``rate`` frames a second (each source frame kept, so a slower rate plays it slower),
    tagged BT.709 as the source (and HD cameras) are: PyAV's scaler honours the tag.
    ``frames``: the first so many (None: all)."""
    width = height * 16 // 9
    with av.open(str(source)) as src, av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, rate)
        stream.options = options or {"crf": "20", "preset": "ultrafast"}
        stream.codec_context.colorspace = 1           # BT.709
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            big = frame.reformat(width, height, "yuv420p", interpolation=Interpolation.BICUBIC)
            big.pts, big.time_base, big.colorspace = i, Fraction(1, rate), 1
            big.pict_type = av.video.frame.PictureType.NONE   # the source's keyframes are not ours
            dst.mux(stream.encode(big))
        dst.mux(stream.encode())


def measure(path: Path, target_width: int = 640, max_frames: int | None = None) -> dict[str, tuple[float, float, int]]:
    times = {m: 0.0 for m in METHODS}
    walls = {m: 0.0 for m in METHODS}
    diffs = {m: [] for m in METHODS}
    worst = {m: 0 for m in METHODS}
    n = 0
    with av.open(str(path)) as container:
        # One decoding thread: a frame-threaded decoder works on in the background, and its CPU
        # time would land in whichever copy was being timed.
        container.streams.video[0].thread_count = 1
        for frame in container.decode(video=0):
            if n == max_frames:
                break
            size = (target_width, round(frame.height * target_width / frame.width))
            order = list(METHODS)
            order = order[n % len(order):] + order[:n % len(order)]      # rotate: no method always first
            copies = {}
            for m in order:
                t, w = time.process_time(), time.perf_counter()
                copies[m] = METHODS[m](frame, size)
                times[m] += time.process_time() - t
                walls[m] += time.perf_counter() - w
            reference = copies[BEFORE].astype(np.int16)
            for m, copy in copies.items():
                if copy.shape != reference.shape:
                    continue
                d = np.abs(copy.astype(np.int16) - reference)
                diffs[m].append(d.mean())
                worst[m] = max(worst[m], int(d.max()))
            n += 1
    return {m: (1000 * times[m] / n, 1000 * walls[m] / n, float(np.mean(diffs[m])) if diffs[m] else float("nan"), worst[m]) for m in METHODS}, n


def main(argv: list[str]) -> int:
    cv2.setNumThreads(1)        # a worker's share: the farm runs one analysis per core
    work = Path(argv[0]) if argv else Path("/tmp/bgr_copy")
    for name, path in clips(work).items():
        rows, n = measure(path)
        print(f"\n{name} ({n} frames): CPU ms a copy | wall ms | mean, max abs diff from before")
        for m, (ms, wall, mean, mx) in rows.items():
            print(f"  {m:40s} {ms:6.2f}  {wall:6.2f}  {mean:6.2f}  {mx:4d}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
