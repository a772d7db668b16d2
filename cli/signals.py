"""Stopping the commands that start processes (`vidfarm up`, `vidfarm process`) on a signal.

Python turns only SIGINT into an exception, and only when SIGINT was not ignored at start: a
command started in the background (`vidfarm up &` from a script) inherits an ignored SIGINT,
and SIGTERM (systemd, `kill`, a container runtime) or SIGHUP (a closed terminal) end the
interpreter at once, leaving Redis, the workers, Flower and gunicorn running on their ports.
Inside ``stop_on_signals`` each of the three raises ``Stopped`` in the main thread, so the
farm's ``with`` block unwinds and stops every child; signals that arrive while it is stopping
are ignored, so a second Ctrl-C cannot cut the clean-up short and orphan a worker.

An exception raised wherever the main thread happens to be can cut anything short, an import
included: the module is forgotten, but what its body did before the cut stays done (the ORM
tables it declared), and importing it again from the clean-up fails ("Table 'alerts' is
already defined"). That turned a `vidfarm process` stopped as it began to follow its job
into a traceback and exit status 1, its job left "processing". Where the clean-up needs what
the code it interrupts is doing (following a job, then failing it), that code runs
``held()``: a stop signal there is noted, and raised at its next ``check()``, where nothing
is half done.
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


class StopSignals:
    """The stop signals seen while ``stop_on_signals`` is in force."""

    def __init__(self):
        self.received: list[int] = []
        self._holding = 0
        self._noted: int | None = None     # a stop that arrived held, not raised yet
        self._raised = False

    def handle(self, signum, _frame) -> None:
        self.received.append(signum)
        if self._raised:      # the stop is under way: later signals must not interrupt its clean-up
            return
        if self._holding and self._noted is None:
            self._noted = signum
            return
        # Not held, or a second signal while the first waits to be raised: the user insists
        # (a held block stuck on an unreachable database must not make Ctrl-C do nothing).
        self._raise(signum)

    def _raise(self, signum: int) -> None:
        self._raised, self._noted = True, None
        raise Stopped(signum)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Inside, a stop signal raises ``Stopped`` only at ``check()`` (or as the block ends),
        unless a second one comes first."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        self.check()

    def check(self) -> None:
        """Raise the stop that arrived while held, if one did."""
        if self._noted is not None:
            self._raise(self._noted)


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[StopSignals]:
    stops = StopSignals()
    previous = {sig: signal.signal(sig, stops.handle) for sig in signals}
    try:
        yield stops
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
