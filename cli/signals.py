"""Stopping the commands that start processes (`vidfarm up`, `vidfarm process`) on a signal.

Python turns only SIGINT into an exception, and only when SIGINT was not ignored at start: a
command started in the background (`vidfarm up &` from a script) inherits an ignored SIGINT,
and SIGTERM (systemd, `kill`, a container runtime) or SIGHUP (a closed terminal) end the
interpreter at once, leaving Redis, the workers, Flower and gunicorn running on their ports.
Inside ``stop_on_signals`` each of the three raises ``Stopped`` in the main thread, so the
farm's ``with`` block unwinds and stops every child; signals that arrive while it is stopping
are ignored, so a second Ctrl-C cannot cut the clean-up short and orphan a worker.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; ``signum`` says which (the exit status is 128 + signum)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    received: list[int] = []

    def handle(signum, _frame):
        received.append(signum)
        if len(received) == 1:        # the first one stops; later ones must not interrupt the stop
            raise Stopped(signum)

    previous = {sig: signal.signal(sig, handle) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
