"""When the standby is up: warm workers for the next burst, timed from the gaps between bursts.

Pure functions, called by ``autoscaler.policy`` (the real loop and the simulator share them).

A target wait shorter than a cold start (pod start + a poll) is missed by every task that
meets a cold pool, so the policy keeps workers up for the next burst (``policy.expected_burst``
sizes them from the bursts of the last ``rate_window_s``). Held from one burst until it left
that window, they were paid for the whole gap to the next: on office-hours.json (uploads
about every 300 s, pod start 30 s) 74 % of the bill was warm pods idling. So the standby is
timed: a burst is the polls in a row that saw new tasks; from the starts of the last
``standby_bursts`` bursts the policy learns the gaps between them, and asks for the standby
a pod start and a poll before ``standby_gap_quantile`` of those gaps has passed since the
last burst (so that it is up when an early next burst comes). It is let go, as before, once
the last burst is ``rate_window_s`` old: a burst that comes later meets a cold pool. Until
``MIN_GAPS`` gaps are known (always, with ``standby_bursts`` 1), it is held from the burst on
(the rule before the timing).
"""

from __future__ import annotations

import numpy as np

from core.settings import ScaleSettings

MIN_GAPS = 2          # gaps between bursts before their quantile times the standby

Burst = tuple[float, float]          # (its first poll, its last poll)


def note_bursts(bursts: tuple[Burst, ...], now: float, polled_at: float | None, arrived: bool,
                keep: int) -> tuple[Burst, ...]:
    """The bursts with this poll: one more when it saw new tasks, or the last one grown when
    the poll before saw some too (an upload whose segments straddle a poll is one burst).
    The last ``keep`` only (also when ``keep`` was lowered since they were noted)."""
    if arrived and bursts and polled_at is not None and bursts[-1][1] == polled_at:
        bursts = bursts[:-1] + ((bursts[-1][0], now),)
    elif arrived:
        bursts += ((now, now),)
    return bursts[-keep:]


def standby_from(bursts: tuple[Burst, ...], settings: ScaleSettings, poll_s: float) -> float | None:
    """When the standby for the burst after the last one is asked for; None while fewer than
    ``MIN_GAPS`` gaps are known (then it is held from the burst on, the rule before)."""
    gaps = np.diff([start for start, _ in bursts])
    if len(gaps) < MIN_GAPS:
        return None
    early = float(np.quantile(gaps, settings.standby_gap_quantile))
    return bursts[-1][0] + max(0.0, early - settings.pod_start_s - poll_s)


def standby_due(bursts: tuple[Burst, ...], now: float, settings: ScaleSettings, poll_s: float) -> bool:
    """Whether the standby may be held now: from ``standby_from`` until the last burst is
    ``rate_window_s`` old (``policy.expected_burst`` plans for nothing older either)."""
    start = standby_from(bursts, settings, poll_s)
    return start is None or start <= now <= bursts[-1][1] + settings.rate_window_s
