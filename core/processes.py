"""Child processes of one command: the embedded farm's and the local autoscaler's workers.

Each child runs in its own session (process group), so its pool children can be reaped with
it. Stopping sends SIGTERM to the child itself only: a Celery worker's main process then does
a warm shutdown (stops taking tasks, lets the running one finish), whereas a SIGTERM to the
whole group would also reach the prefork pool child, which Celery resets to the default
SIGTERM action, and kill the task mid-way. SIGKILL to the group comes only after the grace.

Each child also gets a signal when this process dies, however it dies (``core.orphan_guard``):
SIGTERM unless told otherwise, so that it ends its usual graceful way (a Celery worker's warm
shutdown, the autoscaler stopping its own workers); the fork server gets SIGHUP and kills its
workers (``tasks.forkserver``: their Redis died with the farm, nothing is left to finish for).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.orphan_guard import guarded


# A log past this size is cut short, its lines kept as ``NAME.log.1`` (one older copy): a farm
# runs for weeks, and each task's INFO lines (about 1 MB an hour for an always-on worker with
# one camera and an upload every few seconds, in bench/soak.py's run) would otherwise fill its disk.
LOG_KEPT_BYTES = 20 * 2**20


def trim_long_log(log_path: Path) -> None:
    """Copy ``log_path`` to ``log_path.1`` (replacing an older one) and empty it, when it holds
    ``LOG_KEPT_BYTES`` or more. Copied, then truncated, not renamed: the process writing it keeps
    its descriptor, opened with O_APPEND, and goes on at the start of the emptied file (what
    logrotate calls copytruncate; lines written between the copy and the cut are lost)."""
    try:
        if log_path.stat().st_size < LOG_KEPT_BYTES:
            return
        shutil.copyfile(log_path, log_path.with_name(log_path.name + ".1"))
        os.truncate(log_path, 0)
    except FileNotFoundError:
        pass


class FarmProcess:
    """A child process in its own session, with its output appended to ``log_path``."""

    def __init__(self, name: str, args: list[str], env: dict, log_path: Path,
                 slot: int | None = None, pin_threads: int | None = None, death_signal: int = signal.SIGTERM):
        """slot: the worker's place among this machine's workers (0, 1, ...); with pin_threads,
        it runs on ``cores_for(slot, pin_threads)`` when there are enough cores. death_signal:
        what it gets when this process dies without stopping it."""
        self.name = name
        self.death_signal = death_signal
        self.log_path = log_path
        self.slot = slot
        self.args, self.env, self.pin_threads = args, env, pin_threads
        self.restarted_at: list[float] = []    # time.monotonic() of each restart (the farm prunes old ones)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        trim_long_log(log_path)
        self._log = open(log_path, "ab")
        self._spawn()

    def _spawn(self) -> None:
        self._stop_requested = False
        cores = cores_for(self.slot, self.pin_threads) if self.slot is not None and self.pin_threads else None
        self.popen = self._launch(cores)

    def _launch(self, cores: set[int] | None):
        popen = subprocess.Popen(guarded(self.args, self.death_signal), env=self.env, stdout=self._log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        if cores:   # set before the worker forks its pool child (seconds later), which inherits it
            try:
                os.sched_setaffinity(popen.pid, cores)
            except ProcessLookupError:
                pass    # it died at once: the farm reports dead workers with their log
        return popen

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def restart(self) -> None:
        """Start it again after it died (same command, name and cores; its log goes on),
        first reaping whatever of its group outlived it."""
        self.signal(signal.SIGKILL)
        self.popen.wait()
        self._log.write(f"--- {self.how_it_ended()}; restarted ---\n".encode())
        self._log.flush()
        self.restarted_at.append(time.monotonic())
        self._spawn()

    def trim_log(self) -> None:
        """Cut its log short once it is long (``trim_long_log``); its supervisor calls this as it looks."""
        trim_long_log(self.log_path)

    def how_it_ended(self) -> str:
        """Its exit status or the signal that killed it, in words (once it died)."""
        status = self.popen.returncode
        if status is not None and status < 0:
            try:
                return f"killed by {signal.Signals(-status).name}"
            except ValueError:
                return f"killed by signal {-status}"
        return f"exited with status {status}"

    def signal(self, sig: int) -> None:
        """Signal the whole group (the child and anything it forked)."""
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def request_stop(self) -> None:
        """SIGTERM to the child alone: Celery's warm shutdown. Returns at once. Sent once: the
        child's clean-up starts at the first, and a repeat could only disturb it."""
        if self.alive and not self._stop_requested:
            self._stop_requested = True
            self.popen.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> bool:
        """Whether it ended within ``timeout`` seconds."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, grace: float = 15.0) -> None:
        """Warm shutdown, then SIGKILL to the group after ``grace`` seconds."""
        self.request_stop()
        self.wait(grace)
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
    return [sys.executable, "-m", "celery", "-A", app, "worker", *celery_worker_options(name, queues)]


def celery_worker_options(name: str, queues: str) -> list[str]:
    """``celery worker``'s arguments for a one-process worker named ``name@host`` on ``queues``."""
    return ["-Q", queues, "-c", "1", "-P", "prefork", "-n", f"{name}@%h", "--loglevel", "INFO", "-E",
            "--without-mingle", "--without-gossip"]


class FarmStartError(RuntimeError):
    """The farm's workers cannot start (a bad analyzer config, say): one line for the user."""


class ForkServer:
    """The client of ``tasks.forkserver``: one process that loads what a worker needs once and
    forks the workers from it (see that module). Started at once; ``ready()`` waits for it."""

    def __init__(self, env: dict, log_path: Path):
        self.env, self.log_path = env, log_path
        self._pending: list[ForkedChild] = []     # asked for, pid not read yet: in the order asked
        self._start()

    def _start(self) -> None:
        # Workers asked of a server that died before it answered were never forked: gone.
        for child in self._pending:
            child.returncode = -1
        self._pending.clear()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            # Its death signal is SIGHUP (tasks.forkserver.FARM_GONE): it then kills its workers.
            self.popen = subprocess.Popen(guarded([sys.executable, "-m", "tasks.forkserver"], signal.SIGHUP),
                                          env=self.env,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                          start_new_session=True)
        self._ready: bool | None = None

    def _answer(self) -> dict:
        line = self.popen.stdout.readline()
        if not line:
            self.popen.wait()
            raise FarmStartError(f"the worker fork server exited with status {self.popen.returncode} "
                                 f"(see {self.log_path})")
        return json.loads(line)

    def ready(self) -> None:
        """Block until it has loaded everything; FarmStartError if it cannot serve."""
        if self._ready is None:
            answer = self._answer()
            if "error" in answer:
                self.popen.wait()
                raise FarmStartError(answer["error"])
            self._ready = True

    def fork(self, argv: list[str], log_path: Path, cores: set[int] | None) -> "ForkedChild":
        """Ask for a worker now; its pid is read when first needed (the server may still be
        loading). A server that died is started again first (after its earlier answers were
        read: the farm reads every pid as soon as it supervises)."""
        if self.popen.poll() is not None:
            self.close()
            self._start()
        request = {"argv": argv, "log": str(log_path), "cores": sorted(cores) if cores else None}
        self.popen.stdin.write((json.dumps(request) + "\n").encode())
        self.popen.stdin.flush()
        child = ForkedChild(self)
        self._pending.append(child)
        return child

    def resolve(self, child: "ForkedChild") -> None:
        """Read answers up to ``child``'s, giving each to the worker that asked for it (they
        come in the order asked, whichever worker is looked at first)."""
        while child in self._pending:
            asker = self._pending[0]
            # Off the list only once its answer is read: a stop signal's exception while this
            # waits leaves it first in line, so the next read gives it its own pid, not the next one's.
            try:
                self.ready()
                pid = self._answer()["pid"]
            except FarmStartError:
                self._pending.pop(0)
                asker.returncode = 2
                continue
            self._pending.pop(0)
            asker._pid = pid

    def abandon(self) -> None:
        """Stop it forking: a server still loading is killed, so that a farm stopped early
        does not wait for its imports (the pids it answered before stay readable)."""
        if self._ready is None and self.popen.poll() is None:
            self.popen.kill()

    def close(self) -> None:
        """End of its input ends it; its workers, which end with it (``tasks.forkserver``),
        must be stopped first."""
        for stream in (self.popen.stdin, self.popen.stdout):
            try:
                stream.close()
            except OSError:
                pass    # it is gone already
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


class ForkedChild:
    """What FarmProcess needs of a Popen, for a worker forked by the fork server (not a child
    of this process: it is watched through its pid, and the server's kernel-side reaping makes
    a finished one vanish at once). Its exit status is not known here (-1), except when the
    server could not fork it at all (2: a bad analyzer config, say)."""

    returncode: int | None = None

    def __init__(self, server: ForkServer):
        self._server = server
        self._pid: int | None = None

    def resolve(self) -> int | None:
        """Its pid (answers come in the order asked: this reads up to its own), or None when
        the server failed before forking it."""
        if self._pid is None and self.returncode is None:
            self._server.resolve(self)
        return self._pid

    @property
    def pid(self) -> int:
        pid = self.resolve()
        if pid is None:
            raise FarmStartError("the worker fork server failed before forking this worker")
        return pid

    def poll(self) -> int | None:
        pid = self.resolve()
        if pid is None:
            return self.returncode
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            self.returncode = -1 if self.returncode is None else self.returncode
            return self.returncode
        return None

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self._pid}", timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self._pid, sig)
            except ProcessLookupError:
                pass


class ForkedProcess(FarmProcess):
    """A Celery worker forked by ``server`` (``tasks.forkserver``) instead of started as its own
    ``celery worker`` process: the same name, log, cores, stopping and restarting."""

    def __init__(self, name: str, queues: str, server: ForkServer, log_path: Path,
                 slot: int | None = None, pin_threads: int | None = None):
        self.server = server
        super().__init__(name, ["worker", *celery_worker_options(name, queues)], server.env, log_path,
                         slot=slot, pin_threads=pin_threads)

    def _launch(self, cores: set[int] | None):
        self._log.flush()     # the child appends to the same file
        return self.server.fork(self.args, self.log_path, cores)

    def how_it_ended(self) -> str:
        # Not our child: the fork server reaps it, and its status is not passed on (ForkedChild).
        if self.popen.returncode == 2:
            return "not forked (the fork server failed)"
        return "ended (a forked worker: its exit status is not known here)"

    def signal(self, sig: int) -> None:
        if self.popen.resolve() is not None:    # never forked: nothing to signal
            super().signal(sig)
