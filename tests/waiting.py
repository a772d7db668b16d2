"""Waiting in tests for something another process or thread does."""

from __future__ import annotations

import time


def wait_until(condition, timeout: float, what: str, poll: float = 0.05, tolerate: tuple = ()):
    """Poll ``condition`` until it returns something true and return that; fail the test after
    ``timeout`` seconds. ``tolerate``: exceptions that mean "not yet" (a server still starting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except tolerate:
            value = None
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
