"""Waiting for a server this process just started (used by the tests and the benchmarks)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request


def wait_for_http(request, timeout: float = 60):
    """urlopen, retrying while the server is still starting (connection refused)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(request, timeout=5)
        except urllib.error.HTTPError:
            raise
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
