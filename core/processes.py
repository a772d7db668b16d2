"""Child processes of one command: the embedded farm's and the local autoscaler's workers.

Each child runs in its own session (process group), so its pool children can be reaped with
it. Stopping sends SIGTERM to the child itself only: a Celery worker's main process then does
a warm shutdown (stops taking tasks, lets the running one finish), whereas a SIGTERM to the
whole group would also reach the prefork pool child, which Celery resets to the default
SIGTERM action, and kill the task mid-way. SIGKILL to the group comes only after the grace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class FarmProcess:
    """A child process in its own session, with its output appended to ``log_path``."""

    def __init__(self, name: str, args: list[str], env: dict, log_path: Path,
                 slot: int | None = None, pin_threads: int | None = None):
        """slot: the worker's place among this machine's workers (0, 1, ...); with pin_threads,
        it runs on ``cores_for(slot, pin_threads)`` when there are enough cores."""
        self.name = name
        self.log_path = log_path
        self.slot = slot
        self.args, self.env, self.pin_threads = args, env, pin_threads
        self.restarts = 0
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        self._spawn()

    def _spawn(self) -> None:
        cores = cores_for(self.slot, self.pin_threads) if self.slot is not None and self.pin_threads else None
        self.popen = subprocess.Popen(self.args, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        if cores:   # set before the worker forks its pool child (seconds later), which inherits it
            try:
                os.sched_setaffinity(self.popen.pid, cores)
            except ProcessLookupError:
                pass    # it died at once: the farm reports dead workers with their log

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def restart(self) -> None:
        """Start it again after it died (same command, name and cores; its log goes on),
        first reaping whatever of its group outlived it."""
        self.signal(signal.SIGKILL)
        self.popen.wait()
        self._log.write(f"--- exited with status {self.popen.returncode}; restarted ---\n".encode())
        self._log.flush()
        self.restarts += 1
        self._spawn()

    def signal(self, sig: int) -> None:
        """Signal the whole group (the child and anything it forked)."""
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def request_stop(self) -> None:
        """SIGTERM to the child alone: Celery's warm shutdown. Returns at once."""
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)

    def stop(self, grace: float = 15.0) -> None:
        """Warm shutdown, then SIGKILL to the group after ``grace`` seconds."""
        self.request_stop()
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        self.signal(signal.SIGKILL)  # also reaps pool children left in the group
        self.popen.wait()
        self._log.close()


def cores_for(slot: int, threads: int) -> set[int] | None:
    """The cores of the worker in ``slot`` (0, 1, ...) when each has ``threads`` of its own, or
    None when this machine has too few (or cannot pin: not Linux). A busy worker that the
    scheduler keeps moving onto its neighbour's core loses its caches (docs/design-notes.md)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    usable = sorted(os.sched_getaffinity(0))
    first = slot * threads
    return set(usable[first:first + threads]) if first + threads <= len(usable) else None


def worker_args(name: str, queues: str, app: str = "tasks.app") -> list[str]:
    """A one-process Celery worker named ``name@host`` on ``queues`` (comma-separated)."""
    return [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues, "-c", "1",
            "-P", "prefork", "-n", f"{name}@%h", "--loglevel", "INFO", "-E", "--without-mingle",
            "--without-gossip"]
