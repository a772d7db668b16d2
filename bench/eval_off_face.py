"""What the eval's "detections off the face" are, and what dropping weak untracked ones would cost.

``python -m bench.eval_off_face [MEDIA_DIR] [--part tuning|test]`` runs the eval's mask clips
(:func:`bench.eval_masks.evaluate_candidate`, the chosen configuration), prints every detection
whose centre is off the pasted photo (scale, photo, frame, box, score, track) and then, for each
rule in ``RULES`` (a detection it matches is dropped), the detections off the face left and the
frames on which the photo's face is still found, per scale (frames 2-8, as the eval counts them).
Measured 2026-12-06: docs/accuracy.md, "Detections off the face".
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from bench import eval_masks
from bench.eval_clips import inside
from bench.eval_split import part_arguments

RULES = {
    "untracked, score < 0.33": lambda d: d["track"] is None and d["score"] < 0.33,
    "untracked, score < 0.35": lambda d: d["track"] is None and d["score"] < 0.35,
    "untracked, any score": lambda d: d["track"] is None,
    "any, score < 0.33": lambda d: d["score"] < 0.33,
}


def record(media: Path, part: str) -> list[dict]:
    """One dict per detection of every clip: scale, photo, frame, box, score, track, on (the photo)."""
    detections: list[dict] = []
    photo_clip, analyse = eval_masks.photo_clip, eval_masks.analyse
    current: dict = {}

    def on_photo_clip(path, photo, height, seed):
        rects = photo_clip(path, photo, height, seed)
        folder = path.name.rsplit("-", 1)[0]
        current.update(rects=rects, scale=f"{height} px" if height else "close-up",
                       photo=eval_masks.mask_split(media / "masks" / folder, part)[seed].name)
        return rects

    def on_analyse(path, config, gallery=None):
        result = analyse(path, config, gallery)
        for index, (faces, rect) in enumerate(zip(result.frames, current["rects"])):
            detections.extend({"scale": current["scale"], "photo": current["photo"], "frame": index,
                            "box": [round(v) for v in face["box"]], "score": round(face["score"], 3),
                            "track": face["track"], "on": inside(face["box"], rect)} for face in faces)
        return result

    eval_masks.photo_clip, eval_masks.analyse = on_photo_clip, on_analyse
    try:
        eval_masks.evaluate_candidate(media, eval_masks.CANDIDATES[eval_masks.CHOSEN], part)
    finally:
        eval_masks.photo_clip, eval_masks.analyse = photo_clip, analyse
    return detections


def after_rule(detections: list[dict], drop) -> tuple[int, dict[str, int]]:
    """Detections off the face left, and per scale the frames (from the second) with the face found."""
    found: dict[str, set] = defaultdict(set)
    for d in detections:
        if d["on"] and d["frame"] and not drop(d):
            found[d["scale"]].add((d["photo"], d["frame"]))
    off = sum(1 for d in detections if not d["on"] and not drop(d))
    return off, {scale: len(found[scale]) for scale in dict.fromkeys(d["scale"] for d in detections)}


def main(argv: list[str] | None = None) -> int:
    args = part_arguments("python -m bench.eval_off_face", __doc__.splitlines()[0]).parse_args(argv)
    detections = record(args.media, args.part)
    for d in detections:
        if not d["on"]:
            print(f"off the face: {d['scale']} {d['photo']} frame {d['frame']} box {d['box']} score {d['score']} "
                  f"track {d['track']}")
    for name, drop in {"none dropped": lambda d: False, **RULES}.items():
        off, found = after_rule(detections, drop)
        print(f"{name}: off the face {off}; face found on " + ", ".join(f"{s} {n}" for s, n in found.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
