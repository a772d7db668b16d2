"""One `vidfarm up` per data folder: its Redis keeps its AOF in ``<data dir>/redis``, and two
servers appending to one AOF folder would corrupt it (and two farms would share one beat
schedule). An OS lock (flock) on ``<data dir>/up.lock``, held for the farm's life: the kernel
drops it when the process ends, however it ends (SIGKILL and crashes included), so nothing
stale is left to clean up, unlike a pid file."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_NAME = "up.lock"


class DataDirInUse(Exception):
    """Another process holds the data folder's lock."""


def _holder(fd: int) -> str:
    """The pid the holder wrote into the lock file ("unknown" if it has not written it yet)."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode(errors="replace").strip()
    return text if text.isdigit() else "unknown"


@contextmanager
def holding_data_dir(data_dir: Path) -> Iterator[None]:
    """Holds the data folder's lock while the block runs; raises DataDirInUse, naming the
    folder and the pid holding it, if another process holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # Not inherited by the farm's children (Python's descriptors are close-on-exec): the lock
    # is this process', released the moment it ends.
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirInUse(f"data dir {data_dir} is in use by another `vidfarm up` (pid {_holder(fd)}); "
                               "stop it first, or give this one another VIDFARM_DATA_DIR") from None
        # For the message a second `up` prints; the lock, not this number, decides.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
