"""Telling a reader that left (`vidfarm db history | head -1`) from any other broken pipe.

Python ignores SIGPIPE, so a write to a pipe or socket nobody reads any more raises
BrokenPipeError, wherever it happens: on stdout when the reader of this command's output
left (nothing more to say, and no traceback), but also on a pipe to a child (the workers'
fork server) or a socket (Redis's), which is a failure to report. The exception does not say
which file it came from; the kernel does: on Linux the write end of a pipe whose readers are
all gone polls POLLERR, a socket whose peer closed polls POLLHUP, and a terminal or a file
does neither.
"""

from __future__ import annotations

import os
import select
import sys


def closed_by_reader() -> list[int]:
    """The file descriptors of stdout and stderr whose reader has gone."""
    gone = []
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, ValueError, OSError):    # replaced (a test's capture) or closed
            continue
        poller = select.poll()
        poller.register(fd, 0)      # POLLERR and POLLHUP are reported whatever is asked for
        if any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0)):
            gone.append(fd)
    return gone


def quiet_after_reader_left(fds: list[int]) -> None:
    """Point them nowhere: Python flushes stdout again on exit, and would fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in fds:
        os.dup2(devnull, fd)
    os.close(devnull)
