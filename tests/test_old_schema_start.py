"""Processes that only check the schema (VIDFARM_DB_AUTO_UPGRADE=false, as the chart runs
them) stop at start on a database they may not upgrade, with the one line that says to run
`vidfarm db upgrade`. A Celery worker used to start and take tasks anyway: Celery logs and
ignores an error raised by a ``worker_init`` handler, before its logging is set up, so
nothing was printed; ``vidfarm ingest`` did not look at the database until a camera's alert."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cli.redis_server import RedisServer
from tests.conftest import child_env, repo_root
from tests.test_migrations import build_0_1

LINE = "the database is at revision none, this vidfarm needs "


@pytest.fixture
def old_database_env(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    build_0_1(url).dispose()
    redis = RedisServer(tmp_path / "redis").start()
    try:
        yield child_env(REDIS_URL=redis.url, DATABASE_URL=url, VIDFARM_DB_AUTO_UPGRADE="false",
                        VIDFARM_DATA_DIR=str(tmp_path / "data"), VIDFARM_THREADS="1")
    finally:
        redis.stop()


@pytest.mark.parametrize("command", [
    ["-m", "celery", "-A", "tasks.app", "worker", "-Q", "cpu", "-c", "1", "-P", "prefork", "--without-mingle",
     "--without-gossip"],
    ["-m", "cli.main", "ingest"],
], ids=["celery worker", "vidfarm ingest"])
def test_a_process_that_may_not_upgrade_stops_at_start_with_one_line(old_database_env, command):
    try:
        ended = subprocess.run([sys.executable, *command], cwd=repo_root(), env=old_database_env,
                               capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("still running a minute later on a database it may not upgrade")
    assert ended.returncode != 0
    assert LINE in ended.stderr and "run `vidfarm db upgrade` first" in ended.stderr, ended.stderr[-2000:]
    assert "Traceback" not in ended.stderr, ended.stderr[-2000:]
