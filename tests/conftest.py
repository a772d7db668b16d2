"""Shared fixtures: generated clips, a private Redis and a real two-worker farm."""

from __future__ import annotations

import os
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from bench.shared_media import MEDIA
from tests.clipmaker import Clip, make_clip


@pytest.fixture(scope="session")
def media_dir() -> Path:
    if not MEDIA.is_dir():
        pytest.skip(f"test media folder {MEDIA} is absent")
    return MEDIA


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def face_clip(clips) -> Clip:
    """9 s, 15 fps, a face on screen for the first and last thirds, AAC audio, 2 s GOP."""
    return make_clip(clips / "faces.mp4", seconds=9, fps=15, gop=30)


@pytest.fixture(scope="session")
def two_visits(clips) -> Clip:
    """15 s, 15 fps, 960x540 (labels big enough to read back), two visits with nobody in
    between: cut in segments of 3 s or less, each visit crosses a border and some segment
    shows nobody."""
    return make_clip(clips / "two-visits.mp4", seconds=15, fps=15, gop=15, size=(960, 540), photo_height=300,
                     face_windows=[(0.5, 4.5), (10.0, 14.0)])


def use_farm_environment(monkeypatch, redis_url: str | None, data_dir: Path, threads: int = 1) -> None:
    """Point this test process's settings, records and Celery client at a farm."""
    from core.settings import get_settings
    from tasks import app as celery_app
    from services import runtime

    if redis_url:
        monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("VIDFARM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("VIDFARM_CONFIG_DIR", str(data_dir.parent / f"{data_dir.name}-config"))
    monkeypatch.setenv("VIDFARM_API_TOKEN", "test-token")
    monkeypatch.setenv("VIDFARM_THREADS", str(threads))  # as the workers: same x264 output
    get_settings.cache_clear()
    runtime.reset()
    if redis_url:
        celery_app.point_at(redis_url)


@pytest.fixture(scope="session")
def farm(tmp_path_factory):
    """A real farm: private redis-server on a free port and two Celery worker processes."""
    from cli.farm import EmbeddedFarm
    from tasks.app import app

    data_dir = tmp_path_factory.mktemp("farm")
    mp = pytest.MonkeyPatch()
    with EmbeddedFarm(data_dir, workers=2, extra_env={"VIDFARM_SEGMENT_SECONDS": "3"}) as embedded:
        use_farm_environment(mp, embedded.redis_url, data_dir, embedded.threads_per_worker)
        embedded.wait_ready(app)
        yield embedded
        forget_result_subscriptions()
        app.close()
    mp.undo()
    from core.settings import get_settings
    get_settings.cache_clear()


def forget_result_subscriptions() -> None:
    """Chords and tasks queued from this process subscribed to their results on the farm's
    Redis. Before that Redis goes away: closed and forgotten. Left, a result collected later
    unsubscribed there and reconnected 20 times a second apart, logging each traceback from
    whatever code the garbage collector interrupted (and Python 3.11's ``ast.parse``, running
    there in test_architecture, then failed: "AST constructor recursion depth mismatch")."""
    from tasks.app import app

    consumer = getattr(app.backend, "result_consumer", None)
    if consumer is not None:
        with suppress(Exception):       # its Redis may be gone already
            consumer.stop()
        consumer._pubsub = None         # Celery has no public call for this
        consumer.subscribed_to.clear()
    pending = getattr(app.backend, "_pending_results", None)
    if pending is not None:
        pending.concrete.clear()
        pending.weak.clear()


def restore_environment() -> None:
    """Point this process back at whatever farm its environment names (after a private one)."""
    from core.settings import get_settings
    from tasks import app as celery_app
    from services import runtime

    from celeryconfig import DEFAULT_BROKER_URL

    forget_result_subscriptions()
    get_settings.cache_clear()
    runtime.reset()
    # Always re-point, to the default broker when the environment names none: a private farm's
    # Redis, stopped now, would otherwise stay this process's broker, and the next test that
    # queues a task here would wait on it (Celery's result consumer retries 20 times, then fails).
    celery_app.point_at(get_settings().redis_url or DEFAULT_BROKER_URL)


@pytest.fixture(autouse=True)
def settings_follow_environment():
    """After each test, settings cached from an environment the test changed (and its
    monkeypatch has since undone) are read again, so they never reach the next test in this
    process: which test that is depends on how the suite is split across pytest processes."""
    yield
    from core.settings import Settings, get_settings

    if get_settings.cache_info().currsize and get_settings() != Settings():
        restore_environment()


@pytest.fixture(autouse=True)
def ordinary_scheduling(request):
    """After each test, the test process is back on the ordinary scheduling policy. SVT-AV1 (the
    AV1 encoder in PyAV's FFmpeg, which the tests that make AV1 clips use; vidfarm itself only
    decodes AV1, with dav1d) puts the thread that opens it on SCHED_FIFO 99 when run as root.
    Every process pytest started afterwards inherited that, and when the browser tests' Chromium
    exited, its zygotes spun in the kernel at that priority and starved both cores for over half
    an hour, where an ordinary process exits at once. The warning names the test."""
    yield
    if hasattr(os, "sched_getscheduler") and os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        import warnings
        warnings.warn(f"{request.node.nodeid} left the test process on a real-time scheduling policy "
                      "(set back to SCHED_OTHER)")


@contextmanager
def private_farm(data_dir: Path, workers: int = 2, appendonly: bool = False, beat: bool = False, **env):
    """A farm of a test's own (when it restarts or breaks things); the session farm's
    environment comes back afterwards."""
    from cli.farm import EmbeddedFarm

    farm = EmbeddedFarm(data_dir, workers=workers, extra_env=env, beat=beat)
    farm.redis.appendonly = appendonly
    with farm, pointed_at(farm, **env):
        yield farm


@contextmanager
def pointed_at(farm, **env):
    """This process's settings, records and Celery client on a started private ``farm`` (``env``:
    its extra settings, set here too) inside the block; the session farm's environment comes
    back afterwards. Apart from ``private_farm``, for a farm several tests share."""
    try:
        with pytest.MonkeyPatch.context() as mp:
            use_farm_environment(mp, farm.redis_url, farm.data_dir, farm.threads_per_worker)
            for name, value in env.items():
                mp.setenv(name, value)
            yield farm
    finally:
        restore_environment()


def wait_for_job(job_id: str, timeout: float = 180.0) -> dict:
    """Until the job ends and, when done, its video follows its latest results."""
    import time

    from services import runtime
    from services.jobs import job_view

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = job_view(runtime.records(), job_id)
        drawn = view["video_version"] >= view["results_version"] or view["video_error"]
        if view["status"] == "failed" or (view["status"] == "done" and drawn):
            return view
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} still {view['status']} (video of results version "
                       f"{view['video_version']} of {view['results_version']}) after {timeout} s")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def child_env(**overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update(overrides)
    return env


@contextmanager
def sql_statements(engine):
    """The SQL statements an engine runs inside the block, as a list filled as they run."""
    from sqlalchemy import event

    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@contextmanager
def committed_writes(engine, tables: tuple[str, ...]):
    """Which of ``tables`` each commit inside the block wrote (INSERT or UPDATE), one sorted
    list per commit that wrote any, as a list filled as they commit: whether writes a reader
    must see together are committed together."""
    from sqlalchemy import event

    commits: list[list[str]] = []
    written: set[str] = set()

    def executing(_conn, _cursor, statement, *_):
        written.update(table for table in tables
                       if statement.startswith((f"INSERT INTO {table} ", f"UPDATE {table} SET")))

    def committing(_conn):
        if written:
            commits.append(sorted(written))
        written.clear()

    def rolling_back(_conn):
        written.clear()
    event.listen(engine, "before_cursor_execute", executing)
    event.listen(engine, "commit", committing)
    event.listen(engine, "rollback", rolling_back)
    try:
        yield commits
    finally:
        event.remove(engine, "before_cursor_execute", executing)
        event.remove(engine, "commit", committing)
        event.remove(engine, "rollback", rolling_back)
