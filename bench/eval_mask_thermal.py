"""Accuracy of the thermal reading on ../shared/media, per camera type.

Only one radiometric face is in the media: the Fluke map of IR_00121 (per-pixel temperatures).
The canthus rule (98th percentile of the region between the eyes) was chosen on it, so it is
measured here on two frame sequences made from it: the tuning sequence the rule was chosen on
and a test sequence with other sizes, path, noise and fever offset, against two truths: the
hand-marked canthi and, independent of vidfarm's rule, the camera's own hottest face pixel.
The FLIR radiometric JPEGs hold no face; the Lepton and TFW images are 8-bit (no
temperatures): for them only face detection is counted. The mask evaluation is in
:mod:`bench.eval_masks`. Run alone: ``python -m bench.eval_mask_thermal [MEDIA_DIR]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from bench.shared_media import MEDIA
from tests.thermalclip import FLUKE_CSV, hottest_face_c, make_thermal_clip, read_fluke_csv, read_temperatures
from workers.analytics.detector import DetectorConfig, FaceDetector
from workers.analytics.thermal import DEFAULT_FEVER_C, fever, load_calibration

# Real 8-bit thermal photos (no temperatures) and the faces a person counts in them
# (SOURCES.tsv: "4-5 people" and "3-4 people" include faces too small or turned to count).
THERMAL_PHOTOS = {"thermal/lepton_face.jpg": 1, "thermal/tfw/103_1_1_4_450_1.png": 1,
                  "thermal/tfw/3312.png": 4, "thermal/tfw/4076.png": 3}


def thermal_photo_detections(media_dir: Path | str, detector: FaceDetector | None = None) -> dict:
    """SCRFD (trained on visible light) on real thermal photos: faces found per photo."""
    detector = detector or FaceDetector(DetectorConfig())
    found = {}
    for name, expected in THERMAL_PHOTOS.items():
        path = Path(media_dir) / name
        if path.is_file():
            found[name] = {"expected": expected, "found": len(detector(cv2.imread(str(path))))}
    return found


# The two frame sequences (bench.eval_split): the tuning one is the clip the percentile was
# chosen on; the test one differs in size, path, noise, fever offset and frame size.
SEQUENCES = {
    "tuning": {"scales": (0.9, 1.4), "fever_offset_c": 2.5, "fever_frames": range(8, 16), "noise_c": 0.05,
               "seed": 121, "size": (480, 360)},
    "test": {"scales": (0.45, 0.85), "fever_offset_c": 3.0, "fever_frames": range(4, 12), "noise_c": 0.15,
             "seed": 7, "size": (640, 480)},
}


def _sequence_errors(csv_path: Path, part: str, threshold_c: float) -> dict:
    hottest = hottest_face_c(read_fluke_csv(csv_path))
    with tempfile.TemporaryDirectory() as scratch:
        clip = make_thermal_clip(Path(scratch) / "fluke_face.mkv", csv_path, **SEQUENCES[part])
        readings = read_temperatures(clip.path, load_calibration(clip.path))
    canthus, camera, fevers_found, false_fevers = [], [], 0, 0
    for truth, offset, faces in zip(clip.truth_c, clip.offsets_c, readings):
        temps = [t for t in faces if t is not None]
        if len(temps) != 1:
            continue
        canthus.append(temps[0] - truth)
        camera.append(temps[0] - (hottest + offset))
        if fever(truth, threshold_c):
            fevers_found += fever(temps[0], threshold_c)
        else:
            false_fevers += fever(temps[0], threshold_c)

    def summary(errors):
        if not errors:
            return {"mean_abs_c": None, "max_abs_c": None, "bias_c": None}
        return {"mean_abs_c": round(float(np.mean(np.abs(errors))), 3), "max_abs_c": round(float(np.max(np.abs(errors))), 3),
                "bias_c": round(float(np.mean(errors)), 3)}

    return {"frames": clip.frames, "frames_read": len(canthus), "vs_canthi": summary(canthus),
            "vs_camera_hottest": summary(camera), "fever_frames": sum(fever(t, threshold_c) for t in clip.truth_c),
            "fevers_found": fevers_found, "false_fevers": false_fevers,
            "normal_frames": sum(not fever(t, threshold_c) for t in clip.truth_c),
            "sequence": {k: str(v) for k, v in SEQUENCES[part].items()}}


def evaluate_thermal(media_dir: Path | str, threshold_c: float = DEFAULT_FEVER_C) -> dict:
    csv_path = Path(media_dir) / FLUKE_CSV
    if not csv_path.is_file():
        return {"skipped": f"{csv_path} is absent"}
    flir = sorted((Path(media_dir) / "thermal" / "flir_radiometric").glob("*.jpg"))
    return {"fluke": {part: _sequence_errors(csv_path, part, threshold_c) for part in SEQUENCES},
            "threshold_c": threshold_c, "flir_files": [p.name for p in flir],
            "thermal_photo_faces": thermal_photo_detections(media_dir)}


def main(argv: list[str]) -> int:
    media_dir = Path(argv[0]) if argv else MEDIA
    print(json.dumps({"thermal": evaluate_thermal(media_dir)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
