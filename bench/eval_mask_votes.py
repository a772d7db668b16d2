"""The mask label's candidates re-scored from recorded per-frame probabilities (tuning split).

``python -m bench.eval_mask_votes [MEDIA_DIR] [--part tuning|test]`` runs the eval's mask clips
(:func:`bench.eval_masks.evaluate_candidate`, the chosen configuration) once, and records for
every face the mask analyzer sampled: the embedding classifier's and MobileNetV2's P(mask), each
also on the mirrored face, and the lower-face cue's two features
(:mod:`workers.analytics.mask_cue`). Each candidate combination is then a function of those
numbers; a clip's label is its track's vote (:func:`workers.analytics.mask.vote`) over the
same samples, as the analyzer gives it. Prints, per candidate, the judged clips right per
scale and which clips are wrong: the rows of docs/accuracy.md's candidates table that say
"re-scored offline". The cue's own fit (:data:`workers.analytics.mask_cue.WEIGHTS`) is
re-made here on every tuning sample (printed first: it should give mask_cue's three numbers) and
leaving each photo out, so its figure is out of sample.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bench import eval_masks
from bench.eval_clips import SCALES, inside
from bench.eval_split import part_arguments
from workers.analytics import mask as mask_module
from workers.analytics.mask_cue import cue_features
from workers.analytics.mask_train import fit_logistic
from workers.analytics.picture import Picture
from workers.analytics.recognizer import align_face


def record(media: Path, part: str) -> list[dict]:
    """One dict per clip: scale, truth, photo, and the samples of the track whose vote is the
    clip's label (none when the clip was not judged)."""
    clips, current = [], {}
    classified, photo_clip, analyse = (mask_module.MaskAnalyzer._classified, eval_masks.photo_clip,
                                       eval_masks.analyse)

    def on_classified(self, image, faces, rows, known=None):
        rows = list(rows)
        out = classified(self, image, faces, rows, known)
        frame = Picture.of(image).bgr()[0]
        crops = dict(self.crops(image, faces, rows))
        for row in rows:
            aligned = align_face(frame, faces.keypoints[row])
            vector = self.embedding.embedder.judged(frame, faces.keypoints[row], self.config.quality)
            if vector is None or row not in crops:
                continue
            mirrored = self.embedding.embedder.embed_aligned(np.ascontiguousarray(aligned[:, ::-1]))
            crop = crops[row]
            plain, mirror = self.mobilenet.classify([crop, np.ascontiguousarray(crop[:, ::-1])])
            current["samples"].append({
                "track": int(faces.track_ids[row]),
                "emb": float(self.embedding.model.probability(vector[None])[0]),
                "emb_mirror": float(self.embedding.model.probability(mirrored[None])[0]),
                "mob": mask_module._probability_of_mask(plain),
                "mob_mirror": mask_module._probability_of_mask(mirror), "cue": cue_features(aligned)})
        return out

    def on_photo_clip(path, photo, height, seed):
        rects = photo_clip(path, photo, height, seed)
        folder = path.name.rsplit("-", 1)[0]
        current.update(rects=rects, samples=[], truth=eval_masks.FOLDERS[folder], seed=seed, folder=folder,
                       scale=next(name for name, h in SCALES if h == height))
        return rects

    def on_analyse(path, config, gallery=None):
        result = analyse(path, config, gallery)
        tracks = [face["track"] for faces, rect in zip(result.frames, current["rects"])
                  for face in faces if inside(face["box"], rect) and face["mask"]]
        photo = eval_masks.mask_split(media / "masks" / current["folder"], part)[current["seed"]].name
        clips.append({"scale": current["scale"], "truth": current["truth"], "photo": photo,
                      "samples": [s for s in current["samples"] if tracks and s["track"] == tracks[-1]]})
        return result

    mask_module.MaskAnalyzer._classified = on_classified
    eval_masks.photo_clip, eval_masks.analyse = on_photo_clip, on_analyse
    try:
        eval_masks.evaluate_candidate(media, {"mask": {"method": "ensemble", **eval_masks.OFF}}, part)
    finally:
        mask_module.MaskAnalyzer._classified = classified
        eval_masks.photo_clip, eval_masks.analyse = photo_clip, analyse
    return clips


def score(clips: list[dict], p_mask) -> tuple[int, int, dict, list[str]]:
    """Right, judged, per-scale 'right/judged' and the wrong clips of one combination."""
    right = judged = 0
    per_scale, wrong = {}, []
    for clip in clips:
        if not clip["samples"]:
            continue
        votes = [("mask", p) if p >= 0.5 else ("no_mask", 1 - p) for p in map(p_mask, clip["samples"])]
        ok = mask_module.vote(votes)[0] == clip["truth"]
        right, judged = right + ok, judged + 1
        counts = per_scale.setdefault(clip["scale"], [0, 0])
        counts[0], counts[1] = counts[0] + ok, counts[1] + 1
        if not ok:
            wrong.append(f"{clip['scale']}: {clip['photo']}")
    return right, judged, {k: f"{a}/{b}" for k, (a, b) in per_scale.items()}, wrong


CUE_FIT = {"l2": 1e-2, "steps": 3000, "rate": 0.5}     # the fit that gave mask_cue's WEIGHTS and BIAS


def fit_cue(clips: list[dict]):
    """The cue's logistic regression on the two features of every recorded sample."""
    rows = [(s["cue"], float(clip["truth"] == "mask")) for clip in clips for s in clip["samples"]]
    return fit_logistic(np.array([x for x, _ in rows]), np.array([y for _, y in rows]), **CUE_FIT)


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return float(np.log(p / (1 - p)))


def leave_one_photo_out(clips: list[dict], features) -> dict[int, float]:
    """P(mask) of every sample from a logistic regression on ``features(sample)`` fitted on the
    samples of every other photo (keyed by the sample's id)."""
    rows = [(clip["photo"], s, float(clip["truth"] == "mask")) for clip in clips for s in clip["samples"]]
    out = {}
    for photo in sorted({p for p, _, _ in rows}):
        train = [(features(s), y) for p, s, y in rows if p != photo]
        model = fit_logistic(np.array([x for x, _ in train]), np.array([y for _, y in train]), **CUE_FIT)
        for p, s, _ in rows:
            if p == photo:
                out[id(s)] = float(model.probability(np.asarray(features(s))[None])[0])
    return out


def drawn_cue_fit(l2: float):
    """The cue's logistic regression fitted instead on the faces mask_train trains on: the packaged
    photos' faces, bare and under drawn masks, at its sizes."""
    from workers.analytics import mask_train
    from workers.analytics.detector import DetectorConfig, FaceDetector
    from workers.analytics.mask_synth import draw_mask

    detector, rng = FaceDetector(DetectorConfig()), np.random.default_rng(mask_train.VERSION)
    x, y = [], []
    for photo, box, points in mask_train.packaged_faces(detector):
        for face_px in mask_train.FACE_SIZES:
            for masked in (False, True, True):
                image = photo if not masked else draw_mask(
                    photo, box, points, mask_train.CLOTHS[int(rng.integers(len(mask_train.CLOTHS)))],
                    drop=float(rng.uniform(0, 0.3)), shade=float(rng.uniform(0.6, 1.1)))
                small, small_box, small_points = mask_train._shrunk(image, box, points, face_px)
                found = mask_train._keypoints_found(detector, small, small_box, small_points)
                x.append(cue_features(align_face(small, found)))
                y.append(float(masked))
    return fit_logistic(np.array(x), np.array(y), l2=l2, steps=3000, rate=0.5)


def candidates(clips: list[dict]) -> dict:
    from workers.analytics.mask_cue import probability_of_features

    cue = lambda s: probability_of_features(*s["cue"])                                                      # noqa: E731
    mob2 = lambda s: (s["mob"] + s["mob_mirror"]) / 2                                                        # noqa: E731
    emb2 = lambda s: (s["emb"] + s["emb_mirror"]) / 2                                                        # noqa: E731
    cue_out = leave_one_photo_out(clips, lambda s: list(s["cue"]))
    three = leave_one_photo_out(clips, lambda s: [_logit(s["emb"]), _logit(s["mob"]), _logit(cue_out[id(s)])])
    return {
        "ensemble of two (before)": lambda s: (s["emb"] + s["mob"]) / 2,
        "cue alone, fitted leaving each photo out": lambda s: cue_out[id(s)],
        "mean of three, MobileNetV2 not mirrored": lambda s: (s["emb"] + s["mob"] + cue(s)) / 3,
        "ensemble of two, MobileNetV2 mirrored": lambda s: (s["emb"] + mob2(s)) / 2,
        "ensemble of two, both mirrored": lambda s: (emb2(s) + mob2(s)) / 2,
        "mean of three, both mirrored": lambda s: (emb2(s) + mob2(s) + cue(s)) / 3,
        "three-input logistic combination, leaving each photo out": lambda s: three[id(s)],
        "veto: the cue overrides the ensemble of two below 0.1 or above 0.9": lambda s: (
            min((s["emb"] + s["mob"]) / 2, cue(s)) if cue(s) < 0.1 else
            max((s["emb"] + s["mob"]) / 2, cue(s)) if cue(s) > 0.9 else (s["emb"] + s["mob"]) / 2),
        **{f"cue fitted on drawn masks (L2 {l2}){how}": (lambda fit, mirrored: lambda s: (
            float(fit.probability(np.asarray(s["cue"])[None])[0]) if mirrored is None else
            (s["emb"] + (mob2(s) if mirrored else s["mob"]) + float(fit.probability(np.asarray(s["cue"])[None])[0])) / 3
        ))(fit, mirrored)
           for l2, fit in ((l2, drawn_cue_fit(l2)) for l2 in (1e-3, 1e-2))
           for how, mirrored in ((" alone", None), (", mean of three", False), (", mean of three, MobileNetV2 mirrored", True))},
        "mean of three, MobileNetV2 mirrored (chosen)": lambda s: (s["emb"] + mob2(s) + cue(s)) / 3,
    }


def main(argv: list[str]) -> int:
    args = part_arguments("python -m bench.eval_mask_votes", __doc__.splitlines()[0]).parse_args(argv)
    part = args.part
    clips = record(args.media, part)
    from workers.analytics.mask_cue import BIAS, WEIGHTS

    fit = fit_cue(clips)
    print(f"{part}: the cue fitted on all its samples: weights {np.round(fit.weights, 3).tolist()}, bias "
          f"{fit.bias:.3f} (mask_cue.py: {list(WEIGHTS)}, {BIAS}; fitted on the tuning part)")
    for name, p_mask in candidates(clips).items():
        right, judged, per_scale, wrong = score(clips, p_mask)
        print(f"{part}: {name}: {right} of {judged} right {per_scale}; wrong: {', '.join(wrong) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
