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
from workers.analytics.confirm import vouch
from workers.analytics.detector import FaceDetector
from workers.analytics.motion import region_picture
from workers.analytics.quality import frontal_offset, pitch_position
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
        # --features: per frame, (box row, features) of each face the detector returned; the
        # detector and picture of the look being made (for the second detector's verdict).
        self.features: dict[int, list[tuple[np.ndarray, dict]]] = defaultdict(list)
        self.want_features = False
        self.detector = self.picture = None
        self.verdicts: dict[float, float] = {}

    def features_of(self, frame: int, box, score: float) -> dict:
        for traced, features in self.features.get(frame, []):
            if abs(traced[4] - score) < 1e-3 and box_iou(np.asarray(box, float), traced[:4]) >= 0.5:
                return features
        return {}

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
    originals[(FaceDetector, "_second_pass")] = FaceDetector._second_pass

    def begin(self, state=None):
        trace.frame = -1
        trace.boxes.clear()
        trace.detected.clear()
        trace.features.clear()
        return originals[(FaceDetector, "begin")](self, state)

    def call(self, image, faces=None):
        trace.frame += 1
        found = originals[(FaceDetector, "__call__")](self, image, faces)
        trace.detected[trace.frame] = [b.copy() for b in found.boxes]
        if trace.want_features and len(found):
            shares = (self.second_look.motion.moving_share(found.boxes) if self.second_look is not None
                      else np.zeros(len(found)))
            for box, score, points, share in zip(found.boxes, found.scores, found.keypoints, shares):
                features = {"moving_share": round(float(share), 3), **landmark_features(box, points),
                            "retinaface": trace.verdicts.get(round(float(score), 4))}
                trace.features[trace.frame].append((np.r_[box, score], features))
        trace.verdicts.clear()
        return found

    def second_pass(self, picture, boxes, keypoints):
        trace.detector, trace.picture = self, picture
        return originals[(FaceDetector, "_second_pass")](self, picture, boxes, keypoints)

    def first_pass(self, picture, regions, small):
        boxes, keypoints = originals[(FaceDetector, "_first_pass")](self, picture, regions, small)
        trace.boxes[trace.frame] += [(b.copy(), "first pass") for b in boxes]
        return boxes, keypoints

    def confirmed(self, region, boxes, kept, moving):
        vouched = originals[(FaceDetector, "_confirmed")](self, region, boxes, kept, moving)
        trace.vouched |= {round(float(s), 4) for s in boxes[vouched, 4]}
        return vouched

    def record(self, looks):
        for index, (square, boxes) in enumerate(looks):
            kind = ("follow-up" if index < len(self.following) else
                    "moving area" if index == self.area_index else "blob")
            for b in np.asarray(boxes, float).reshape(-1, 5):
                tag = ("confirmed" if round(float(b[4]), 4) in trace.vouched else
                       kind if b[4] >= self.threshold else kind + " weak")
                trace.boxes[trace.frame].append((b.copy(), tag))
            weak = np.asarray(boxes, float).reshape(-1, 5)
            weak = weak[weak[:, 4] < self.still_threshold]
            if trace.want_features and len(weak) and trace.detector.confirmer is not None:
                # What the second detector says of the look's kept boxes under still_threshold
                # (its best overlapping score, 0: none), on the region the look read.
                detector = trace.detector
                side = self.input_side(index) or detector._look_side(square)
                region, scale, x0, y0 = region_picture(trace.picture, square, side)
                in_region = weak.copy()
                in_region[:, :4] = (in_region[:, :4] - [x0, y0, x0, y0]) * scale
                _, scores = vouch(in_region, detector.confirmer.boxes(region))
                trace.verdicts.update({round(float(b[4]), 4): round(float(v), 3) for b, v in zip(weak, scores)})
        trace.vouched.clear()
        return originals[(SecondLook, "record")](self, looks)

    FaceDetector.begin, FaceDetector.__call__, FaceDetector._second_pass = begin, call, second_pass
    FaceDetector._first_pass, FaceDetector._confirmed, SecondLook.record = first_pass, confirmed, record
    try:
        yield trace
    finally:
        for (owner, name), method in originals.items():
            setattr(owner, name, method)


def landmark_features(box, points) -> dict:
    """The five keypoints' geometry: eye distance over the box's width, the nose's offset from
    the eyes' midpoint (eye distances), where it sits between the eye and mouth lines, the eye
    line's tilt, the mouth's width over the eye distance."""
    p = np.asarray(points, np.float64)
    eyes = float(np.linalg.norm(p[1] - p[0]))
    width = max(float(box[2] - box[0]), 1e-6)
    return {"eye_ratio": round(eyes / width, 3), "yaw": round(min(frontal_offset(p), 99.0), 3),
            "pitch": round(max(-99.0, min(pitch_position(p), 99.0)), 3),
            "tilt": round(abs(float(p[1, 1] - p[0, 1])) / max(eyes, 1e-6), 3),
            "mouth_ratio": round(float(np.linalg.norm(p[4] - p[3])) / max(eyes, 1e-6), 3)}


def record(media: Path, part: str, wide: bool = False, configs: dict | None = None,
           features: bool = False) -> list[dict]:
    """One dict per detection of every clip: scale, photo, scene, frame, box, score, track, on (the
    photo), origin (the path that made it); ``features``: and each box's own motion, keypoint
    geometry and the second detector's verdict on a look's box under ``still_threshold``."""
    configs = eval_masks.CANDIDATES[eval_masks.CHOSEN] if configs is None else configs
    config = pipeline_config(("detect", "track", "mask"), configs)
    detections: list[dict] = []
    with tempfile.TemporaryDirectory() as scratch, traced(Trace()) as trace:
        trace.want_features = features
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
                                "origin": trace.origin(frame, face["box"], face["score"]),
                                **trace.features_of(frame, face["box"], face["score"])} for face in faces)
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
    parser.add_argument("--features", action="store_true",
                        help="record each box's own motion, keypoint geometry and RetinaFace's verdict (with --json)")
    args = parser.parse_args(argv)
    configs = eval_masks.CANDIDATES[eval_masks.CHOSEN]
    if args.second_look:
        detect = configs.get("detect", {})       # its other settings kept
        configs = {**configs, "detect": {**detect, "second_look": {**detect.get("second_look", {}), **args.second_look}}}
    detections = record(args.media, args.part, args.wide, configs, args.features)
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
