"""The embedded farm's fork server (``python -m tasks.forkserver``): what every Celery worker
of one machine loads, loaded once, then one fork per worker.

A worker started as its own ``celery worker`` process spends seconds importing Celery, the
tasks, the pipeline and its libraries (onnxruntime, OpenCV, supervision and SciPy, PyAV),
checking the analyzer configs and loading the models; two of them starting at once on two
cores pay it twice, side by side. This process pays it once: it parses the settings, forks a
child that brings the database schema up to date on another core, checks the analyzer configs
(a bad one ends it with one line, before any worker exists), imports the tasks and loads the
models where that survives a fork (below), then forks a worker for each request. The fork runs
``celery worker`` as the command line would (Celery's own pool child is forked from it in
turn), in a session of its own, on the cores asked for, logging to its file. The log says how
long each part of the loading took.

Models are loaded here only when each worker runs its sessions on one thread on the CPU:
onnxruntime then starts no thread of its own, and a fork copies them whole. With more threads
(its intra-op pool's threads do not survive a fork) or a GPU (nor does a CUDA context) each
worker's pool process loads them after the fork, as a worker started alone does.

Protocol, one JSON object a line. Requests on stdin: ``{"argv": [...], "log": PATH, "cores":
[...] or null}``. Answers on stdout: first ``{"ready": true}`` or ``{"error": "..."}`` (then it
exits with status 2), then ``{"pid": N}`` per request, in order. Workers are reaped by the
kernel (SIGCHLD ignored here), so a finished one vanishes at once. End of stdin ends the
server (the farm stops the workers first); a server that ends otherwise (killed) leaves its
workers a warm shutdown (they get SIGTERM). When the farm's command dies, however it dies, the
server sees the end of its input and gets ``FARM_GONE`` (its death signal, ``core.orphan_guard``):
either way it kills the workers still running before it ends (``kill_orphans``).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import sys
import tempfile
import time

# This server's death signal (``core.processes.ForkServer``): the process that started it (the
# farm's command, or the autoscaler) died, however it died. Not SIGTERM, which anyone may send:
# a server that is only terminated leaves its workers a warm shutdown (their SIGTERM,
# ``stop_with``), and the farm starts new ones.
FARM_GONE = signal.SIGHUP


def prepare() -> str | None:
    """Everything a worker needs before its fork; the reason it cannot start, or None. Each
    part's time goes to the log (bench/startup.py reads it for its breakdown)."""
    phase = Phases()
    from core.errors import SchemaOutOfDate
    from core.records import known_current
    from core.settings import get_settings
    from services import runtime

    # The command that started the farm has parsed the same settings already: a bad one
    # never gets here (a traceback in the log if it does).
    settings = runtime.configure(get_settings())
    schema = bring_schema_up_to_date_aside(runtime)
    try:
        problem = load(settings, phase)
    finally:
        _, status = os.waitpid(schema, 0)       # a server that ends (a bad config) leaves nothing behind
    if problem:
        return problem
    if status == 0:
        known_current(settings.sqlalchemy_url)      # the workers need not check it again
    else:
        # The child failed (its traceback is in the log): this fails the same way, here; a
        # schema it may not or cannot bring up to date is the one line the command shows.
        try:
            runtime.records().engine.dispose()
        except SchemaOutOfDate as error:
            return str(error)
    runtime.configure(settings)
    phase.done("database schema current")
    return None


def load(settings, phase: "Phases") -> str | None:
    """The imports and the models (see ``prepare``)."""
    from workers.analyzer_configs import AnalyzerConfigError, check

    try:
        check(settings.analyzer_configs(), settings.plugins)
    except AnalyzerConfigError as error:
        return f"bad setting {error}"
    phase.done("analyzers imported, settings and analyzer configs checked")
    from tasks.app import app

    app.loader.import_default_modules()     # the tasks, and through them the pipeline
    phase.done("tasks imported")
    # What `celery worker` imports as it starts, so that each fork finds it loaded.
    import celery.apps.worker  # noqa: F401
    import celery.bin.worker  # noqa: F401
    import celery.concurrency.prefork  # noqa: F401
    import celery.worker.consumer  # noqa: F401
    import kombu.transport.redis  # noqa: F401
    # ... and what each worker then imported by itself (about 0.1 s of CPU each, seen with
    # PYTHONPROFILEIMPORTTIME in their logs): its result backend, events, the pool's shared
    # memory, the parser billiard's pool child loads to set its death signal through cffi, and
    # the database's driver.
    import billiard.popen_fork  # noqa: F401
    import billiard.sharedctypes  # noqa: F401
    import billiard.synchronize  # noqa: F401
    import celery.backends.asynchronous  # noqa: F401
    import celery.backends.redis  # noqa: F401
    import celery.events.dispatcher  # noqa: F401
    import celery.events.receiver  # noqa: F401
    import kombu.matcher  # noqa: F401
    import kombu.pidbox  # noqa: F401
    from sqlalchemy.engine import make_url

    try:
        import cffi.cparser  # noqa: F401
    except ImportError:     # billiard then uses ctypes
        pass
    make_url(settings.sqlalchemy_url).get_dialect().import_dbapi()
    from workers import models

    phase.done("celery worker imported")
    if settings.effective_threads == 1 and models.providers() == ["CPUExecutionProvider"]:
        from tasks import jobs

        jobs.warm_up()      # lru-cached: each worker's pool process finds the chain loaded
        phase.done("models loaded")
    return None


def bring_schema_up_to_date_aside(runtime) -> int:
    """Fork a child that brings the database schema up to date (a fresh database's migrations
    take a few tenths of a second, all Python) on another core while this process goes on
    with its imports; returns its pid. Its forks then skip the check (``known_current``)."""
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:
        return child
    status = 1
    try:
        started = time.monotonic()
        runtime.records().engine.dispose()
        log(f"database schema brought up to date beside the imports in {time.monotonic() - started:.2f} s")
        status = 0
    except BaseException:   # noqa: BLE001  (the parent, checking after, fails with the same error)
        import traceback

        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(status)


class Phases:
    """The time each part of the start took, logged as it ends."""

    def __init__(self):
        self.last = time.monotonic()

    def done(self, what: str) -> None:
        now = time.monotonic()
        log(f"{what} in {now - self.last:.2f} s")
        self.last = now


def serve(requests, answer, protocol_fd: int) -> None:
    """Fork a worker for each request line until the end of ``requests``."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)     # the kernel reaps them: no zombies
    server = os.getpid()
    workers: list[int] = []
    signal.signal(FARM_GONE, lambda signum, _frame: end_with_the_farm(signum, workers))
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        # No FARM_GONE between the fork and the worker's place in the list (nor in the child
        # before it has reset the handler).
        signal.pthread_sigmask(signal.SIG_BLOCK, {FARM_GONE})
        pid = os.fork()
        if pid == 0:
            run_worker(request, protocol_fd, server)      # never returns
        workers[:] = [*filter(running, workers), pid]
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {FARM_GONE})
        answer({"pid": pid})
        log(f"forked the worker logging to {request['log']} (pid {pid})")
    # The end of the input: the farm closed it after stopping its workers, or died (then the
    # pipe closes as FARM_GONE comes): a worker still running is an orphan.
    kill_orphans(workers)


def end_with_the_farm(signum: int, workers: list[int]) -> None:
    """FARM_GONE: nothing supervises the workers any more, and the embedded farm's Redis died
    with its command: a worker's warm shutdown would finish its task only to retry storing the
    result for minutes (``result_backend_always_retry``). They are killed (``kill_orphans``;
    with a Redis that lives on, acks_late and the task leases give their tasks to others),
    then this server ends."""
    kill_orphans(workers)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def kill_orphans(workers: list[int]) -> None:
    """SIGKILL to each worker still running, with its group (Celery's pool child)."""
    left = [pid for pid in workers if running(pid)]
    for pid in left:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        log(f"the farm that started this server is gone: killed its workers (pids {left})")


def running(pid: int) -> bool:
    """Still one of this server's workers. They are reaped the moment they end (SIGCHLD
    ignored), so a worker's pid may since have gone to another process, perhaps the leader of
    another group that ``kill_orphans`` would kill: where /proc tells, only a child of this
    server counts."""
    if os.path.isdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as stat:      # "pid (name) state ppid ..."
                return int(stat.read().rsplit(")", 1)[1].split()[1]) == os.getpid()
        except (OSError, ValueError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except OSError:     # gone, or its pid is now another user's
        return False
    return True


def run_worker(request: dict, protocol_fd: int, server_pid: int) -> None:
    """In the forked child: become the worker the request describes; exits with its status."""
    status, private_tmp = 1, None
    try:
        signal.signal(FARM_GONE, signal.SIG_DFL)     # the server's (Celery sets its own)
        stop_with(server_pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {FARM_GONE})     # blocked by the server for the fork
        os.setsid()      # its own group, as a worker started with start_new_session (core.processes)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)   # its pool must wait for its own children
        if request.get("cores"):
            os.sched_setaffinity(0, request["cores"])
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in (log, null, protocol_fd):     # the answers are the server's alone
            os.close(fd)
        # A temporary folder of its own, removed as it ends: the os._exit below skips the atexit
        # hooks that remove the pool's "pymp-*" folder, and an autoscaled farm starts workers
        # again and again for weeks (one folder left in TMPDIR per worker ever started).
        private_tmp = tempfile.mkdtemp(prefix="vidfarm-worker-")
        os.environ["TMPDIR"] = tempfile.tempdir = private_tmp
        try:
            status = celery_worker(request["argv"])
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:   # noqa: BLE001  (whatever it was, the child must not return into the server)
        import traceback

        traceback.print_exc()
    finally:
        if private_tmp:
            shutil.rmtree(private_tmp, ignore_errors=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def celery_worker(argv: list[str]) -> int:
    """``celery worker ARGS`` (argv: ``["worker", ARGS...]``) as the command line runs it, through
    the worker command's own option parsing, but without the ``celery`` command group around
    it: importing that group (every sub-command, the plugins that installed packages declare,
    an interactive shell's libraries) took about a third of a second of each worker's start.
    Returns its exit status."""
    from celery.bin.base import CLIContext
    from celery.bin.worker import worker

    from tasks.app import app

    if argv[:1] != ["worker"]:
        raise ValueError(f"not a worker's command line: {argv}")
    # What the group would have given the command: the app, and its options' defaults.
    context = CLIContext(app=app, no_color=False, workdir=None, quiet=False)
    status = worker.main(args=argv[1:], prog_name="celery worker", obj=context, standalone_mode=False)
    return status if isinstance(status, int) else 0


def stop_with(server_pid: int) -> None:
    """A warm shutdown (SIGTERM) for this worker when the server ends: the farm ends the server
    after its workers, so only a server killed by itself leaves them (the farm then starts new
    ones from a new server; a farm that died had the server kill them first, ``kill_orphans``).
    ``core.orphan_guard``: Linux only."""
    from core.orphan_guard import die_with_parent

    if not die_with_parent(signal.SIGTERM, server_pid):      # the server died before that was set
        os._exit(1)


def log(line: str) -> None:
    """One line to the server's log. Straight to the descriptor, not through sys.stderr's
    buffer: FARM_GONE's handler logs too, and one that ran inside a buffered write (a signal
    lands while the main loop logs) would raise a re-entrant call error instead."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    os.write(2, f"[{stamp},{int(time.time() * 1000) % 1000:03d}: fork server] {line}\n".encode())


def main() -> int:
    # The protocol gets its own copy of stdout; stdout itself goes to stderr (the server's
    # log), so that nothing an import prints can garble an answer.
    protocol_fd = os.dup(1)
    protocol = os.fdopen(protocol_fd, "w", buffering=1)
    os.dup2(2, 1)

    def answer(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")

    started = time.monotonic()
    log("started")
    # The imports make hundreds of thousands of objects and free almost none: collections as
    # they go would only walk them again and again (everything is frozen below anyway).
    gc.disable()
    problem = prepare()
    if problem:
        answer({"error": problem})
        return 2
    log(f"ready in {time.monotonic() - started:.2f} s ({time.process_time():.2f} s of CPU)")
    # Everything loaded so far is shared with the forks until written: kept out of the
    # collector's reach, a fork's garbage collections do not touch (and so copy) its pages.
    gc.freeze()
    gc.enable()
    answer({"ready": True})
    serve(sys.stdin, answer, protocol_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
