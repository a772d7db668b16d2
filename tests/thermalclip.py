"""Makes a radiometric test recording from a real per-pixel temperature map.

``../shared/media/thermal/fluke_pairs/IR_00121.csv`` is a Fluke camera's temperature export of
one man's face (320x240, degrees Fahrenheit, UTF-16LE). The clip pastes that map, scaled and
moved frame by frame, onto a room-temperature background, warms the skin by a known offset on
some frames (the fever case), converts to raw counts with a known calibration and encodes
gray16le FFV1 in Matroska, with the calibration in a sidecar. The truth per frame comes back
with it: the canthus temperature of the source map plus that frame's offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from workers import media
from workers.analytics import detector  # noqa: F401  (registers "detect")
from workers.analytics.faces import Faces
from workers.analytics.registry import build_chain
from workers.analytics.thermal import Calibration, RadiometricPicture, write_sidecar

FLUKE_CSV = Path("thermal") / "fluke_pairs" / "IR_00121.csv"
# The inner canthi of IR_00121, marked by hand on the temperature map (x, y in CSV pixels):
# the two warm spots at the inner corners of the eyes, either side of the bridge of the nose.
CANTHI_XY = ((153, 84), (178, 84))
CANTHUS_WINDOW = 3          # half-size of the square around each marked canthus
SKIN_ABOVE_C = 30.0         # the fever offset warms pixels above this (skin), not the room
CLIP_CALIBRATION = Calibration(gain=0.02, offset=-50.0)   # deliberately not the default


def read_fluke_csv(path: Path) -> np.ndarray:
    """The temperature map in degrees Celsius, (240, 320) float64. Header lines come first;
    then a column-number line (starting with a comma) and rows ``<row>,v1,...,v320``."""
    rows = []
    for line in path.read_text(encoding="utf-16").splitlines():
        cells = line.strip().split(",")
        if cells[0].isdigit() and len(cells) > 2:
            rows.append([float(v) for v in cells[1:] if v != ""])
    fahrenheit = np.array(rows, np.float64)
    return (fahrenheit - 32.0) * 5.0 / 9.0


def hottest_face_c(temps_c: np.ndarray) -> float:
    """The camera's own figure for the face: its hottest pixel (Fluke's reading of IR_00121 is
    96.4 F, 35.8 C), independent of where vidfarm looks and of which percentile it takes."""
    return float(temps_c.max())


def reference_canthus_c(temps_c: np.ndarray) -> float:
    """Ground truth of the source map: the 95th percentile of 7x7 windows around the two
    hand-marked canthi (a reading of the same statistic, from places a person chose)."""
    w = CANTHUS_WINDOW
    values = np.concatenate([temps_c[y - w:y + w + 1, x - w:x + w + 1].ravel() for x, y in CANTHI_XY])
    return float(np.percentile(values, 95))


@dataclass
class ThermalClip:
    path: Path
    calibration: Calibration
    fps: int
    width: int
    height: int
    truth_c: list[float]          # per frame: the face's canthus temperature
    offsets_c: list[float]        # per frame: the fever offset added to the skin (0 = normal)

    @property
    def frames(self) -> int:
        return len(self.truth_c)


def _placement(index: int, frames: int, width: int, height: int, src_shape,
               scales: tuple[float, float] = (0.9, 1.4)) -> tuple[float, int, int]:
    """Scale scales[0] -> scales[1] over the clip while the map drifts left to right and bobs."""
    travel = index / max(frames - 1, 1)
    scale = scales[0] + (scales[1] - scales[0]) * travel
    h, w = round(src_shape[0] * scale), round(src_shape[1] * scale)
    x = round(travel * max(width - w, 0))
    y = round((height - h) / 2 + 0.3 * max(height - h, 0) * np.sin(2 * np.pi * travel))
    return scale, max(0, min(x, width - w)), max(0, min(y, height - h))


def make_thermal_clip(path: Path, csv_path: Path, frames: int = 24, fps: int = 8,
                      size: tuple[int, int] = (480, 360), fever_offset_c: float = 2.5,
                      fever_frames: range = range(8, 16),
                      calibration: Calibration = CLIP_CALIBRATION, scales: tuple[float, float] = (0.9, 1.4),
                      noise_c: float = 0.05, seed: int = 121) -> ThermalClip:
    source = read_fluke_csv(csv_path)
    truth = reference_canthus_c(source)
    width, height = size
    room = float(np.percentile(source, 5))
    rng = np.random.default_rng(seed)
    out = av.open(str(path), "w", format="matroska")
    stream = out.add_stream("ffv1", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "gray16le"
    stream.codec_context.gop_size = fps   # a keyframe a second: the farm can split it
    truths, offsets = [], []
    for index in range(frames):
        offset = fever_offset_c if index in fever_frames else 0.0
        person = source + offset * (source > SKIN_ABOVE_C)
        scale, x, y = _placement(index, frames, width, height, source.shape, scales)
        h, w = round(source.shape[0] * scale), round(source.shape[1] * scale)
        resized = cv2.resize(person, (min(w, width), min(h, height)),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        canvas = room + rng.normal(0, noise_c, (height, width))
        canvas[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
        frame = av.VideoFrame.from_ndarray(calibration.to_raw(canvas), format="gray16le")
        frame.pts, frame.time_base = index, Fraction(1, fps)
        out.mux(stream.encode(frame))
        truths.append(truth + offset)
        offsets.append(offset)
    out.mux(stream.encode(None))
    out.close()
    write_sidecar(path, calibration)
    return ThermalClip(path=path, calibration=calibration, fps=fps, width=width, height=height,
                       truth_c=truths, offsets_c=offsets)


def read_temperatures(path: Path, calibration: Calibration, chain=None) -> list[list[float | None]]:
    """Per frame, the temperatures the detect + thermal analyzers read, as the farm would."""
    chain = chain or build_chain(["detect", "thermal"], {})
    readings = []
    for frame in media.decode_frames(path):
        faces = Faces.empty()
        picture = RadiometricPicture.from_frame(frame, calibration)
        for analyzer in chain:
            faces = analyzer(picture, faces)
        readings.append(list(faces.column("temperature_c")))
    return readings
