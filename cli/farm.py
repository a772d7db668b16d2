"""The embedded farm: a private Redis, Celery workers and (optionally) the web app, as child
processes of one command. ``vidfarm process`` and ``vidfarm up`` run inside one; leaving the
``with`` block (Ctrl-C included) stops every process it started.

With ``autoscale=True`` (``vidfarm up``) the farm runs one always-on worker on the ingest
queue (so that enrolments and uploads' splits never wait behind the cameras or the segments)
and the local autoscaler (``vidfarm autoscale --backend local --queues live,cpu``), which runs
the chart's policy on local worker pools: the live pool (``-Q live``) sized by latency with
the registered cameras' floor and never below one worker, decided first, and the CPU pool in
what is left of the shared cap (``workers`` beyond that first live worker); otherwise
``workers`` fixed workers serve ``queues``, in that order (live camera segments first).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable

from cli.redis_server import RedisServer
from core.processes import FarmProcess, ForkedProcess, ForkServer
from core.settings import WEB_ONLY_VARIABLES, Settings


# `vidfarm up`'s always-on workers, by the queues each serves (its banner names them from here).
ALWAYS_ON_QUEUES = ("ingest",)
# The pools its local autoscaler sizes, live first (at the shared cap it is decided before cpu).
AUTOSCALED_QUEUES = "live,cpu"

LOCAL_SCALING = {"VIDFARM_AUTOSCALE_CPU__SIZE_BY": "tasks", "VIDFARM_AUTOSCALE_CPU__SCALE_DOWN_WINDOW_S": "30",
                 "VIDFARM_AUTOSCALE_CPU__IDLE_TO_ZERO_S": "60",
                 # The live pool keeps the chart's policy (latency, the cameras' floor), with two
                 # local facts: one worker is always there (a camera's watch starts only where a
                 # worker serves the live queue, and its first segment waits no worker start), and
                 # a worker starts in about 2 s here (forked), not a pod's 30 s: told 30 s, the
                 # forecast finds a new worker too late for the 3 s budget and never adds one.
                 "VIDFARM_AUTOSCALE_LIVE__MIN_REPLICAS": "1", "VIDFARM_AUTOSCALE_LIVE__POD_START_S": "2"}

# Stopping (``EmbeddedFarm.stop``): within about INGEST_STOP_S + 2 + STOP_GRACE_S (19 s) of the
# signal at worst, then the fork server's and Redis's exits, under the 30 s an init system or
# Kubernetes gives before SIGKILL (8.8-11.0 s measured with a camera live and its page open,
# load 8-13: tests/test_up_live_camera.py prints it). First the ingester, the web app, beat and
# Flower together, the workers serving on: the ingester sends each camera's last segment and
# gives the watches INGEST_STOP_S for their results (then counts them failed), and the web
# app's requests (a camera page's open event stream included) get WEB_STOP_S; once the
# ingester is gone, the workers and the autoscaler, all at once, share one grace (a warm
# shutdown: a task in hand finishes if it does so within the grace, the tasks not begun go
# back to the queue), then whatever is left is killed. Before, with each child's 15 s grace
# counted from its own turn and the ingester waiting for the results of a segment that the live
# workers, stopping with it, put back on the queue, a camera page's stream and a live camera
# took 33 s (load 2).
INGEST_STOP_S = 5.0
# Flower's app, as the chart runs it: its broker page lists every queue, not only the always-on
# worker's (the autoscaled ones have no worker at rest).
FLOWER_APP = "tasks.flower_app"
WEB_STOP_S = 5
STOP_GRACE_S = 12.0     # above the autoscaler's own grace for its workers (10 s)


class EmbeddedFarm:
    def __init__(self, data_dir: Path, workers: int = 2, queues: str = "live,ingest,cpu",
                 web_port: int | None = None, api_token: str | None = None,
                 extra_env: dict | None = None, autoscale: bool = False,
                 flower_port: int | None = None, flower_auth: str | None = None, beat: bool = False,
                 pin_workers: bool | None = None, cameras: bool = False, web_host: str = "127.0.0.1",
                 defer_extras: bool = False, keep_redis: bool = False,
                 report: Callable[[str], None] | None = None):
        """cameras: also run the camera ingester (``vidfarm ingest``), which watches the cameras
        registered through the API. web_host: the address the web app listens on (this machine
        only, unless the user chose another: VIDFARM_WEB_HOST). defer_extras: start the ingester,
        beat and Flower, which no first job needs, only in ``started()`` (or the first
        ``supervise()``), once the workers' fork server has done its loading, so that they do
        not compete with it for the cores. keep_redis: Redis keeps its data in ``data_dir``
        (AOF), so a farm started again on it finds its cameras and queued tasks. report: called
        with one line for each process ``supervise()`` restarts (`vidfarm up` prints it)."""
        self.data_dir = Path(data_dir)
        self.workers = workers
        self.autoscale = autoscale
        self.queues = queues
        self.web_port, self.web_host = web_port, web_host
        self.api_token = api_token
        self.log_dir = self.data_dir / "logs"
        self.redis = RedisServer(self.data_dir / "redis", appendonly=keep_redis)
        self.processes: list[FarmProcess] = []
        self.extra_env = extra_env or {}
        self.threads_per_worker = max(1, (os.cpu_count() or 1) // max(1, workers))
        self.beat = beat
        self.cameras = cameras
        # A fresh read: the cached settings must wait until the caller has pointed its
        # environment at this farm (REDIS_URL is only known once the farm starts).
        self.pin_workers = Settings().pin_workers if pin_workers is None else pin_workers
        self.flower_port, self.flower_auth = flower_port, flower_auth
        self._next_reclaim = 0.0      # when supervise() next looks for lapsed leases
        self.forkserver: ForkServer | None = None
        self.defer_extras = defer_extras
        self._later: list[tuple[str, list[str], dict, int]] = []    # (name, command, environment, death signal)
        self.report = report or (lambda _line: None)

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def web_env(self) -> dict:
        env = os.environ.copy()
        env.update({"REDIS_URL": self.redis.url, "VIDFARM_DATA_DIR": str(self.data_dir),
                    "VIDFARM_THREADS": str(self.threads_per_worker), "PYTHONUNBUFFERED": "1"})
        if self.api_token:
            env["VIDFARM_API_TOKEN"] = self.api_token
        env.update(self.extra_env)
        return env

    def env(self) -> dict:
        """Every other process' (workers, autoscaler, beat, Flower): without the API token and
        the secret key, which only the web app uses; media workers parse untrusted video."""
        return {name: value for name, value in self.web_env().items() if name not in WEB_ONLY_VARIABLES}

    def autoscaler_env(self) -> dict:
        # One machine's idle cores cost nothing: size by tasks (every worker while segments
        # wait, so a job ends soonest) and keep idle workers a minute (the next upload skips
        # their start), unless the user chose otherwise; the wait target saves worker-seconds
        # where workers are paid for (a cluster).
        # The cap: `workers` beyond the one live worker always kept, shared live first (the
        # chart's sharedMaxReplicas), so a camera backlog takes what uploads would have used, and
        # an upload burst never takes the cameras' room.
        # Its Prometheus port: off unless the user asked for one (two farms on one machine must
        # not clash on the default 9102), and then on the web app's address, not every interface.
        shared = str(self.workers + 1)
        return {**LOCAL_SCALING, "VIDFARM_AUTOSCALE_METRICS_PORT": "0",
                "VIDFARM_AUTOSCALE_METRICS_HOST": self.web_host, **self.env(),
                "VIDFARM_AUTOSCALE_CPU__MAX_REPLICAS": str(self.workers),
                "VIDFARM_AUTOSCALE_LIVE__MAX_REPLICAS": shared, "VIDFARM_AUTOSCALE_SHARED_MAX": shared}

    def autoscaler_command(self) -> list[str]:
        return [sys.executable, "-m", "cli.main", "autoscale", "--backend", "local", "--queues", AUTOSCALED_QUEUES]

    def start(self) -> "EmbeddedFarm":
        """Starts every process and returns without waiting for them; ``started()`` waits for
        the workers' fork server (and raises FarmStartError if they cannot start)."""
        try:
            # First, before Redis is even up: the workers' imports and models are the longest
            # part of the start, and the fork server needs no Redis until its workers connect
            # (the address is known: the port was chosen already).
            self.forkserver = ForkServer(self.env(), self.log_dir / "forkserver.log")
            self.redis.start()
            if self.autoscale:
                # An always-on worker serves ingest alone: an enrolment (embed_photos), a split
                # or a stitch waits at most for the ingest task in its hands, not for a camera
                # or upload backlog, and no live segment waits behind ingest's long tasks
                # (record_hour, join_video, stitch). The live and cpu pools are the autoscaler's.
                for queues in ALWAYS_ON_QUEUES:
                    self.add_worker(queues)
                self.processes.append(FarmProcess(
                    "autoscaler", self.autoscaler_command(),
                    self.autoscaler_env(),
                    self.log_dir / "autoscaler.log"))
            else:
                for _ in range(self.workers):
                    self.add_worker()
            if self.cameras:
                self._later.append(("ingest", [sys.executable, "-m", "cli.main", "ingest"],
                                    {**self.env(), "VIDFARM_INGEST_STOP_S": str(INGEST_STOP_S)}, signal.SIGTERM))
            if self.beat:
                self._later.append((
                    "beat", [sys.executable, "-m", "celery", "-A", "tasks.beat_app", "beat", "--loglevel", "INFO",
                             "--schedule", str(self.data_dir / "celerybeat-schedule")], self.env(),
                    signal.SIGTERM))     # it saves its schedule
            if self.flower_port:
                # The credentials go in the environment, not on the command line (ps shows that).
                # Orphaned, it is killed: it keeps nothing, and its graceful exit waits on
                # inspections of a broker that died with the farm.
                self._later.append((
                    "flower", [sys.executable, "-m", "celery", "-A", FLOWER_APP, "flower",
                               f"--port={self.flower_port}", "--address=127.0.0.1"],
                    {**self.env(), "FLOWER_BASIC_AUTH": self.flower_auth or ""}, signal.SIGKILL))
            if not self.defer_extras:
                self._start_extras()
            if self.web_port:
                self.processes.append(FarmProcess(
                    "web", [sys.executable, "-m", "gunicorn", "web.wsgi:app", "--bind",
                            f"{self.web_host}:{self.web_port}", "--workers", "2", "--threads", "4",
                            "--timeout", "600", "--graceful-timeout", str(WEB_STOP_S)],
                    self.web_env(), self.log_dir / "web.log"))
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self, queues: str | None = None) -> FarmProcess:
        index = sum(p.name.startswith("worker") for p in self.processes) + 1
        name = f"worker{index}-{os.getpid()}"
        # The fixed-size farm's workers each get their own cores (the autoscaled farm's
        # ingest worker is light and floats).
        pin = self.threads_per_worker if self.pin_workers and not self.autoscale else None
        process = ForkedProcess(name, queues or self.queues, self.forkserver, self.log_dir / f"{name}.log",
                                slot=index - 1, pin_threads=pin)
        self.processes.append(process)
        return process

    def started(self) -> None:
        """Block until the workers' fork server has loaded what they need and forked them, then
        start what waited for that (ingest, beat, Flower); FarmStartError (one line: a bad
        analyzer config, say) if the workers cannot start."""
        self.forkserver.ready()
        for process in self.processes:
            process.popen.pid      # noqa: B018  (reads the pids the fork server answered)
        self._start_extras()

    def _start_extras(self) -> None:
        while self._later:
            name, command, env, death_signal = self._later.pop(0)
            self.processes.append(FarmProcess(name, command, env, self.log_dir / f"{name}.log",
                                              death_signal=death_signal))

    def wait_ready(self, app, timeout: float = 60.0) -> None:
        """Block until every worker answers a ping (so timings exclude start-up)."""
        self.started()
        names = {p.name for p in self.processes if p.name.startswith("worker")}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=0.5) or []
            answered = {name.split("@")[0] for reply in replies for name in reply}
            if names <= answered:
                return
            dead = [p.name for p in self.processes if not p.alive]
            if dead:
                raise RuntimeError(f"farm process exited at start: {', '.join(dead)} "
                                   f"(see {self.log_dir})")
        raise TimeoutError(f"workers did not start within {timeout:.0f} s (see {self.log_dir})")

    def dead_processes(self) -> list[str]:
        return [p.name for p in self.processes if not p.alive]

    MAX_RESTARTS = 5    # a worker (or ingester) that keeps dying (a broken install, say) is reported, not looped on
    # ... that many times within this window: a broken process dies again within seconds of each
    # restart, where a rare crash (a bad camera stream once a week) must not add up over a farm's
    # weeks of life until it ends the farm. Deaths older than this no longer count.
    RESTART_WINDOW_S = 600.0
    RECLAIM_EVERY_S = 2.0

    def supervise(self) -> list[str]:
        """Restart every dead worker, give its work to the live ones at once (``tasks.leases``:
        no waiting for its leases to lapse), and queue again any other lapsed lease's work.
        The camera ingester is restarted too: it reads every camera's stream through FFmpeg, and
        one crash of it (a segfault on a broken stream, the OOM killer) used to end the whole
        farm, web app and all. Returns the processes that are dead for good: any other, or one
        restarted ``MAX_RESTARTS`` times already within the last ``RESTART_WINDOW_S``."""
        from redis import RedisError

        from tasks.leases import expire_leases_of, reclaim_expired

        self.started()

        gone, restarted = [], []
        for process in self.processes:
            process.trim_log()
            if process.alive:
                continue
            if not self._restartable(process) or self._recent_restarts(process) >= self.MAX_RESTARTS:
                gone.append(process.name)
                continue
            ended = process.how_it_ended()      # before the restart replaces its process
            process.restart()
            restarted.append(process.name)
            self.report(f"{process.name} {ended}; restarted ({len(process.restarted_at)} of "
                        f"{self.MAX_RESTARTS} restarts allowed within {self._window_in_words()})")
        try:
            for name in restarted:
                expire_leases_of(f"{name}@")
            if restarted or time.monotonic() >= self._next_reclaim:
                reclaim_expired()
                self._next_reclaim = time.monotonic() + self.RECLAIM_EVERY_S
        except RedisError:
            pass    # Redis down for a moment: its leases lapse meanwhile, and the next look reclaims them
        return gone

    def _recent_restarts(self, process: FarmProcess) -> int:
        """Its restarts within the window; older ones are forgotten."""
        since = time.monotonic() - self.RESTART_WINDOW_S
        process.restarted_at = [at for at in process.restarted_at if at > since]
        return len(process.restarted_at)

    def _window_in_words(self) -> str:
        window = self.RESTART_WINDOW_S
        return f"{window / 60:g} min" if window >= 60 else f"{window:g} s"

    @staticmethod
    def _serves_tasks(process: FarmProcess) -> bool:
        """A worker, or the autoscaler (which stops its own)."""
        return process.name.startswith("worker") or process.name == "autoscaler"

    @staticmethod
    def _restartable(process: FarmProcess) -> bool:
        return process.name.startswith("worker") or process.name == "ingest"

    def stop(self) -> None:
        """Every process stopped, the ingester first (see STOP_GRACE_S)."""
        if self.forkserver is not None:
            self.forkserver.abandon()
        for process in self.processes:
            if not self._serves_tasks(process):
                process.request_stop()      # together: their waits overlap
        for process in self.processes:
            if process.name == "ingest":    # its last segments go to workers still serving
                process.wait(INGEST_STOP_S + 2.0)
        for process in self.processes:
            process.request_stop()
        deadline = time.monotonic() + STOP_GRACE_S       # one grace for all, not one each in turn
        for process in self.processes:
            process.stop(max(0.0, deadline - time.monotonic()))
        self.processes.clear()
        if self.forkserver is not None:
            self.forkserver.close()
        self.redis.stop()

    def __enter__(self) -> "EmbeddedFarm":
        return self.start()

    def __exit__(self, *_):
        self.stop()
