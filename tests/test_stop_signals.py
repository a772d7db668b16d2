"""cli.signals: what a stop signal does inside ``held()`` and after the stop began (real
signals sent to this process; the handler runs in the main thread, as in the CLI)."""

import os
import signal

import pytest

from cli.signals import Stopped, stop_on_signals


def send_sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    signal.sigtimedwait([], 0)      # a no-op system call: the handler runs before it returns


def test_a_stop_while_held_waits_for_the_check():
    with stop_on_signals() as stops:
        with pytest.raises(Stopped):
            with stops.held():
                send_sigterm()          # noted, not raised here
                stops.check()
                pytest.fail("check() did not raise the held stop")


def test_a_second_stop_while_held_is_raised_at_once():
    """The user insists: a held block that hangs (a database out of reach) must not make
    Ctrl-C do nothing."""
    with stop_on_signals() as stops:
        with stops.held():
            send_sigterm()
            with pytest.raises(Stopped):
                send_sigterm()
            stops.check()               # raised already: nothing left to raise


def test_signals_after_the_stop_began_do_not_interrupt_its_clean_up():
    with stop_on_signals():
        with pytest.raises(Stopped):
            send_sigterm()
        send_sigterm()                  # ignored: the clean-up runs on
        send_sigterm()
