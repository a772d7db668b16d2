"""Masked and bare faces at four scales through the segment pipeline: detection and mask labels.

For each candidate configuration (``CANDIDATES``), each split and each scale, every photo of
``masks/`` becomes a clip (:mod:`bench.eval_clips`) analysed by detect -> track -> mask. Counted:
frames on which the photo's face was detected (from the second frame on: the second look needs
a previous frame to see motion), detections elsewhere (false), and per clip the label the
track ended with (``mask``, ``no_mask`` or none: not judged).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2

from bench.eval_clips import SCALES, analyse, inside, photo_clip, pipeline_config
from bench.eval_split import mask_split
from workers.analytics.mask import vote

FOLDERS = {"with_mask": "mask", "without_mask": "no_mask"}
OFF = {"lower_face_cue": False, "flip_mobilenet": False}      # the classifiers alone, as they were
# The candidates measured before the tracker filled missed frames (workers/analytics/gaps.py) ran
# without it: switched off here, their rows stay what they were.
NO_GAPS = {"track": {"max_gap_frames": 0}}
# Likewise the candidates measured before follow-up looks continued their face (issue 14, 40 px),
# and before they were sized to it (issue 15: follow_side, the default since; the row that
# measured it without the first pass's finds continuing a followed face, 402 masked tuning
# frames against 403, is in docs/benchmarks.md).
# And before RetinaFace vouched for a look's weak boxes (issue 14: `confirm`, the default since).
# And before a look's weak boxes had to touch motion (issue 14, detections off the face:
# `still_threshold`, the default since).
STILL_ANYWHERE = {"still_threshold": 0}
# A candidate: such a box's own pixels must have changed too (issue 14, offface14: `still_moving_share`,
# chosen on tuning at 0.05, not the default: docs/accuracy.md says why).
OWN_PIXELS = {"still_moving_share": 0.05}
NO_CONFIRM = {"confirm": "none", **STILL_ANYWHERE}
AS_ANY_LOOK = {"continue_faces": False, "follow_side": 0, **NO_CONFIRM}
CANDIDATES = {
    "before (one pass, MobileNetV2)": {"detect": {"second_look": {"enabled": False}},
                                       "mask": {"method": "mobilenet", **OFF}, **NO_GAPS},
    "second look without the moving-area look, ensemble": {"detect": {"second_look": {"area_share": 0, **AS_ANY_LOOK}},
                                                           "mask": {"method": "ensemble", **OFF}, **NO_GAPS},
    "second look, MobileNetV2": {"detect": {"second_look": AS_ANY_LOOK}, "mask": {"method": "mobilenet", **OFF},
                                 **NO_GAPS},
    "second look, embedding classifier": {"detect": {"second_look": AS_ANY_LOOK},
                                          "mask": {"method": "embedding", **OFF}, **NO_GAPS},
    "second look, ensemble (mean of both)": {"detect": {"second_look": AS_ANY_LOOK},
                                             "mask": {"method": "ensemble", **OFF}, **NO_GAPS},
    "second look, ensemble + lower-face cue + mirrored MobileNetV2 (mean of three)": {
        "detect": {"second_look": AS_ANY_LOOK}, "mask": {"method": "ensemble"}, **NO_GAPS},
    "mean of three, missed frames filled between linked detections": {"detect": {"second_look": AS_ANY_LOOK},
                                                                      "mask": {"method": "ensemble"}},
    "gap filling, follow-up looks continue their face": {"detect": {"second_look": {"follow_side": 0, **NO_CONFIRM}},
                                                         "mask": {"method": "ensemble"}},
    "follow-up looks sized to their face, followed through the first pass's finds": {
        "detect": {"second_look": NO_CONFIRM}, "mask": {"method": "ensemble"}},
    "RetinaFace vouches for a look's weak boxes where the look kept no face": {
        "detect": {"second_look": STILL_ANYWHERE}, "mask": {"method": "ensemble"}},
    "a look's weak boxes kept only where motion touches them": {"mask": {"method": "ensemble"}},
    "a look's weak boxes kept only where their own pixels changed": {"detect": {"second_look": OWN_PIXELS},
                                                                    "mask": {"method": "ensemble"}},
}
CHOSEN = "a look's weak boxes kept only where motion touches them"


def _empty() -> dict:
    return {"frames": 0, "found": 0, "false": 0, "clips": 0, "clips_found": 0, "judged": 0, "correct": 0}


def evaluate_candidate(media: Path, configs: dict, part: str, scales=SCALES, clips: list | None = None) -> dict:
    """{scale: {folder: counts}} for one candidate on one split. ``clips``: if given, one dict
    per clip is appended: scale, truth, photo, and the vote of the track whose label the clip
    got ([label, score]: score, the mean probability of its voters, says how sure it was; [None,
    None] when not judged) and its number of samples (bench.eval_mask_band)."""
    config = pipeline_config(("detect", "track", "mask"), configs)
    out: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for scale, height in scales:
            out[scale] = {}
            for folder, truth in FOLDERS.items():
                counts = out[scale][folder] = _empty()
                for seed, path in enumerate(mask_split(media / "masks" / folder, part)):
                    clip = Path(scratch) / f"{folder}-{seed}.mp4"
                    rects = photo_clip(clip, cv2.imread(str(path)), height, seed)
                    result = analyse(clip, config)
                    hits = 0
                    for index, (faces, rect) in enumerate(zip(result.frames, rects)):
                        on_photo = [inside(face["box"], rect) for face in faces]
                        counts["false"] += on_photo.count(False)
                        if index:
                            counts["frames"] += 1
                            counts["found"] += any(on_photo)
                        hits += any(on_photo)
                    counts["clips"] += 1
                    counts["clips_found"] += hits > 0
                    labelled = [face for faces, rect in zip(result.frames, rects)
                                for face in faces if inside(face["box"], rect) and face["mask"]]
                    if labelled:
                        counts["judged"] += 1
                        counts["correct"] += labelled[-1]["mask"] == truth
                    if clips is not None:
                        votes = [t["mask_votes"] for t in result.tracks if labelled and t["track"] == labelled[-1]["track"]]
                        clips.append({"scale": scale, "truth": truth, "photo": path.name,
                                      "vote": list(vote(votes[0] if votes else [])), "samples": len(sum(votes, []))})
    return out


def evaluate_masks(media: Path) -> dict:
    if not all((media / "masks" / folder).is_dir() for folder in FOLDERS):
        return {"skipped": f"{media / 'masks'} with with_mask/ and without_mask/ is absent"}
    figures = {}
    for name, configs in CANDIDATES.items():
        figures[name] = {}
        for part in ("tuning", "test"):
            started = time.perf_counter()
            figures[name][part] = evaluate_candidate(media, configs, part)
            print(f"masks: {name}, {part}: {time.perf_counter() - started:.0f} s", flush=True)
    return {"candidates": figures, "chosen": CHOSEN}
