"""A recording's frame rate as its frames' presentation times say it.

FFmpeg's probe only estimates a rate, and a 29.97 fps H.264 stream with B-frames whose timing
info counts half-frames reads as 59.94 there. Uploads (``workers.media``) and live cameras
(``workers.live``: the segmenter, and a browser camera's encoder) all read the rate from the
times instead; this module is theirs in common, so none imports another for it.
"""

from __future__ import annotations

import statistics
from fractions import Fraction


def frame_ticks(pts: list[int]) -> int | None:
    """The frame interval (ticks) that presentation times say: the median step between them
    in order, which a lost frame or a jittery clock does not move; None for fewer than two
    distinct times."""
    in_order = sorted(pts)
    steps = [b - a for a, b in zip(in_order, in_order[1:]) if b > a]
    return round(statistics.median(steps)) if steps else None


def frame_rate(ticks: int, time_base: Fraction) -> float:
    """Frames a second, for a frame interval in ticks of ``time_base``."""
    return 1 / float(ticks * time_base)


def encoder_rate(pts: list[int], time_base: Fraction, default: Fraction = Fraction(30)) -> Fraction:
    """The rate an encoder is opened with, from the first frames' times (``frame_ticks``):
    exact for whole ticks, a rate such as 30000/1001 kept so (an encoder wants a fraction);
    ``default`` where the times say none."""
    ticks = frame_ticks(pts)
    return default if ticks is None else (1 / (ticks * time_base)).limit_denominator(1001)
