"""Which cores a local worker gets."""

from __future__ import annotations

import os
import time

import pytest

from core.processes import cores_for

USABLE = sorted(os.sched_getaffinity(0))


@pytest.mark.parametrize("slot, threads, expected", [
    (0, 1, USABLE[:1]),
    (1, 1, USABLE[1:2] if len(USABLE) >= 2 else None),
    (0, len(USABLE), USABLE),
    (1, len(USABLE), None),                  # a second worker as wide as the machine: no room
    (len(USABLE), 1, None),                  # more workers than cores: none pinned
])
def test_cores_for(slot, threads, expected):
    assert cores_for(slot, threads) == (set(expected) if expected is not None else None)


def test_building_a_farm_leaves_the_settings_cache_alone(tmp_path):
    """Clients build the farm first and point their environment at it after (REDIS_URL is only
    known then): a settings read cached while building would keep the wrong broker."""
    from cli.farm import EmbeddedFarm
    from core.settings import get_settings

    get_settings.cache_clear()
    EmbeddedFarm(tmp_path, workers=2)
    assert get_settings.cache_info().currsize == 0


def autoscaler_settings(farm, monkeypatch):
    """The settings the farm's autoscaler process reads from the environment it is given."""
    from core.settings import Settings

    with monkeypatch.context() as env:
        for name, value in farm.autoscaler_env().items():
            env.setenv(name, value)
        return Settings()


def test_the_embedded_farm_sizes_its_local_workers_by_tasks_unless_told_otherwise(tmp_path, monkeypatch):
    """On one machine every worker should run while segments wait (the wait target would run
    one worker for a short job and double its time); a user's own choice wins."""
    from cli.farm import EmbeddedFarm

    farm = EmbeddedFarm(tmp_path, workers=3, autoscale=True)
    cpu = autoscaler_settings(farm, monkeypatch).autoscale_cpu
    assert (cpu.size_by, cpu.max_replicas, cpu.idle_to_zero_s) == ("tasks", 3, 60)
    monkeypatch.setenv("VIDFARM_AUTOSCALE_CPU__SIZE_BY", "wait")
    assert autoscaler_settings(farm, monkeypatch).autoscale_cpu.size_by == "wait"


def test_up_serves_the_autoscalers_metrics_only_when_asked_and_on_its_own_address(tmp_path, monkeypatch):
    """Off by default (two farms on one machine would clash on 9102); a user's
    VIDFARM_AUTOSCALE_METRICS_PORT was overwritten with 0, so `up` had no autoscaler metrics
    whatever the README's settings table said; asked for, they listen where the web app does."""
    from cli.farm import EmbeddedFarm

    farm = EmbeddedFarm(tmp_path, workers=2, autoscale=True)
    assert autoscaler_settings(farm, monkeypatch).autoscale_metrics_port == 0
    monkeypatch.setenv("VIDFARM_AUTOSCALE_METRICS_PORT", "9177")
    chosen = autoscaler_settings(farm, monkeypatch)
    assert (chosen.autoscale_metrics_port, chosen.autoscale_metrics_host) == (9177, "127.0.0.1")


def test_a_long_log_is_cut_short_at_start_and_while_its_process_runs(tmp_path, monkeypatch):
    """A farm runs for weeks: its processes' logs keep one older copy (``.log.1``), not every line."""
    import sys

    import core.processes
    from core.processes import FarmProcess

    monkeypatch.setattr(core.processes, "LOG_KEPT_BYTES", 1000, raising=False)
    log, older = tmp_path / "w.log", tmp_path / "w.log.1"
    log.write_bytes(b"old line\n" * 200)        # 1800 bytes: past the limit
    # It prints a line, waits to be told (a line on stdin would be closed: a file's appearance), prints another.
    script = ("import os, sys, time\nprint('first', flush=True)\n"
              f"while not os.path.exists({str(tmp_path / 'go')!r}): time.sleep(0.05)\n"
              "print('x' * 1200, flush=True)\n"
              f"while not os.path.exists({str(tmp_path / 'go2')!r}): time.sleep(0.05)\nprint('after', flush=True)")
    process = FarmProcess("w", [sys.executable, "-c", script], dict(os.environ), log)
    (tmp_path / "go").touch()
    deadline = time.monotonic() + 30
    while "x" * 1200 not in log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert older.read_bytes() == b"old line\n" * 200            # set aside as it started
    assert log.read_text().startswith("first\n")
    process.trim_log()                                           # past the limit while it runs
    (tmp_path / "go2").touch()
    process.popen.wait(30)
    assert older.read_text().startswith("first\n")
    assert log.read_text() == "after\n"        # the running process went on in the emptied file
