"""What a second detector in the second look's looks finds (issue 14, masked faces at 40 and 80 px).

``python -m bench.eval_confirm [MEDIA_DIR] [--part tuning|test] [--variants none,libfacedetection@0.5]``
runs the eval's mask clips (:func:`bench.eval_masks.evaluate_candidate`, the chosen configuration)
with ``second_look.confirm`` set to each variant (KIND@THRESHOLD[@INPUT]), and prints per scale
the masked and bare frames found, the detections off the face and the mask labels right, then
how many looks ran the second detector and its CPU time a run (one thread: the eval's
configuration). Measured 2026-12-07: docs/accuracy.md, "Candidates tried" (libfacedetection,
RetinaFace); choices on the tuning part only.
"""

from __future__ import annotations

import sys
import time

from bench import eval_masks
from bench.eval_split import part_arguments

VARIANTS = "none,libfacedetection@0.5,retinaface@0.5"


def second_look(variant: str) -> dict:
    """``second_look`` settings of a variant: KIND[@THRESHOLD[@INPUT]]."""
    kind, *rest = variant.split("@")
    settings = {"confirm": kind}
    if rest:
        settings["confirm_threshold"] = float(rest[0])
    if len(rest) > 1:
        settings["confirm_input"] = int(rest[1])
    return settings


def measure(media, part: str, variant: str) -> tuple[dict, dict]:
    """The candidate's counts per scale and folder, and the second detector's runs and CPU seconds."""
    from workers.analytics.confirm import Confirmer

    runs = {"runs": 0, "cpu_s": 0.0}
    boxes = Confirmer.boxes

    def timed(self, region):
        started = time.process_time()
        try:
            return boxes(self, region)
        finally:
            runs["runs"] += 1
            runs["cpu_s"] += time.process_time() - started

    configs = {**eval_masks.CANDIDATES[eval_masks.CHOSEN], "detect": {"second_look": second_look(variant)}}
    Confirmer.boxes = timed
    try:
        return eval_masks.evaluate_candidate(media, configs, part), runs
    finally:
        Confirmer.boxes = boxes


def main(argv: list[str]) -> int:
    parser = part_arguments("python -m bench.eval_confirm", __doc__.splitlines()[0])
    parser.add_argument("--variants", default=VARIANTS, help=f"comma-separated KIND@THRESHOLD[@INPUT] ({VARIANTS})")
    args = parser.parse_args(argv)
    for variant in args.variants.split(","):
        counts, runs = measure(args.media, args.part, variant)
        print(f"{variant} ({args.part} split):")
        for scale, folders in counts.items():
            masked, bare = folders["with_mask"], folders["without_mask"]
            print(f"  {scale}: masked {masked['found']}/{masked['frames']}, bare {bare['found']}/{bare['frames']}, "
                  f"off the face {masked['false'] + bare['false']}, labels right "
                  f"{masked['correct'] + bare['correct']}/{masked['judged'] + bare['judged']}")
        per_run = runs["cpu_s"] / runs["runs"] * 1000 if runs["runs"] else 0.0
        print(f"  second detector: {runs['runs']} runs, {per_run:.1f} ms CPU a run", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
