"""Local backend: Celery worker processes on this machine, one pool per scaled target.

Scaling up starts workers (``core.processes``, the same process handling as the embedded
farm; with ``forked``, forked from a fork server that has loaded the tasks and models once, so
a worker added under load is ready in about a second instead of paying every import); scaling down sends SIGTERM to idle workers first, and only to the worker's main
process, which makes Celery do a warm shutdown: it takes no new task and finishes the one in
hand. Such a worker is "draining": no longer counted as a replica, reaped once it exits, and
killed only if it outlives ``drain_limit_s`` (set above the task time limit; acks_late then
turns the kill into a redelivery, not a loss).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from pathlib import Path

from core.processes import FarmProcess, ForkedProcess, ForkServer, worker_args
from core.settings import ScaleSettings

log = logging.getLogger(__name__)


def node_worker_name(node: str) -> str:
    """Celery node ``vidfarm-worker-cpu-3-1234@host`` -> the worker's name, ``vidfarm-worker-cpu-3-1234``."""
    return node.split("@", 1)[0]


class LocalBackend:
    def __init__(self, env: dict, log_dir: Path, drain_limit_s: float, app: str = "tasks.app",
                 pin_threads: int | None = None, forked: bool = False):
        """pin_threads: give each worker that many cores of its own while there are enough
        (``core.processes.cores_for``); None leaves them to the scheduler. forked: fork vidfarm's
        workers (``tasks.app`` only) from a fork server started now (``tasks.forkserver``)."""
        self.env = env
        self.pin_threads = pin_threads
        self.log_dir = Path(log_dir)
        self.drain_limit_s = drain_limit_s
        self.app = app
        self.pools: dict[str, list[FarmProcess]] = {}
        self.draining: dict[FarmProcess, float] = {}      # worker -> when SIGTERM was sent
        self._numbers = itertools.count(1)
        if forked and app != "tasks.app":
            raise ValueError("only tasks.app's workers can be forked (tasks.forkserver loads vidfarm's)")
        self.forkserver = ForkServer(env, self.log_dir / "forkserver.log") if forked else None

    def _pool(self, target: ScaleSettings) -> list[FarmProcess]:
        pool = self.pools.setdefault(target.deployment, [])
        for dead in [p for p in pool if not p.alive]:
            log.warning("worker %s exited on its own (see %s)", dead.name, dead.log_path)
            dead.stop(0)
            pool.remove(dead)
        return pool

    def reap(self) -> None:
        """Close workers that finished draining; kill those past the drain limit."""
        now = time.monotonic()
        for worker, since in list(self.draining.items()):
            if worker.alive and now - since < self.drain_limit_s:
                continue
            if worker.alive:
                log.warning("worker %s still busy %.0f s after SIGTERM: killing it", worker.name, now - since)
            worker.stop(0)
            del self.draining[worker]

    def replicas(self, target: ScaleSettings) -> int:
        """Asked once a poll per target: the workers' logs are trimmed here, not at every look at a pool."""
        self.reap()
        pool = self._pool(target)
        for worker in pool:
            worker.trim_log()
        return len(pool)

    def busy_workers(self, target: ScaleSettings, busy_nodes: frozenset[str]) -> set[str]:
        names = {node_worker_name(node) for node in busy_nodes}
        return {worker.name for worker in self._pool(target) if worker.name in names}

    def scale(self, target: ScaleSettings, replicas: int, busy: set[str] | None) -> None:
        pool = self._pool(target)
        while len(pool) < replicas:
            name = f"{target.deployment}-{next(self._numbers)}-{os.getpid()}"
            slot = min(set(range(len(self.workers) + 1)) - {w.slot for w in self.workers})
            # One log per slot, appended to by each worker that holds it: the names above never
            # repeat, and a log per name left a new file behind each scale-up, weeks on.
            log_path = self.log_dir / f"{target.deployment}-slot{slot}.log"
            pool.append(ForkedProcess(name, target.queue, self.forkserver, log_path, slot=slot,
                                      pin_threads=self.pin_threads) if self.forkserver else
                        FarmProcess(name, worker_args(name, target.queue, self.app), self.env, log_path,
                                    slot=slot, pin_threads=self.pin_threads))
        # Idle workers first (False sorts before True), newest first among equals.
        busy = busy or set()     # unknown: newest first (they have had the least time to take a task)
        for worker in sorted(reversed(pool), key=lambda w: w.name in busy)[:max(0, len(pool) - replicas)]:
            worker.request_stop()
            self.draining[worker] = time.monotonic()
            pool.remove(worker)

    @property
    def workers(self) -> list[FarmProcess]:
        return [w for pool in self.pools.values() for w in pool] + list(self.draining)

    def close(self, grace: float = 10.0) -> None:
        """Stop every worker: warm shutdown, SIGKILL after ``grace`` seconds. Short on purpose:
        the autoscaler itself is stopped with a grace (the embedded farm gives it 12 s,
        ``cli.farm.STOP_GRACE_S``), and a task killed here is redelivered (acks_late), not lost."""
        workers = self.workers
        if self.forkserver is not None:
            self.forkserver.abandon()
        for worker in workers:
            worker.request_stop()
        deadline = time.monotonic() + grace          # one grace for all, not one each
        for worker in workers:
            worker.stop(max(0.0, deadline - time.monotonic()))
        self.pools.clear()
        self.draining.clear()
        if self.forkserver is not None:
            self.forkserver.close()
