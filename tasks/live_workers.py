"""Whether a worker serves the live queue, and waiting until one does.

A camera's segments go to the ``live`` queue; with no worker on it they would wait there
forever, so a watch looks first. ``vidfarm watch`` fails at once, with the fix. The ingester
instead waits (``LiveWorkerGate``): a `vidfarm up` started again finds its cameras registered
and starts its ingester while the autoscaler's first live worker is still loading, and a pod's
ingester may start before the live workers' pods. Before, its watch failed, and the camera
showed no picture for the ingester's 10 s retry more than it had to.
"""

from __future__ import annotations

import threading
import time

from tasks.app import app

LIVE_QUEUE = "live"
# One look: the workers' replies to a broadcast come within milliseconds on one machine or
# cluster; the look waits this long for all of them (Celery cannot know how many will answer).
LOOK_S = 2.0
# A look that found one answers for the watches that start within this much of it (the
# cameras an ingester takes at once share one look), not for later ones: workers come and go.
FRESH_S = 5.0


def live_queue_served(timeout: float = LOOK_S) -> bool:
    """Whether a worker answers that it consumes the live queue (a broadcast: ``timeout`` s)."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    return any(q.get("name") == LIVE_QUEUE for queues in replies.values() for q in queues)


class LiveWorkerGate:
    """Waits for a worker on the live queue, shared by an ingester's camera threads: one looks
    (a broadcast) at a time, and the others take its answer rather than broadcast again."""

    def __init__(self, served=live_queue_served):
        self._served = served
        self._lock = threading.Lock()
        self._seen_at: float | None = None     # time.monotonic() of the last look that found one

    def wait(self, stop: threading.Event, waiting=lambda: None) -> bool:
        """Block until a worker serves the live queue (True) or ``stop`` is set (False).
        ``waiting`` is called once, when none does at the first look."""
        told = False
        while not stop.is_set():
            with self._lock:
                if self._seen_at is not None and time.monotonic() - self._seen_at < FRESH_S:
                    return True
                if self._served():
                    self._seen_at = time.monotonic()
                    return True
            if not told:
                waiting()
                told = True
            stop.wait(0.1)     # the look itself paces the loop (LOOK_S); this lets a waiting thread look too
        return False
