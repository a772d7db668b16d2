"""Do dark (under-exposed) faces get wrong names? Recognition's probes darkened (issue 14).

``python -m bench.eval_dark_recognition [MEDIA_DIR] [--part tuning|test] [--crf N] [--out FILE]``
builds the recognition eval's gallery (:mod:`bench.eval_recognition`: enrolled people from their
first, lit photo, plus the distractor faces) and probes it with one part's photos, each shrunk so
the face is 40-200 px tall and then darkened as an under-exposed camera gives it (every level
times ``GAINS``) or washed out (``FOG``: a quarter of the contrast on a mid-grey), with ``--crf``
passed once through libx264 as a camera's stream carries it, then detected, gated
(size, score, pose, blur: the recogniser's default gate, no contrast floor) and embedded as the
farm does. It records, per judged probe, the aligned face's ``contrast`` (the mask gate's
measure), the similarity to its own enrolled photo and the highest to anyone else, and prints, per
contrast bin and per exposure, the genuine and impostor similarities and the false names at the
default and the tuned threshold, then what a contrast floor would leave judged (re-scored from the
one run: exact, a floor only drops a judged probe).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from bench.eval_split import part_arguments, person_part

GAINS = (1.0, 0.5, 0.25, 0.12, 0.06)
FOG = ("fog", 0.25, 96.0)          # level * 0.25 + 96: a lit but washed-out face (haze, glare)
# docs/accuracy.md, "Recognition at scale": chosen on the tuning people against the 725-identity
# gallery (it was 0.427 against the 116-identity gallery of the bench's first run, 2026-12-06).
TUNED_THRESHOLD = 0.47
BINS = (0, 8, 12, 20, 30, 1000)
FLOORS = (0, 8, 12, 20)


def exposed(image: np.ndarray, gain: float, offset: float = 0.0) -> np.ndarray:
    """Every level times ``gain`` plus ``offset``, rounded to 8 bits as a camera writes it."""
    return np.clip(image.astype(np.float32) * gain + offset + 0.5, 0, 255).astype(np.uint8)


def h264(image: np.ndarray, crf: int) -> np.ndarray:
    """The image after one trip through libx264 (yuv420p, as a camera's stream carries it): the codec
    squeezes a dark face's few grey levels further."""
    import av

    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = w, h, "yuv420p"
    codec.options = {"preset": "ultrafast", "crf": str(crf)}
    packets = codec.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="bgr24"))
    packets += codec.encode(None)
    decoder = av.CodecContext.create("h264", "r")
    frames = [f for packet in packets for f in decoder.decode(packet)] + list(decoder.decode(None))
    return frames[0].to_ndarray(format="bgr24")


def exposures() -> list[tuple[str, float, float]]:
    return [(f"gain {g:g}", g, 0.0) for g in GAINS] + [FOG]


def probe(detector, embedder, image: np.ndarray, face_px: int, gain: float, offset: float, gate,
          crf: int | None = None) -> dict:
    """One probe as the farm sees it: found, judged, the aligned face's contrast, its embedding."""
    from bench.eval_recognition import _largest
    from workers.analytics.quality import contrast, geometry_ok, sharp_enough

    faces = detector(image)
    if not len(faces):
        return {"found": False, "judged": False}
    row = _largest(faces)
    scale = min(1.0, face_px / float(faces.boxes[row, 3] - faces.boxes[row, 1]))
    small = exposed(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), gain, offset)
    if crf is not None:
        small = h264(small, crf)
    faces = detector(small)
    if not len(faces):
        return {"found": False, "judged": False}
    row = _largest(faces)
    aligned = embedder.aligned(small, faces.keypoints[row])
    out = {"found": True, "contrast": contrast(aligned), "light": float(aligned.mean()),
           "score": float(faces.scores[row])}
    judged = (geometry_ok(gate, faces.boxes[row], float(faces.scores[row]), faces.keypoints[row])
              and sharp_enough(gate, aligned))
    out["judged"] = bool(judged)
    if judged:
        out["vector"] = embedder.embed_aligned(aligned)
    return out


def record(media: Path, part: str, crf: int | None = None) -> list[dict]:
    """One dict per probe (person, truth, size, exposure, found, judged, contrast, genuine, impostor)."""
    from bench.eval_recognition import FACE_SIZES, _photo_face, distractor_vectors, identity_sets
    from core.analyzer_configs import RecognizerConfig
    from workers.analytics.detector import DetectorConfig, FaceDetector
    from workers.analytics.gallery import Gallery
    from workers.analytics.recognizer import FaceEmbedder

    detector, embedder, gate = FaceDetector(DetectorConfig()), FaceEmbedder(), RecognizerConfig().quality
    people = identity_sets(media)
    enrolled = {name: paths for name, paths in people.items() if len(paths) > 1}
    rows = [(name, embedder.embed(*_photo_face(detector, paths[0])).tobytes()) for name, paths in enrolled.items()]
    rows += [(f"distractor_{i}", v.tobytes()) for i, v in enumerate(distractor_vectors(detector, embedder, media))]
    gallery = Gallery.from_rows(rows)
    names = np.asarray(gallery.names)
    probes = []
    for name, paths in people.items():
        if person_part(name) != part:
            continue
        truth = name if name in enrolled else None
        for path in (paths[1:] if truth else paths):
            image = cv2.imread(str(path))
            for size in FACE_SIZES:
                for label, gain, offset in exposures():
                    p = probe(detector, embedder, image, size, gain, offset, gate, crf)
                    entry = {"person": name, "photo": path.name, "truth": truth, "size": size, "exposure": label,
                             **{k: v for k, v in p.items() if k != "vector"}}
                    if "vector" in p:
                        sims = gallery.vectors @ p["vector"]
                        own = sims[names == truth] if truth else np.zeros(0)
                        entry["genuine"] = float(own.max()) if own.size else None
                        entry["impostor"] = float(sims[names != truth].max())
                        entry["impostor_name"] = str(names[names != truth][int(np.argmax(sims[names != truth]))])
                    probes.append(entry)
    return probes


def named(entry: dict, threshold: float) -> str | None:
    """'right', 'false' or None (nobody named), as ``Gallery.match`` names a judged probe:
    the best match over the whole gallery, if it reaches the threshold."""
    genuine, impostor = entry.get("genuine"), entry["impostor"]
    if genuine is not None and genuine >= impostor:
        return "right" if genuine >= threshold else None
    return "false" if impostor >= threshold else None


def rescored(probes: list[dict], floor: float, threshold: float) -> dict:
    """Judged probes, rank-1 of the known, right and false names, if probes whose contrast is under
    ``floor`` had not been judged (the gate refuses them: they name no one)."""
    judged = [p for p in probes if p["judged"] and p["contrast"] >= floor]
    known = [p for p in judged if p["truth"]]
    outcomes = [named(p, threshold) for p in judged]
    return {"probes": len(probes), "judged": len(judged), "known": len(known),
            "rank1": sum(p["genuine"] >= p["impostor"] for p in known),
            "right": outcomes.count("right"), "false": outcomes.count("false")}


def by_bin(probes: list[dict]) -> dict[str, dict]:
    """Per contrast bin of the judged probes: count, genuine similarity (min), impostor (max)."""
    out = {}
    for low, high in zip(BINS, BINS[1:]):
        rows = [p for p in probes if p["judged"] and low <= p["contrast"] < high]
        genuine = [p["genuine"] for p in rows if p.get("genuine") is not None]
        out[f"{low}-{high}"] = {"judged": len(rows), "genuine_min": min(genuine) if genuine else None,
                                "genuine_median": float(np.median(genuine)) if genuine else None,
                                "impostor_max": max((p["impostor"] for p in rows), default=None)}
    return out


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    from workers.analytics.gallery import DEFAULT_THRESHOLD

    parser = part_arguments("python -m bench.eval_dark_recognition", __doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--crf", type=int, help="pass each probe through libx264 at this CRF (a camera's stream)")
    parser.add_argument("--load", type=Path, help="re-score a recorded --out file instead of running")
    args = parser.parse_args(argv)
    probes = json.loads(args.load.read_text()) if args.load else record(args.media, args.part, args.crf)
    if args.out:
        args.out.write_text(json.dumps(probes, indent=1) + "\n")
    for label, *_ in exposures():
        rows = [p for p in probes if p["exposure"] == label]
        judged = [p for p in rows if p["judged"]]
        genuine = [p["genuine"] for p in judged if p.get("genuine") is not None]
        c = [p["contrast"] for p in judged]
        print(f"{label}: found {sum(p['found'] for p in rows)}/{len(rows)} judged {len(judged)} "
              f"contrast {_fmt(min(c, default=None))}-{_fmt(max(c, default=None))} "
              f"genuine min {_fmt(min(genuine, default=None))} impostor max "
              f"{_fmt(max((p['impostor'] for p in judged), default=None))} | "
              + "; ".join(f"at {t}: {r['right']} right {r['false']} false, rank-1 {r['rank1']}/{r['known']}"
                          for t in (DEFAULT_THRESHOLD, TUNED_THRESHOLD) for r in [rescored(rows, 0, t)]))
    for span, b in by_bin(probes).items():
        print(f"contrast {span}: judged {b['judged']} genuine min {_fmt(b['genuine_min'])} median "
              f"{_fmt(b['genuine_median'])} impostor max {_fmt(b['impostor_max'])}")
    for floor in FLOORS:
        print(f"contrast floor {floor}: " + "; ".join(
            f"at {t}: judged {r['judged']}/{r['probes']} right {r['right']} false {r['false']} "
            f"rank-1 {r['rank1']}/{r['known']}" for t in (DEFAULT_THRESHOLD, TUNED_THRESHOLD)
            for r in [rescored(probes, floor, t)]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
