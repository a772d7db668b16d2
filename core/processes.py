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

    def __init__(self, name: str, args: list[str], env: dict, log_path: Path):
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

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


def worker_args(name: str, queues: str, app: str = "tasks.app") -> list[str]:
    """A one-process Celery worker named ``name@host`` on ``queues`` (comma-separated)."""
    return [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues, "-c", "1",
            "-P", "prefork", "-n", f"{name}@%h", "--loglevel", "INFO", "-E", "--without-mingle",
            "--without-gossip"]
