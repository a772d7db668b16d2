"""Thermal screening on radiometric recordings: 16-bit grayscale video whose pixel values map
linearly to temperature.

A radiometric recording is gray16 video (FFV1 or PNG in Matroska); each raw value converts to
degrees Celsius as ``raw * gain + offset``. The calibration comes from a sidecar file next to
the video, ``<video file name>.thermal.json`` (e.g. ``clip.mkv.thermal.json``)::

    {"gain": 0.01, "offset": -273.15}

(``gain``: degrees C per raw count; ``offset``: degrees C at raw 0; other keys are ignored),
or, without a sidecar, from the settings (``VIDFARM_THERMAL_GAIN``, ``VIDFARM_THERMAL_OFFSET``),
whose default is the common "TLinear" radiometric output of FLIR Lepton and Boson cores:
centikelvin, 0.01 C per count from -273.15 C.

Faces are found by the ordinary detector on a contrast-stretched 8-bit copy
(:func:`normalise`); the temperature is read where skin temperature best follows core
temperature, the inner canthi (the inner corners of the eyes, beside the bridge of the nose):
a high percentile of the region between the two eye keypoints (:func:`canthus_temperature`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import av
import cv2
import numpy as np
from pydantic import BaseModel, Field, ValidationError

from core import defaults
from core.analyzer_configs import ThermalConfig
from core.errors import first_problem
from workers.analytics.faces import Faces
from workers.analytics.picture import Picture
from workers.analytics.registry import Analyzer, register
from workers.analytics.tracks import SegmentState

SIDECAR_SUFFIX = ".thermal.json"
RADIOMETRIC_PIX_FMTS = ("gray16le", "gray16be")
DEFAULT_FEVER_C = defaults.FEVER_C


class CalibrationError(ValueError):
    """A calibration vidfarm cannot use. The message is one line, fit to show a user."""


@dataclass(frozen=True)
class Calibration:
    gain: float     # degrees C per raw count
    offset: float   # degrees C at raw value 0

    def to_celsius(self, raw) -> np.ndarray | float:
        return np.asarray(raw, np.float64) * self.gain + self.offset

    def to_raw(self, celsius) -> np.ndarray:
        """The raw uint16 values a camera with this calibration records for ``celsius``."""
        raw = np.rint((np.asarray(celsius, np.float64) - self.offset) / self.gain)
        return np.clip(raw, 0, 65535).astype(np.uint16)


# FLIR Lepton / Boson "TLinear" output: centikelvin.
TLINEAR_CENTIKELVIN = Calibration(gain=0.01, offset=-273.15)


class _SidecarModel(BaseModel):
    gain: float = Field(description="Degrees C per raw count.")
    offset: float = Field(description="Degrees C at raw value 0.")


def sidecar_path(video: Path | str) -> Path:
    video = Path(video)
    return video.with_name(video.name + SIDECAR_SUFFIX)


def parse_calibration(text: str, source: str = "calibration") -> Calibration:
    """A Calibration from sidecar JSON text; CalibrationError (one line) when it is unusable."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{source}: expected a JSON object with 'gain' and 'offset'")
    try:
        model = _SidecarModel.model_validate(data)
    except ValidationError as exc:
        field, problem = first_problem(exc)
        raise CalibrationError(f"{source}: '{field or 'value'}' {problem.lower()}") from None
    return make_calibration(model.gain, model.offset, source)


def make_calibration(gain: float, offset: float, source: str = "calibration") -> Calibration:
    if not (math.isfinite(gain) and math.isfinite(offset)) or gain <= 0:
        raise CalibrationError(f"{source}: gain must be a positive number and offset finite "
                               f"(got gain={gain}, offset={offset})")
    return Calibration(gain=float(gain), offset=float(offset))


def load_calibration(video: Path | str, settings=None) -> Calibration:
    """The sidecar's calibration when the video has one, else the settings' (``thermal_gain``
    and ``thermal_offset``; no settings: the defaults)."""
    sidecar = sidecar_path(video)
    if sidecar.is_file():
        return parse_calibration(sidecar.read_text(encoding="utf-8"), sidecar.name)
    if settings is None:
        return make_calibration(defaults.THERMAL_GAIN, defaults.THERMAL_OFFSET, "defaults")
    return make_calibration(settings.thermal_gain, settings.thermal_offset, "settings")


def write_sidecar(video: Path | str, calibration: Calibration) -> Path:
    path = sidecar_path(video)
    path.write_text(json.dumps({"gain": calibration.gain, "offset": calibration.offset}) + "\n")
    return path


def is_radiometric(video: Path | str) -> bool:
    """Whether the file's first video stream is 16-bit grayscale (decodes to uint16)."""
    with av.open(str(video)) as container:
        streams = container.streams.video
        return bool(streams) and streams[0].codec_context.pix_fmt in RADIOMETRIC_PIX_FMTS


def normalise(raw_u16: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> np.ndarray:
    """8-bit BGR for the face detector and for display: the frame's ``low_pct``..``high_pct``
    percentile range stretched over 0..255 (a fixed 16->8 bit cut would leave a scene that
    spans a few degrees as one flat grey; percentiles ignore a few dead or hot pixels)."""
    raw = np.asarray(raw_u16)
    sample = raw[::2, ::2] if min(raw.shape[:2]) >= 64 else raw
    low, high = np.percentile(sample, [low_pct, high_pct])
    span = max(float(high - low), 1.0)
    # Clip, not cv2.convertScaleAbs: its absolute value would turn the coldest pixels white.
    gray = np.clip((raw.astype(np.float32) - float(low)) * (255.0 / span) + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def canthus_region(shape: tuple[int, int], keypoints_5x2, box=None) -> np.ndarray | None:
    """Boolean mask of the inner-canthus region: between the eye keypoints, from 0.15 of
    the eye distance inside each eye centre to the midline, and 0.15 of it above and below
    the eye line (turned with the eye line when the head tilts), inside the face box. The
    inner canthi sit about a quarter of the eye distance inside the eye centres (adult
    intercanthal width ~33 mm vs ~63 mm between pupils). None when the eyes are closer than
    4 pixels (no reliable reading)."""
    eyes = np.asarray(keypoints_5x2, np.float64)[:2]
    distance = float(np.linalg.norm(eyes[1] - eyes[0]))
    if not math.isfinite(distance) or distance < 4:
        return None
    along = (eyes[1] - eyes[0]) / distance
    across = np.array([-along[1], along[0]])
    middle = eyes.mean(axis=0)
    h, w = shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    dx, dy = xs - middle[0], ys - middle[1]
    region = (np.abs(dx * along[0] + dy * along[1]) <= 0.35 * distance) & \
             (np.abs(dx * across[0] + dy * across[1]) <= 0.15 * distance)
    if box is not None:
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        region &= (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
    return region


def canthus_temperature(raw_u16: np.ndarray, keypoints_5x2, box, calibration: Calibration,
                        percentile: float = 98.0) -> float | None:
    """Degrees C at the inner canthi: the ``percentile`` of the canthus region's raw values
    (the canthi are the warmest part of it; a high percentile rather than the maximum so that
    a few noisy or defective pixels cannot raise an alert: at 98 that is up to 2 % of the
    region). On the Fluke face moved and scaled over frames, the 95th percentile read 0.2 C
    low against hand-marked canthi (the cooler nose bridge is in the region), the 98th 0.09 C.
    None when the face is too small or the region lies outside the frame."""
    raw = np.asarray(raw_u16)
    eyes = np.asarray(keypoints_5x2, np.float64)[:2]
    if not np.isfinite(eyes).all():
        return None
    # Work on the window around the eyes only, not a full-frame grid per face.
    reach = float(np.linalg.norm(eyes[1] - eyes[0]))
    x0 = max(0, int(math.floor(eyes[:, 0].min() - reach)))
    y0 = max(0, int(math.floor(eyes[:, 1].min() - reach)))
    x1 = min(raw.shape[1], int(math.ceil(eyes[:, 0].max() + reach)) + 1)
    y1 = min(raw.shape[0], int(math.ceil(eyes[:, 1].max() + reach)) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    offset = np.array([x0, y0])
    local_box = None if box is None else np.asarray(box[:4], np.float64) - np.tile(offset, 2)
    region = canthus_region((y1 - y0, x1 - x0), eyes - offset, local_box)
    if region is None or region.sum() < 4:
        return None
    value = np.percentile(raw[y0:y1, x0:x1][region], percentile)
    return float(calibration.to_celsius(value))


def fever(temp_c: float | None, threshold_c: float = DEFAULT_FEVER_C) -> bool:
    """At or above the screening threshold. No reading is no fever."""
    return temp_c is not None and temp_c >= threshold_c


class RadiometricPicture(Picture):
    """A decoded 16-bit frame: analyzers that look at pixels (the detector) get the
    contrast-stretched BGR copy, the thermal analyzer reads ``raw`` and ``calibration``."""

    def __init__(self, raw_u16: np.ndarray, calibration: Calibration):
        if raw_u16.dtype != np.uint16 or raw_u16.ndim != 2:
            raise ValueError(f"expected a 2-D uint16 frame, got {raw_u16.dtype} {raw_u16.shape}")
        super().__init__(bgr=normalise(raw_u16))
        self.raw, self.calibration = raw_u16, calibration

    @classmethod
    def from_frame(cls, frame: av.VideoFrame, calibration: Calibration) -> "RadiometricPicture":
        if frame.format.name not in RADIOMETRIC_PIX_FMTS:
            raise ValueError(f"not a radiometric frame ({frame.format.name})")
        return cls(frame.to_ndarray(), calibration)   # native-endian uint16 for both formats


def picture_of_frame(frame: av.VideoFrame, calibration: Calibration | None) -> Picture:
    """What the segment pipeline hands its analyzers: a RadiometricPicture for a 16-bit frame
    when the recording has a calibration, else the plain Picture. (The plain Picture of a
    gray16 frame is a fixed 16->8 bit cut: a face spanning a few degrees is invisible to the
    detector.)"""
    if calibration is not None and frame.format.name in RADIOMETRIC_PIX_FMTS:
        return RadiometricPicture.from_frame(frame, calibration)
    return Picture(frame)


@register
class ThermalAnalyzer(Analyzer):
    """Adds the ``temperature_c`` column on radiometric pictures (every face, every frame: a
    reading is a percentile over a few hundred pixels, far cheaper than the detector); on
    ordinary video every face reads None. In the segment pipeline (after ``begin(state)``
    and a tracker) it also keeps each track's hottest reading on the track's record."""

    name: ClassVar[str] = "thermal"
    Config: ClassVar[type[BaseModel]] = ThermalConfig

    def __init__(self, config: ThermalConfig):
        self.config = config
        self.state: SegmentState | None = None

    def begin(self, state: SegmentState) -> None:
        self.state = state

    def __call__(self, image: Picture | np.ndarray, faces: Faces) -> Faces:
        if not len(faces) or not isinstance(image, RadiometricPicture) or faces.keypoints is None:
            return faces
        temps = []
        for box, keypoints in zip(faces.boxes, faces.keypoints):
            temp = canthus_temperature(image.raw, keypoints, box, image.calibration, self.config.percentile)
            temps.append(None if temp is None else round(temp, 2))
        faces.columns["temperature_c"] = temps
        if self.state is not None and faces.track_ids is not None:
            for track_id, temp in zip(faces.track_ids, temps):
                record = self.state.tracks.get(int(track_id))
                if record is not None and temp is not None:
                    record.add_temperature(self.state.frame_index, temp)
        return faces
