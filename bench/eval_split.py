"""The fixed tuning / test splits of ``make eval`` and the 95 % intervals it reports.

Every threshold, preprocessing step and model choice is made on the tuning part; the figures
in docs/accuracy.md are on the test part. The splits are fixed here, in code, not drawn:

- masks (``masks/with_mask``, ``masks/without_mask``): by photo, each folder's files sorted by
  name, even positions (00, 02, ...) tuning, odd positions test;
- faces (``recognition/``): by person, the people in ``TUNING_PEOPLE`` tuning, all others test;
- thermal: by frame sequence, one moving sequence made from the Fluke map for tuning and a
  different one (other sizes, path, fever offset, noise) for test.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from bench.shared_media import MEDIA

TUNING_PEOPLE = frozenset({"obama", "kit_harington", "compreface_A", "compreface_C"})
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def mask_split(folder: Path, part: str) -> list[Path]:
    """The photos of one mask folder in one part ("tuning" or "test")."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [path for index, path in enumerate(files) if (index % 2 == 0) == (part == "tuning")]


def part_arguments(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line of a bench that runs one part's clips: ``[MEDIA_DIR] [--part tuning|test]``
    (MEDIA_DIR: ../shared/media beside the repository); each bench adds its own options."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("media", nargs="?", type=Path, default=MEDIA)
    parser.add_argument("--part", choices=("tuning", "test"), default="tuning")
    return parser


def person_part(person: str) -> str:
    return "tuning" if person in TUNING_PEOPLE else "test"


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95 %) of a proportion; (0, 1) when there is nothing to count."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: int, total: int) -> str:
    """'0.933 (28/30, 95 % CI 0.79-0.98)'."""
    if total == 0:
        return "n/a (0 cases)"
    low, high = wilson(successes, total)
    return f"{successes / total:.3f} ({successes}/{total}, 95 % CI {low:.2f}-{high:.2f})"
