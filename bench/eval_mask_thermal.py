"""Accuracy of the mask classifier and of the thermal reading on ../shared/media.

``make eval`` calls :func:`evaluate_masks` and :func:`evaluate_thermal` and writes the figures
to docs/accuracy.md. Each returns a dict; ``{"skipped": reason}`` when its media is absent.
Run alone: ``python -m bench.eval_mask_thermal [MEDIA_DIR]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from tests.thermalclip import FLUKE_CSV, make_thermal_clip, read_temperatures
from workers.analytics.detector import DetectorConfig, FaceDetector
from workers.analytics.mask import MaskClassifier, crop_face
from workers.analytics.thermal import DEFAULT_FEVER_C, fever, load_calibration

MASK_CLASSES = {"with_mask": "mask", "without_mask": "no_mask"}   # folder -> expected label
MASK_METHOD = ("detector first, as the farm does: each photo is padded by half its long side "
               "(edge pixels repeated, since the photos are tight crops and SCRFD needs some "
               "context), the most confident SCRFD face is cropped with crop_face and classified; "
               "a photo with no face found is classified whole")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _classify_photo(image: np.ndarray, classifier: MaskClassifier, detector: FaceDetector
                    ) -> tuple[str, bool]:
    """(label, whether a face was found) for one photo, detector first."""
    pad = max(image.shape[:2]) // 2
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    faces = detector(padded)
    if len(faces):
        crop = crop_face(padded, faces.boxes[int(np.argmax(faces.scores))])
        return classifier.classify([crop])[0][0], True
    return classifier.classify([image])[0][0], False


def evaluate_masks(media_dir: Path | str, classifier: MaskClassifier | None = None,
                   detector: FaceDetector | None = None) -> dict:
    root = Path(media_dir) / "masks"
    if not all((root / folder).is_dir() for folder in MASK_CLASSES):
        return {"skipped": f"{root} with with_mask/ and without_mask/ is absent"}
    classifier = classifier or MaskClassifier()
    detector = detector or FaceDetector(DetectorConfig())
    per_class, errors, no_face, whole_right, total, right = {}, [], 0, 0, 0, 0
    for folder, expected in MASK_CLASSES.items():
        counts = {"total": 0, "correct": 0, "as_mask": 0, "as_no_mask": 0, "no_face_found": 0}
        for path in _image_files(root / folder):
            image = cv2.imread(str(path))
            label, found = _classify_photo(image, classifier, detector)
            whole_right += classifier.classify([image])[0][0] == expected
            no_face += not found
            counts["no_face_found"] += not found
            counts["total"] += 1
            counts["correct"] += label == expected
            counts[f"as_{label}"] += 1
            if label != expected:
                errors.append(f"{folder}/{path.name}")
        per_class[folder] = counts
        total, right = total + counts["total"], right + counts["correct"]
    return {"images": total, "accuracy": round(right / total, 4), "target": 0.9, "method": MASK_METHOD,
            "per_class": per_class, "no_face_found": no_face,
            "whole_image_accuracy": round(whole_right / total, 4), "errors": errors}


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


def evaluate_thermal(media_dir: Path | str, threshold_c: float = DEFAULT_FEVER_C) -> dict:
    csv_path = Path(media_dir) / FLUKE_CSV
    if not csv_path.is_file():
        return {"skipped": f"{csv_path} is absent"}
    with tempfile.TemporaryDirectory() as scratch:
        clip = make_thermal_clip(Path(scratch) / "fluke_face.mkv", csv_path)
        readings = read_temperatures(clip.path, load_calibration(clip.path))
    errors, fevers_found, false_fevers = [], 0, 0
    for truth, offset, faces in zip(clip.truth_c, clip.offsets_c, readings):
        temps = [t for t in faces if t is not None]
        if len(temps) != 1:
            continue
        errors.append(temps[0] - truth)
        if offset:
            fevers_found += fever(temps[0], threshold_c)
        else:
            false_fevers += fever(temps[0], threshold_c)
    abs_errors = np.abs(errors) if errors else np.array([np.nan])
    return {
        "frames": clip.frames, "frames_read": len(errors),
        "mean_abs_error_c": round(float(abs_errors.mean()), 3),
        "max_abs_error_c": round(float(abs_errors.max()), 3),
        "bias_c": round(float(np.mean(errors)), 3) if errors else None, "target_c": 0.3,
        "fever_frames": sum(1 for o in clip.offsets_c if o), "fevers_found": fevers_found,
        "false_fevers": false_fevers, "threshold_c": threshold_c,
        "thermal_photo_faces": thermal_photo_detections(media_dir),
        "method": ("IR_00121.csv (Fluke, real per-pixel temperatures) scaled 0.9-1.4x and moved over "
                   f"{clip.frames} frames, skin +{max(clip.offsets_c)} C on the fever frames, encoded as "
                   "gray16le FFV1 with a sidecar calibration; SCRFD on the normalised frames, canthus "
                   "reading against the 95th percentile of 7x7 windows at hand-marked canthi"),
    }


def main(argv: list[str]) -> int:
    media_dir = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "shared" / "media"
    print(json.dumps({"masks": evaluate_masks(media_dir), "thermal": evaluate_thermal(media_dir)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
