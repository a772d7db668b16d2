"""How sure a track's mask vote was, for right and wrong labels: the band ``MaskConfig.min_vote`` cuts.

``python -m bench.eval_mask_band [MEDIA_DIR] [--part tuning|test] [--hamilton]`` runs the eval's
mask clips once (:func:`bench.eval_masks.evaluate_candidate`, the chosen configuration with
``min_vote`` 0: every vote kept) and prints, per scale, the scores of the votes that were right
and of those that were wrong, then the judged and right clips per scale for each ``min_vote``
in ``THRESHOLDS``. That re-scoring is exact: ``min_vote`` only nulls a finished vote, it changes
no sample. ``--hamilton`` also runs the Hamilton clip through a farm (nobody in it wears a
mask) with the ``min_vote`` of the settings, and prints each track's label and score.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bench.eval_masks import CANDIDATES, CHOSEN, evaluate_candidate
from bench.eval_split import part_arguments

THRESHOLDS = (0.0, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)


def record(media: Path, part: str) -> list[dict]:
    configs = json.loads(json.dumps(CANDIDATES[CHOSEN]))
    configs.setdefault("mask", {})["min_vote"] = 0.0
    clips: list[dict] = []
    evaluate_candidate(media, configs, part, clips=clips)
    return clips


def rescored(clips: list[dict], min_vote: float) -> dict[str, tuple[int, int, int]]:
    """Per scale: (judged, right, clips) with votes under ``min_vote`` left unjudged."""
    out: dict[str, list[int]] = {}
    for clip in clips:
        counts = out.setdefault(clip["scale"], [0, 0, 0])
        counts[2] += 1
        label, score = clip["vote"]
        if label is not None and score >= min_vote:
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
    for min_vote in THRESHOLDS:
        rows = rescored(clips, min_vote)
        print(f"min_vote {min_vote:.2f}: " + "; ".join(f"{scale} right {r}/{j} judged {j}/{n}"
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
        return 0
    report(record(args.media, args.part))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
