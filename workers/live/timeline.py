"""One timeline for a whole watch, across reconnects.

Each connection to a camera numbers its frames on a clock of its own, starting anew at every
reconnect. The watch places every frame on one timeline instead: ticks of ``TIMELINE`` (RTP's
90 kHz video clock), the watch's first frame at ``START``. Within a connection a
frame's place is the connection's own timestamp moved by a fixed offset (exact: no rounding
builds up); a new connection is placed by the wall-clock capture time of its first frame, so
the time a camera was away shows as a gap between timestamps.
"""

from __future__ import annotations

from fractions import Fraction

TIMELINE = Fraction(1, 90000)
# The watch's first frame sits this far into the timeline, not at 0: the pictures a camera's
# B-frames show before a keyframe (a few frames) must not get negative times (NUT refuses them).
START = 10 * 90000


class Timeline:
    def __init__(self):
        self.origin: float | None = None      # unix s: capture time of timeline 0
        self.end: int | None = None           # timeline time just after the last frame placed

    def connect(self, time_base: Fraction, first_pts: int, captured_at: float) -> "ConnectionClock":
        """A connection whose frame at ``first_pts`` (its own ``time_base``) was captured at
        ``captured_at``. It never starts before the end of the previous one (clocks disagree)."""
        if self.origin is None:
            self.origin = captured_at
        start = START + round((captured_at - self.origin) / TIMELINE)
        if self.end is not None:
            start = max(start, self.end)
        return ConnectionClock(time_base, start - _ticks(first_pts, time_base))

    def captured_at(self, pts: int) -> float:
        """Unix time a timeline timestamp was captured."""
        return self.origin + float((pts - START) * TIMELINE)


class ConnectionClock:
    """A connection's own timestamps -> the watch timeline."""

    def __init__(self, time_base: Fraction, offset: int):
        self.time_base = time_base
        self.offset = offset

    def __call__(self, pts: int) -> int:
        return _ticks(pts, self.time_base) + self.offset


def _ticks(pts: int, time_base: Fraction) -> int:
    return pts if time_base == TIMELINE else round(pts * time_base / TIMELINE)
