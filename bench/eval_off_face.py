"""What the eval's "detections off the face" are, which path made each, and what dropping some would cost.

``python -m bench.eval_off_face [MEDIA_DIR] [--part tuning|test] [--wide]`` runs the eval's mask
clips (:mod:`bench.eval_clips`, the chosen configuration of :mod:`bench.eval_masks`), prints every
detection whose centre is off the pasted photo (scale, photo, scene, frame, box, score, track, the
path that made it) and then, for each rule in ``RULES`` (a detection it matches is dropped), the
detections off the face left and the frames on which the photo's face is still found, per scale
(frames 2-8, as the eval counts them).

``--wide``: the tuning split shows too few false boxes to learn from, so each photo is also pasted
on the three other scenes, at other places (the clip builder's seed: its scene is ``seed % 4``;
:func:`wide_seeds`), and at 120 and 60 px besides the eval's scales; the same photos, the same
clip builder.

The path (``origin``): ``first pass``; a second look's box, ``follow-up``, ``moving area`` or
``blob`` (``weak`` when under the look threshold, kept as a followed face's continuation), or
``confirmed`` (the second detector vouched for it); ``gate carry`` (the motion gate carried a
face it did not look at); ``gap fill`` (the tracker drew it between two detections).
Measured 2026-12-06 and 2026-12-07: docs/accuracy.md, "Detections off the face".
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from bench import eval_masks
from bench.eval_clips import SCALES, analyse, backgrounds, inside, photo_clip, pipeline_config
from bench.eval_split import mask_split, part_arguments
from workers.analytics.detector import FaceDetector
from workers.analytics.second_look import SecondLook
from workers.analytics.tracks import box_iou

RULES = {
    "untracked, score < 0.33": lambda d: d["track"] is None and d["score"] < 0.33,
    "untracked, score < 0.35": lambda d: d["track"] is None and d["score"] < 0.35,
    "untracked, any score": lambda d: d["track"] is None,
    "any, score < 0.33": lambda d: d["score"] < 0.33,
}
SCENES = ("rocket", "coffee", "motorcycle", "brick")
WIDE_SCALES = SCALES + (("120 px", 120), ("60 px", 60))


def wide_seeds(index: int, n: int, scenes: int = len(SCENES)) -> list[int]:
    """``--wide``: the clip builder's seeds for photo ``index`` of a folder's ``n`` photos, one per
    scene (a seed's scene is ``seed % scenes``, its place on the scene follows the seed too). The
    k-th is the first seed from ``index + k * n`` on whose scene is ``index + k * step``
    (mod ``scenes``): ``step`` is n where n and the scene count have no common factor (the
    seeds ``index + k * n`` then cover every scene already, and are kept: with 15 photos a part,
    the widened eval of 2026-12-07 ran on these very clips), else 1 (``index + k * n`` alone
    would repeat scenes: 16 photos, say, would put every one on two scenes twice)."""
    step = n if math.gcd(n, scenes) == 1 else 1
    seeds = []
    for k in range(scenes):
        start = index + k * n
        seeds.append(start + (index + k * step - start) % scenes)
    return seeds


class Trace:
    """Per frame of the clip being analysed, the detector's boxes and the path that made each."""

    def __init__(self):
        self.frame = -1
        self.boxes: dict[int, list[tuple[np.ndarray, str]]] = defaultdict(list)
        self.detected: dict[int, list[np.ndarray]] = {}
        self.vouched: set[float] = set()

    def origin(self, frame: int, box, score: float) -> str:
        """The path of a final face: the traced box it is (same score, overlapping), else how the
        detector or the tracker added it."""
        best, tag = 0.0, None
        for traced, origin in self.boxes.get(frame, []):
            iou = box_iou(np.asarray(box, float), traced[:4])
            if abs(traced[4] - score) < 1e-3 and iou > best:
                best, tag = iou, origin
        if tag is not None and best >= 0.5:
            return tag
        if any(box_iou(np.asarray(box, float), d) >= 0.9 for d in self.detected.get(frame, [])):
            return "gate carry"
        return "gap fill"


@contextmanager
def traced(trace: Trace):
    """The detector's and the second look's methods wrapped to fill ``trace`` (class-wide, for
    the ``with``)."""
    originals = {(FaceDetector, n): getattr(FaceDetector, n) for n in ("begin", "__call__", "_first_pass", "_confirmed")}
    originals[(SecondLook, "record")] = SecondLook.record

    def begin(self, state=None):
        trace.frame = -1
        trace.boxes.clear()
        trace.detected.clear()
        return originals[(FaceDetector, "begin")](self, state)

    def call(self, image, faces=None):
        trace.frame += 1
        found = originals[(FaceDetector, "__call__")](self, image, faces)
        trace.detected[trace.frame] = [b.copy() for b in found.boxes]
        return found

    def first_pass(self, picture, regions, small):
        boxes, keypoints = originals[(FaceDetector, "_first_pass")](self, picture, regions, small)
        trace.boxes[trace.frame] += [(b.copy(), "first pass") for b in boxes]
        return boxes, keypoints

    def confirmed(self, region, boxes, kept, moving):
        vouched = originals[(FaceDetector, "_confirmed")](self, region, boxes, kept, moving)
        trace.vouched |= {round(float(s), 4) for s in boxes[vouched, 4]}
        return vouched

    def record(self, looks):
        for index, (_, boxes) in enumerate(looks):
            kind = ("follow-up" if index < len(self.following) else
                    "moving area" if index == self.area_index else "blob")
            for b in np.asarray(boxes, float).reshape(-1, 5):
                tag = ("confirmed" if round(float(b[4]), 4) in trace.vouched else
                       kind if b[4] >= self.threshold else kind + " weak")
                trace.boxes[trace.frame].append((b.copy(), tag))
        trace.vouched.clear()
        return originals[(SecondLook, "record")](self, looks)

    FaceDetector.begin, FaceDetector.__call__ = begin, call
    FaceDetector._first_pass, FaceDetector._confirmed, SecondLook.record = first_pass, confirmed, record
    try:
        yield trace
    finally:
        for (owner, name), method in originals.items():
            setattr(owner, name, method)


def record(media: Path, part: str, wide: bool = False, configs: dict | None = None) -> list[dict]:
    """One dict per detection of every clip: scale, photo, scene, frame, box, score, track, on (the
    photo), origin (the path that made it)."""
    configs = eval_masks.CANDIDATES[eval_masks.CHOSEN] if configs is None else configs
    config = pipeline_config(("detect", "track", "mask"), configs)
    detections: list[dict] = []
    with tempfile.TemporaryDirectory() as scratch, traced(Trace()) as trace:
        for scale, height in WIDE_SCALES if wide else SCALES:
            for folder in eval_masks.FOLDERS:
                photos = mask_split(media / "masks" / folder, part)
                for index, path in enumerate(photos):
                    for seed in wide_seeds(index, len(photos), len(backgrounds())) if wide else [index]:
                        clip = Path(scratch) / f"{folder}-{seed}.mp4"
                        rects = photo_clip(clip, cv2.imread(str(path)), height, seed)
                        result = analyse(clip, config)
                        for frame, (faces, rect) in enumerate(zip(result.frames, rects)):
                            detections.extend({
                                "scale": scale, "folder": folder, "photo": path.name, "seed": seed,
                                "scene": SCENES[seed % len(backgrounds())], "frame": frame,
                                "box": [round(v) for v in face["box"]], "score": round(face["score"], 3),
                                "track": face["track"], "on": inside(face["box"], rect),
                                "origin": trace.origin(frame, face["box"], face["score"])} for face in faces)
    return detections


def after_rule(detections: list[dict], drop) -> tuple[int, dict[str, int]]:
    """Detections off the face left, and per scale the frames (from the second) with the face found."""
    found: dict[str, set] = defaultdict(set)
    for d in detections:
        if d["on"] and d["frame"] and not drop(d):
            found[d["scale"]].add((d["photo"], d["seed"], d["frame"]))
    off = sum(1 for d in detections if not d["on"] and not drop(d))
    return off, {scale: len(found[scale]) for scale in dict.fromkeys(d["scale"] for d in detections)}


def main(argv: list[str] | None = None) -> int:
    parser = part_arguments("python -m bench.eval_off_face", __doc__.splitlines()[0])
    parser.add_argument("--wide", action="store_true", help="every photo on every scene, at 120 and 60 px too")
    parser.add_argument("--second-look", type=json.loads, default={},
                        help="JSON: second-look settings over the chosen configuration's, e.g. '{\"still_threshold\": 0}'")
    parser.add_argument("--json", type=Path, help="write every detection here")
    args = parser.parse_args(argv)
    configs = eval_masks.CANDIDATES[eval_masks.CHOSEN]
    if args.second_look:
        detect = configs.get("detect", {})       # its other settings kept
        configs = {**configs, "detect": {**detect, "second_look": {**detect.get("second_look", {}), **args.second_look}}}
    detections = record(args.media, args.part, args.wide, configs)
    for d in detections:
        if not d["on"]:
            print(f"off the face: {d['scale']} {d['photo']} seed {d['seed']} ({d['scene']}) frame {d['frame']} "
                  f"box {d['box']} score {d['score']} track {d['track']} origin {d['origin']}")
    origins: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for d in detections:
        origins[d["origin"]][d["on"]] += 1
    print("by origin (off, on the face): " + ", ".join(f"{o} {n[0]}/{n[1]}" for o, n in sorted(origins.items())))
    for name, drop in {"none dropped": lambda d: False, **RULES}.items():
        off, found = after_rule(detections, drop)
        print(f"{name}: off the face {off}; face found on " + ", ".join(f"{s} {n}" for s, n in found.items()))
    _, masked = after_rule([d for d in detections if d["folder"] == "with_mask"], lambda d: False)
    print("masked face found on " + ", ".join(f"{s} {n}" for s, n in masked.items()))
    if args.json:
        args.json.write_text(json.dumps(detections))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
