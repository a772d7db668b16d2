"""What each mask voter said on every sampled face, and how good the face was (issue 14).

``python -m bench.eval_mask_quality [MEDIA_DIR] [--part tuning|test] [--hamilton] [--out FILE]``
runs the eval's mask clips (:func:`bench.eval_masks.evaluate_candidate`, the chosen
configuration) or the Hamilton clip (nobody in it masked; analysed in this process as one
segment, detect -> track -> recognize -> mask with the farm's default analyzer settings) and
records, for every face the mask analyzer sampled: the three voters' P(mask) (the embedding
classifier, MobileNetV2 over the crop and its mirror image, the lower-face cue), the box's
height, the detector's score, the pose from the five keypoints (frontal offset, pitch position,
roll), the sharpness of the aligned face and its lighting (mean and spread of its grey levels; the spread of its centre's: the
mask gate's ``contrast``).
Writes one JSON list (one dict per clip or track: truth, the vote, its samples) to ``--out`` and
prints a summary per clip/track whose vote was wrong, then the judged and right clips per scale
had faces under each contrast floor in ``FLOORS`` not voted (recorded with the floor off). The question it answers: does any of
these separate the wrong labels from the right ones on the tuning split?
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from bench import eval_clips, eval_masks
from bench.eval_clips import SCALES, inside
from bench.eval_split import part_arguments
from workers.analytics import mask as mask_module
from workers.analytics.mask_cue import cue_probability
from workers.analytics.picture import Picture
from workers.analytics.quality import contrast, frontal_offset, pitch_position, sharpness
from workers.analytics.recognizer import align_face


def roll_degrees(points) -> float:
    points = np.asarray(points, np.float64)
    dx, dy = points[1] - points[0]
    return math.degrees(math.atan2(dy, dx))


def describe(analyzer, image, faces, row: int) -> dict:
    """The voters' P(mask) and the face's quality for one sampled row."""
    frame = Picture.of(image).bgr()[0]
    points = faces.keypoints[row]
    aligned = align_face(frame, points)
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY).astype(np.float32)
    box = [float(v) for v in faces.boxes[row][:4]]
    emb = analyzer.embedding.classify_faces(frame, [points], analyzer.config.quality)[0]
    crops = analyzer.crops(image, faces, [row])
    mob = analyzer.mobilenet.classify([crops[0][1]], flip=analyzer.flip)[0] if crops else None
    eye_distance = float(np.linalg.norm(np.asarray(points[1]) - np.asarray(points[0])))
    return {"emb": None if emb is None else mask_module._probability_of_mask(emb),
            "mob": None if mob is None else mask_module._probability_of_mask(mob),
            "cue": cue_probability(aligned), "height": box[3] - box[1], "width": box[2] - box[0],
            "eye_px": eye_distance, "score": float(faces.scores[row]), "yaw": frontal_offset(points),
            "pitch": pitch_position(points), "roll": roll_degrees(points), "sharp": sharpness(aligned),
            "light": float(grey.mean()), "spread": float(grey.std()), "contrast": contrast(aligned)}


def recording():
    """A context that records, per track id, what every _classified call sampled."""
    samples: dict[int, list[dict]] = {}
    classified = mask_module.MaskAnalyzer._classified

    def on_classified(self, image, faces, rows, known=None):
        rows = list(rows)
        out = classified(self, image, faces, rows, known)
        for row, (label, p) in out:
            entry = describe(self, image, faces, row)
            entry.update(frame=getattr(self.state, "frame_index", None), vote=[label, p])
            samples.setdefault(int(faces.track_ids[row]) if faces.track_ids is not None else -1, []).append(entry)
        return out

    class Recording:
        def __enter__(self):
            mask_module.MaskAnalyzer._classified = on_classified
            return samples

        def __exit__(self, *exc):
            mask_module.MaskAnalyzer._classified = classified

    return Recording()


# Recorded with the contrast floor off, so that every floor can be re-scored from one run (exact: the
# floor only drops a sampled face's vote, it changes no sample).
UNGATED = {"min_score": 0.3, "min_contrast": 0}
FLOORS = (0, 8, 12, 16, 20, 24, 28, 32)


def _ungated(configs: dict) -> dict:
    mask = dict(configs.get("mask", {}))
    mask["quality"] = {**mask.get("quality", {}), **UNGATED}
    return {**configs, "mask": mask}


def darkened(image: np.ndarray, gain: float) -> np.ndarray:
    """The image as an under-exposed camera would give it: every level times ``gain``."""
    return np.clip(image.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)


def record_clips(media: Path, part: str, gain: float = 1.0) -> list[dict]:
    """One dict per clip: scale, truth, photo, vote, and the samples of the track it was labelled by.
    ``gain`` < 1: the photo and the scene darkened (:func:`darkened`), as in a dim room."""
    clips: list[dict] = []
    photo_clip, analyse, backgrounds = eval_masks.photo_clip, eval_masks.analyse, eval_clips.backgrounds
    current: dict = {}

    def on_photo_clip(path, photo, height, seed):
        rects = photo_clip(path, darkened(photo, gain) if gain != 1 else photo, height, seed)
        folder = path.name.rsplit("-", 1)[0]
        current.update(rects=rects, truth=eval_masks.FOLDERS[folder], folder=folder, seed=seed,
                       scale=next(name for name, h in SCALES if h == height))
        return rects

    with recording() as samples:
        def on_analyse(path, config, gallery=None):
            samples.clear()
            result = analyse(path, config, gallery)
            labelled = [face for faces, rect in zip(result.frames, current["rects"])
                        for face in faces if inside(face["box"], rect) and face["mask"]]
            track = labelled[-1]["track"] if labelled else None
            photo = eval_masks.mask_split(media / "masks" / current["folder"], part)[current["seed"]].name
            chosen = [s for t, rows in samples.items() for s in rows if t == track]
            clips.append({"scale": current["scale"], "truth": current["truth"], "photo": photo,
                          "label": labelled[-1]["mask"] if labelled else None,
                          "score": labelled[-1]["mask_score"] if labelled else None, "samples": chosen})
            return result

        eval_masks.photo_clip, eval_masks.analyse = on_photo_clip, on_analyse
        if gain != 1:
            eval_clips.backgrounds = lambda: tuple(darkened(scene, gain) for scene in backgrounds())
        try:
            eval_masks.evaluate_candidate(media, _ungated(eval_masks.CANDIDATES[eval_masks.CHOSEN]), part)
        finally:
            eval_masks.photo_clip, eval_masks.analyse, eval_clips.backgrounds = photo_clip, analyse, backgrounds
    return clips


def record_hamilton(media: Path) -> list[dict]:
    """One dict per Hamilton track that got a mask label (truth no_mask: nobody there is masked)."""
    from bench.eval_clips import analyse, pipeline_config
    from core.settings import Settings

    configs = _ungated(Settings().analyzer_configs())
    config = pipeline_config(("detect", "track", "recognize", "mask"),
                             {k: v for k, v in configs.items() if k in ("detect", "track", "recognize", "mask")})
    with recording() as samples:
        result = analyse(media / "videos" / "short_hamilton_clip.mp4", config)
    out = []
    for track in result.tracks:
        rows = samples.get(int(track["track"]), [])
        label, score = mask_module.vote(track.get("mask_votes") or [])
        out.append({"scale": "hamilton", "truth": "no_mask", "photo": f"track {track['track']}",
                    "label": label, "score": score, "samples": rows})
    return out


def rescored(clips: list[dict], floor: float) -> dict[str, tuple[int, int, int]]:
    """Per scale: (judged, right, clips) if samples whose contrast is under ``floor`` had not voted."""
    from bench.eval_mask_band import rescored as by_score

    return by_score([{**clip, "vote": list(mask_module.vote(tuple(s["vote"]) for s in clip["samples"]
                                                            if s["contrast"] >= floor))} for clip in clips], 0.0)


def summary(clip: dict) -> str:
    rows = [f"  f{s['frame']} emb {s['emb']:.2f} mob {s['mob'] if s['mob'] is None else round(s['mob'], 2)} "
            f"cue {s['cue']:.2f} h {s['height']:.0f} eye {s['eye_px']:.1f} score {s['score']:.2f} "
            f"yaw {s['yaw']:.2f} pitch {s['pitch']:.2f} roll {s['roll']:.0f} sharp {s['sharp']:.3f} "
            f"light {s['light']:.0f} spread {s['spread']:.0f} contrast {s['contrast']:.0f}" for s in clip["samples"]]
    return "\n".join([f"{clip['scale']} {clip['photo']} truth {clip['truth']} label {clip['label']} "
                      f"({clip['score']})"] + rows)


def main(argv: list[str] | None = None) -> int:
    parser = part_arguments("python -m bench.eval_mask_quality", __doc__.splitlines()[0])
    parser.add_argument("--hamilton", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--gain", type=float, default=1.0, help="darken the clips: every level times GAIN")
    args = parser.parse_args(argv)
    clips = record_hamilton(args.media) if args.hamilton else record_clips(args.media, args.part, args.gain)
    if args.out:
        args.out.write_text(json.dumps(clips, indent=1) + "\n")
    for clip in clips:
        if args.hamilton or (clip["label"] is not None and clip["label"] != clip["truth"]):
            print(summary(clip))
    for floor in FLOORS:
        rows = rescored(clips, floor)
        print(f"contrast floor {floor}: " + "; ".join(f"{scale} right {r}/{j} judged {j}/{n}"
                                                    for scale, (j, r, n) in rows.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
