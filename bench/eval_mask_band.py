"""How sure a track's mask vote was, for right and wrong labels: would a floor on it (null under it) help?

``python -m bench.eval_mask_band [MEDIA_DIR] [--part tuning|test] [--hamilton]`` runs the eval's
mask clips once (:func:`bench.eval_masks.evaluate_candidate`, the chosen configuration) and
prints, per scale, the scores of the votes (:func:`workers.analytics.mask.vote`: the mean
probability of the frames that voted for the label) that were right and of those that were
wrong, then the judged and right clips per scale if votes under each floor in ``THRESHOLDS``
were null. That re-scoring is exact: such a floor would only null a finished vote, it changes
no sample. ``--hamilton`` instead runs the Hamilton clip through a farm (nobody in it wears a
mask) and prints each track's label and score and the no_mask alerts.
Measured 2026-12-06 (docs/accuracy.md, "Mask votes near one half"): the scores do not separate
right from wrong, so no floor was built.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.eval_masks import CANDIDATES, CHOSEN, evaluate_candidate
from bench.eval_split import part_arguments

THRESHOLDS = (0.0, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)


def record(media: Path, part: str) -> list[dict]:
    clips: list[dict] = []
    evaluate_candidate(media, CANDIDATES[CHOSEN], part, clips=clips)
    return clips


def rescored(clips: list[dict], floor: float) -> dict[str, tuple[int, int, int]]:
    """Per scale: (judged, right, clips) with votes under ``floor`` taken as null (not judged)."""
    out: dict[str, list[int]] = {}
    for clip in clips:
        counts = out.setdefault(clip["scale"], [0, 0, 0])
        counts[2] += 1
        label, score = clip["vote"]
        if label is not None and score >= floor:
            counts[0] += 1
            counts[1] += label == clip["truth"]
    return {scale: tuple(counts) for scale, counts in out.items()}


def report(clips: list[dict]) -> None:
    for scale in dict.fromkeys(clip["scale"] for clip in clips):
        here = [c for c in clips if c["scale"] == scale and c["vote"][0] is not None]
        right = sorted(round(c["vote"][1], 3) for c in here if c["vote"][0] == c["truth"])
        wrong = sorted((round(c["vote"][1], 3), c["photo"]) for c in here if c["vote"][0] != c["truth"])
        print(f"{scale}: right {len(right)}: {right}")
        print(f"{scale}: wrong {len(wrong)}: {wrong}")
    for floor in THRESHOLDS:
        rows = rescored(clips, floor)
        print(f"floor {floor:.2f}: " + "; ".join(f"{scale} right {r}/{j} judged {j}/{n}"
                                                       for scale, (j, r, n) in rows.items()))


def main(argv: list[str] | None = None) -> int:
    parser = part_arguments("python -m bench.eval_mask_band", __doc__.splitlines()[0])
    parser.add_argument("--hamilton", action="store_true")
    args = parser.parse_args(argv)
    if args.hamilton:
        from bench.eval import evaluate_hamilton_enrolled

        os.environ.setdefault("VIDFARM_ALERTS", "fever,watchlist,no_mask")
        figures = evaluate_hamilton_enrolled(args.media)
        print("hamilton (track, mask, mask_score):", figures["masks"])
        print("hamilton no_mask alerts:", figures["no_mask_alerts"])
        for floor in THRESHOLDS:
            labels = [mask for _, mask, score in figures["masks"] if mask is not None and score >= floor]
            print(f"floor {floor:.2f}: hamilton tracks mask {labels.count('mask')}, no_mask {labels.count('no_mask')}"
                  f" of {len(figures['masks'])}")
        return 0
    report(record(args.media, args.part))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
