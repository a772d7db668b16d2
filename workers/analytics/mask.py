"""Mask-wearing classifiers and the ``mask`` analyzer.

Two classifiers, or the mean of their probabilities (``ensemble``, the default), chosen by
``MaskConfig.method`` (compared in docs/accuracy.md). The ensemble also has a third vote in its
mean, the lower-face cue (:mod:`workers.analytics.mask_cue`: the lower face against the skin
between the eyes, in colour and detail), and takes MobileNetV2's probability as the mean over
the crop and its mirror image (the mirror read only for a face whose label it could change:
:func:`_mirror_could_change`); a single classifier, asked for by name, runs alone unless
``lower_face_cue`` / ``flip_mobilenet`` say otherwise:

- ``embedding``: a logistic regression on the face's ArcFace embedding (the farm's
  recognition model, aligned on the detector's keypoints), trained at install on masks drawn
  over packaged face photos (:mod:`workers.analytics.mask_train`).
- ``mobilenet``: MobileNetV2 from ``mask-recognition`` 0.0.1, converted to ONNX at setup
  (:mod:`workers.analytics.mask_convert`). It was trained on MTCNN face boxes, so it expects a
  tight face crop: the detector's box with a small side margin, not the whole frame.

Only a face large, frontal, sharp and lit enough to judge gets a label (the same
:class:`~workers.analytics.quality.QualityGate` as recognition, with a contrast floor: a dark face
reads as masked to both classifiers); others get ``null``. A track
is labelled by a vote over several of its frames (:func:`vote`), which costs far less than
classifying every face in every frame and shrugs off single-frame mistakes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar, Iterable

import cv2
import numpy as np
from pydantic import BaseModel

from core.analyzer_configs import MaskConfig, QualityGate
from workers import models
from workers.analytics.faces import Faces
from workers.analytics.mask_model import INPUT_SIZE, LABELS, converted_path
from workers.analytics.mask_cue import cue_probability
from workers.analytics.picture import Picture
from workers.analytics.quality import contrast_enough, geometry_ok
from workers.analytics.recognizer import aligned_on
from workers.analytics.registry import Analyzer, register
from workers.analytics.tracks import SegmentState


def crop_face(frame_bgr: np.ndarray, box, margin_x: float = 0.05, margin_y: float = 0.0) -> np.ndarray | None:
    """The face region of a BGR frame: the detector's box grown by a fraction of its width
    and height, clipped to the frame; None when nothing of it is inside the frame.

    Not squared up: the model was trained on MTCNN boxes stretched to 128x128, and on SCRFD
    boxes the stretched crop did best (docs/design-notes.md, "Mask crops")."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    dx, dy = (x2 - x1) * margin_x, (y2 - y1) * margin_y
    h, w = frame_bgr.shape[:2]
    left, top = max(0, round(x1 - dx)), max(0, round(y1 - dy))
    right, bottom = min(w, round(x2 + dx)), min(h, round(y2 + dy))
    if right - left < 2 or bottom - top < 2:
        return None
    return frame_bgr[top:bottom, left:right]


def preprocess(crops_bgr: list[np.ndarray]) -> np.ndarray:
    """NCHW float32 RGB 128x128 in [-1, 1], as the model was trained (torchvision
    ToTensor + Normalize(0.5, 0.5))."""
    batch = np.empty((len(crops_bgr), 3, INPUT_SIZE, INPUT_SIZE), np.float32)
    for i, crop in enumerate(crops_bgr):
        shrinking = min(crop.shape[:2]) > INPUT_SIZE
        resized = cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE),
                             interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        batch[i] = rgb.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
    return batch


class MaskClassifier:
    """Classifies face crops as ``"mask"`` or ``"no_mask"``. Loads its session once."""

    def __init__(self, model_path: Path | str | None = None, threads: int = 1, batch_size: int = 16,
                 cache_dir: str | None = None):
        if model_path:
            path = Path(model_path)
        elif cache_dir and (cached := converted_path(cache_dir)).is_file():    # hashes the weights: once
            path = cached
        else:   # not converted at setup, or no cache folder given: the converter (it imports onnx)
            from workers.analytics.mask_convert import ensure_mask_model

            path = ensure_mask_model(cache_dir)
        self.session = models.session(path, threads)
        self.providers = self.session.get_providers()
        self.batch_size = batch_size
        self.inputs = 0        # crops run through the model, mirror images included (benchmarks, tests)

    def classify(self, crops_bgr: list[np.ndarray], flip: bool = False, mirror_if=None) -> list[tuple[str, float]]:
        """Per crop: the label and its probability (0.5 .. 1). ``flip``: the mean of the
        probabilities of the crop and its mirror image (test-time augmentation: a face is
        the same face mirrored, a mistake often is not); ``mirror_if(index, p_mask)``: with
        ``flip``, mirror only the crops for which it says so, given the crop's unmirrored
        probability of a mask (the others read that probability alone)."""
        results: list[tuple[str, float]] = []
        for start in range(0, len(crops_bgr), self.batch_size):
            crops = crops_bgr[start:start + self.batch_size]
            batch = preprocess(crops)
            if flip and mirror_if is None:
                batch = np.concatenate([batch, batch[..., ::-1]])
            self.inputs += len(batch)
            probs = np.exp(self.session.run(None, {"input": batch})[0])
            if flip and mirror_if is None:
                probs = (probs[:len(crops)] + probs[len(crops):]) / 2
            elif flip:
                chosen = [i for i, row in enumerate(probs) if mirror_if(start + i, _probability_of_mask(_labelled(row)))]
                if chosen:
                    self.inputs += len(chosen)
                    mirrored = np.exp(self.session.run(None, {"input": np.ascontiguousarray(batch[chosen][..., ::-1])})[0])
                    probs[chosen] = (probs[chosen] + mirrored) / 2
            results += [_labelled(row) for row in probs]
        return results


def _labelled(row: np.ndarray) -> tuple[str, float]:
    """A row of class probabilities as (label, its probability)."""
    best = int(row.argmax())
    return LABELS[best], float(row[best])


class EmbeddingMaskClassifier:
    """P(mask) from the face's ArcFace embedding: a trained logistic regression (512 weights)."""

    def __init__(self, model_path: Path | str | None = None, threads: int = 1,
                 recognizer_model: str = "w600k_mbf.onnx", model_dir: str | None = None,
                 cache_dir: str | None = None):
        from workers.analytics.mask_train import LogisticModel, ensure_embedding_mask_model
        from workers.analytics.recognizer import FaceEmbedder

        self.embedder = FaceEmbedder.shared(recognizer_model, model_dir, threads)   # the recogniser's session
        self.model = LogisticModel.load(Path(model_path) if model_path else
                                        ensure_embedding_mask_model(cache_dir, model_dir, recognizer_model))

    def classify_faces(self, image: Picture | np.ndarray | None, keypoints: list[np.ndarray], gate: QualityGate,
                       known: list[np.ndarray | None] | None = None) -> list[tuple[str, float] | None]:
        """Per face: (label, probability) or None when the aligned face is too blurred (or dark) to judge.
        ``known``: embeddings already made of these faces on this frame (None where not)."""
        results: list[tuple[str, float] | None] = []
        for points, vector in zip(keypoints, known or [None] * len(keypoints)):
            if vector is None:
                vector = self.embedder.judged(image, points, gate)
            if vector is None:
                results.append(None)
                continue
            p = float(self.model.probability(vector[None])[0])
            results.append(("mask", p) if p >= 0.5 else ("no_mask", 1.0 - p))
        return results


# Slack on :func:`_mirror_could_change`'s bounds for float32 rounding: the model's two class
# probabilities sum to 1 within a few units of 1e-7, and the mean over the crop and its mirror
# image is taken in float32.
MIRROR_SLACK = 1e-5


def _mirror_could_change(others: list[float], p_mask: float) -> bool:
    """Whether MobileNetV2's mirror image could change a face's label, given the face's other
    votes' probabilities of a mask (the embedding classifier's, the cue's) and MobileNetV2's on
    the unmirrored crop, ``p_mask``. The label is "mask" where the mean of the votes is at least
    0.5, and MobileNetV2's vote is the mean over the crop and its mirror image: whatever the
    mirror's probability (0 to 1), that vote lies in [p_mask / 2, (p_mask + 1) / 2], so where
    the mean is on one side of 0.5 at both ends the mirror cannot change the label (only its
    probability, the face's mask_score)."""
    votes = len(others) + 1
    lowest, highest = (sum(others) + p_mask / 2) / votes, (sum(others) + (p_mask + 1) / 2) / votes
    return not (lowest >= 0.5 + MIRROR_SLACK or highest < 0.5 - MIRROR_SLACK)


def _probability_of_mask(result: tuple[str, float]) -> float:
    label, probability = result
    return probability if label == "mask" else 1.0 - probability


def vote(labels_scores: Iterable[tuple[str, float]]) -> tuple[str | None, float | None]:
    """A track's label from its per-frame labels: the label with the larger summed
    probability (confident frames weigh more), and the mean probability of the frames that
    voted for it. (None, None) when there is nothing to vote on."""
    totals: dict[str, list[float]] = {}
    for label, score in labels_scores:
        totals.setdefault(label, []).append(score)
    if not totals:
        return None, None
    label = max(totals, key=lambda name: (sum(totals[name]), name == "no_mask"))
    return label, float(np.mean(totals[label]))


def _unanimous(record) -> bool:
    """Three agreeing votes settle a track; more samples only cost time."""
    return len(record.mask_votes) >= 3 and len({label for label, _ in record.mask_votes}) == 1


@register
class MaskAnalyzer(Analyzer):
    """Adds the ``mask`` and ``mask_score`` columns.

    In the segment pipeline (after ``begin(state)`` and a tracker) it works per track: a few
    sampled frames of each track are classified, the votes kept on the track's record, and
    every face of the track shows the vote so far. Standalone (no state, or no track ids) it
    classifies every face of every frame."""

    name: ClassVar[str] = "mask"
    Config: ClassVar[type[BaseModel]] = MaskConfig

    def __init__(self, config: MaskConfig):
        self.config = config
        self.embedding = self.mobilenet = None
        if config.method in ("embedding", "ensemble"):
            self.embedding = EmbeddingMaskClassifier(config.model_path if config.method == "embedding" else None,
                                                     config.threads, config.recognizer_model, config.model_dir,
                                                     config.cache_dir)
        if config.method in ("mobilenet", "ensemble"):
            self.mobilenet = MaskClassifier(config.model_path if config.method == "mobilenet" else None,
                                            config.threads, config.batch_size, config.cache_dir)
        # The cue and the mirror image are parts of the ensemble; a user who names one classifier gets it alone.
        ensemble = config.method == "ensemble"
        self.cue = ensemble if config.lower_face_cue is None else config.lower_face_cue
        self.flip = ensemble if config.flip_mobilenet is None else config.flip_mobilenet
        # With no other vote (MobileNetV2 alone) the mirror can always change the label: the one batch of
        # crops and mirrors, as without the rule.
        self.mirror_undecided_only = (self.flip and config.mirror_undecided_only
                                      and (self.cue or self.embedding is not None))
        self.state: SegmentState | None = None

    def begin(self, state: SegmentState) -> None:
        self.state = state

    def crops(self, image: Picture | np.ndarray, faces: Faces, rows) -> list[tuple[int, np.ndarray]]:
        """(row, crop) for the given rows of ``faces``.

        The crops come from a copy just large enough that the smallest face is still at least
        the model's 128 px (or from the full frame, if it is smaller): a full-resolution BGR
        conversion of a 4K frame costs more than the classification itself."""
        rows = list(rows)
        if not rows:
            return []
        picture = Picture.of(image)
        smallest = float(min(faces.boxes[r, 3] - faces.boxes[r, 1] for r in rows))
        scale = min(1.0, INPUT_SIZE / max(smallest, 1.0))
        frame_bgr, scale = picture.bgr(math.ceil(max(picture.width, picture.height) * scale))
        out = []
        for row in rows:
            crop = crop_face(frame_bgr, faces.boxes[row] * scale, self.config.margin_x, self.config.margin_y)
            if crop is not None:
                out.append((row, crop))
        return out

    def _judged(self, faces: Faces, row: int) -> bool:
        keypoints = faces.keypoints[row] if faces.keypoints is not None else None
        return keypoints is not None and geometry_ok(self.config.quality, faces.boxes[row], float(faces.scores[row]),
                                                                          keypoints)

    def _classified(self, image, faces: Faces, rows, known: dict[int, np.ndarray] | None = None
                    ) -> list[tuple[int, tuple[str, float]]]:
        """(row, (label, probability of that label)) for each face a classifier judged;
        ``known``: the recogniser's embeddings of some rows on this frame."""
        rows = list(rows)
        if not rows:
            return []
        known = known or {}
        picture = Picture.of(image)    # one, so that the embedding and the cue share its aligned faces
        p_mask: dict[int, list[float]] = {}
        if self.config.quality.min_contrast > 0:
            # A face too dark to judge votes nothing: to each classifier it reads as masked.
            rows = [row for row in rows
                    if contrast_enough(self.config.quality, aligned_on(picture, faces.keypoints[row]))]
        if self.embedding is not None:
            for row, result in zip(rows, self.embedding.classify_faces(picture, [faces.keypoints[r] for r in rows],
                                                                       self.config.quality,
                                                                       [known.get(r) for r in rows])):
                if result is not None:
                    p_mask[row] = [_probability_of_mask(result)]
            rows = list(p_mask)        # a face too blurred for the embedding is not judged at all
        cues = {row: cue_probability(aligned_on(picture, faces.keypoints[row])) for row in rows} if self.cue else {}
        if self.mobilenet is not None:
            indexed = self.crops(picture, faces, rows)

            def undecided(index: int, p: float) -> bool:    # the other votes are known by now
                row = indexed[index][0]
                return _mirror_could_change(p_mask.get(row, []) + ([cues[row]] if cues else []), p)

            for (row, _), result in zip(indexed, self.mobilenet.classify(
                    [c for _, c in indexed], flip=self.flip, mirror_if=undecided if self.mirror_undecided_only else None)):
                p_mask.setdefault(row, []).append(_probability_of_mask(result))
        for row, p in cues.items():
            p_mask.setdefault(row, []).append(p)
        out = []
        for row, probabilities in p_mask.items():
            p = float(np.mean(probabilities))
            out.append((row, ("mask", p) if p >= 0.5 else ("no_mask", 1.0 - p)))
        return out

    def __call__(self, image: Picture | np.ndarray, faces: Faces) -> Faces:
        if not len(faces):
            return faces
        labels: list[str | None] = [None] * len(faces)
        scores: list[float | None] = [None] * len(faces)
        state, cfg = self.state, self.config
        if state is None or faces.track_ids is None:
            for row, (label, score) in self._classified(image, faces, filter(
                    lambda r: self._judged(faces, r), range(len(faces)))):
                labels[row], scores[row] = label, round(score, 4)
        else:
            tracked = {row: state.tracks.get(int(t)) for row, t in enumerate(faces.track_ids)}
            # Not on a carried frame: its keypoints and box are the last look's (recognizer.py).
            sampled = [] if faces.carried else [
                row for row, record in tracked.items() if record is not None and not _unanimous(record)
                and self._judged(faces, row)
                and state.should_sample(record.track, self.name, cfg.sample_every, cfg.samples_per_track)]
            known = {row: tracked[row].embedding_on(state.frame_index) for row in sampled}
            for row, result in self._classified(image, faces, sampled,
                                                {row: v for row, v in known.items() if v is not None}):
                tracked[row].mask_votes.append((result[0], round(result[1], 4)))
            for row, record in tracked.items():
                if record is not None and record.mask_votes:
                    label, score = vote(record.mask_votes)
                    labels[row], scores[row] = label, round(score, 4)
        faces.columns["mask"], faces.columns["mask_score"] = labels, scores
        return faces
