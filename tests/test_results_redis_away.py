"""Processes that wait on task results while the farm's Redis goes away: `vidfarm watch` on a
farm named by REDIS_URL, and ``tasks.client.call`` (the web's enrolment waits with it).

Celery's result backend retries a lost Redis for the workers that store results (20 times,
backing off to 10 s: 40 s and more); before, the watch sat in those retries past a SIGTERM and
then exited 1 with a traceback, and a call in flight failed with Celery's RuntimeError ("the
Celery application must be restarted") as a 500."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
from redis import Redis

from cli.farm import EmbeddedFarm
from cli.redis_server import RedisServer
from core.processes import FarmProcess, worker_args
from tests.clipmaker import make_clip
from tests.conftest import child_env, repo_root, restore_environment
from tests.rtsp_camera import RtspCamera, gstreamer_missing
from tests.waiting import wait_until

STOP_WITHIN_S = 15      # "a few seconds" plus a loaded machine's slack: a bound, not a timing
# The watch waits 20 s (tasks.live_watch.REDIS_AWAY_S) for Redis to answer again, then ends.
GIVE_UP_WITHIN_S = 60


def lines_of(out) -> list[dict]:
    path = out / "live.jsonl"
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]


@pytest.mark.parametrize("ending", ["SIGTERM", "no signal"])
def test_a_watch_whose_redis_dies_ends_with_what_it_has_and_one_line(tmp_path, ending):
    if reason := gstreamer_missing():
        pytest.skip(reason)
    clip = make_clip(tmp_path / "cam.mp4", seconds=120, fps=10, gop=10, size=(320, 180), photo_height=90,
                     face_windows=[(0, 120)], audio=False)
    out = tmp_path / "out"
    with EmbeddedFarm(tmp_path / "farm", workers=1) as farm, RtspCamera(clip.path) as camera:
        env = child_env(REDIS_URL=farm.redis_url, VIDFARM_DATA_DIR=str(farm.data_dir))
        watch = subprocess.Popen([sys.executable, "-m", "cli.main", "watch", camera.url, "--out", str(out)],
                                 cwd=repo_root(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # One segment analysed is what it has (its frames, at least 2): each one more is 2 s
            # more of the camera's real time before Redis goes.
            wait_until(lambda: lines_of(out) or watch.poll() is not None, 180, "a segment analysed")
            farm.redis.stop()
            if ending == "SIGTERM":
                watch.send_signal(signal.SIGTERM)
            stdout, stderr = watch.communicate(timeout=STOP_WITHIN_S if ending == "SIGTERM" else GIVE_UP_WITHIN_S)
        finally:
            watch.kill()
    assert "Traceback" not in stderr, stderr
    results = json.loads((out / "results.json").read_text())      # what it had, written
    lines = lines_of(out)
    assert len(results["frames"]) == sum(line["frames"] for line in lines) >= 2
    if ending == "SIGTERM":
        assert watch.returncode == 0, stderr
        assert stdout.strip().splitlines()[-1].startswith("done: ") and stderr.strip() == "", stderr
    else:
        assert watch.returncode == 1
        [line] = stderr.strip().splitlines()
        assert line == ("vidfarm: error: the farm's Redis does not answer (for 20 s): the watch ended; "
                        f"what it had is in {out / 'results.json'}"), line


def test_a_call_in_flight_when_redis_goes_is_a_503_and_the_next_one_after_it_is_back_works(tmp_path):
    """Redis stopped for over Celery's 20 s of result-consumer retries while a call waits (no
    worker yet), then started again on its port: the call in flight is ``BrokerUnavailable``
    (the web's 503, not Celery's RuntimeError, a 500), and the first call after works in the
    same process (no restart needed)."""
    from core.errors import BrokerUnavailable
    from tasks import app as celery_app
    from tasks.client import call

    redis = RedisServer(tmp_path / "redis").start()
    worker = None
    try:
        celery_app.point_at(redis.url)
        outcome = []

        def in_flight():
            try:
                outcome.append(call("celery.accumulate", 1, timeout_s=120))
            except Exception as error:      # noqa: BLE001 (what it raised is the test)
                outcome.append(error)

        waiting = threading.Thread(target=in_flight)
        waiting.start()
        queued = Redis.from_url(redis.url)
        # Queued (after its result subscription): the call waits on its result now.
        wait_until(lambda: queued.llen("cpu"), 30, "the call's task queued")
        queued.close()
        redis.stop()
        waiting.join(120)
        [error] = outcome
        assert isinstance(error, BrokerUnavailable), repr(error)
        assert "went away while waiting for celery.accumulate" in str(error) and "\n" not in str(error)
        redis.start()          # the same port
        env = child_env(REDIS_URL=redis.url, VIDFARM_DATA_DIR=str(tmp_path / "data"))
        worker = FarmProcess("w", worker_args("w", "ingest,cpu"), env, tmp_path / "worker.log")
        assert call("celery.accumulate", 2, timeout_s=120) == [2]
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()
        restore_environment()


def test_a_watch_pings_redis_about_once_a_second_and_still_finds_it_gone(tmp_path, monkeypatch):
    """While a segment's result is awaited, the watch's loop asked whether the farm's Redis
    answers with a PING at each 50 ms poll: 20 a second per camera. Twenty polls in a row (well
    within a second) now cost one PING (two, on a machine that stalls between them), the result
    still looked for at each one; once Redis goes, a look at the result fails at once (the
    watch's own client, not Celery's 40 s of retries) and the watch finds Redis gone (here with
    ``REDIS_AWAY_S`` at 0: the test looks at the check, not at the 20 s)."""
    import uuid

    import tasks.live_watch
    from tasks.app import app
    from tasks.live_watch import LiveWatch, _Sent
    from tests.conftest import use_farm_environment

    (tmp_path / "data").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    probe = Redis.from_url(server.url)
    watch = None
    try:
        use_farm_environment(monkeypatch, server.url, tmp_path / "data")
        watch = LiveWatch("rtsp://127.0.0.1:9/none", tmp_path / "out", keep_results=False)
        awaited = _Sent(None, app.AsyncResult(uuid.uuid4().hex), time.monotonic())    # no worker: it never comes
        watch.sent.append(awaited)

        def pings() -> int:
            return probe.info("commandstats").get("cmdstat_ping", {}).get("calls", 0)
        before = pings()
        for _ in range(20):
            assert not watch._redis_gone()
            watch._collect(wait=False)
        assert pings() - before <= 2
        assert list(watch.sent) == [awaited]
        monkeypatch.setattr(tasks.live_watch, "REDIS_AWAY_S", 0.0)
        probe.close()
        server.stop()
        watch._collect(wait=False)       # Redis answered a PING less than a second ago: the look itself fails
        assert list(watch.sent) == [awaited]
        wait_until(watch._redis_gone, 30, "the watch to find Redis gone")
    finally:
        if watch is not None:
            watch._redis.close()
        probe.close()
        server.stop()
        monkeypatch.undo()
        restore_environment()


def test_a_result_given_up_with_redis_away_is_let_go_without_a_word_to_redis(tmp_path, monkeypatch):
    """A segment queued (its result's channel subscribed), then Redis gone: the watch gives its
    result up. Dropped as it was, the AsyncResult unsubscribed when collected, and Celery
    retried the dead Redis for 40 s and more, deaf to a signal: a watch printed "done" after
    SIGTERM and then did not exit (or printed a traceback from ``__del__``)."""
    import gc

    from tasks.app import app
    from tasks.live_watch import LiveWatch, _Sent
    from tests.conftest import use_farm_environment

    (tmp_path / "data").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    watch = None
    try:
        use_farm_environment(monkeypatch, server.url, tmp_path / "data")
        watch = LiveWatch("rtsp://127.0.0.1:9/none", tmp_path / "out", keep_results=False)
        result = app.send_task("vidfarm.live_segment", ("never run",), queue="nobody")   # subscribes its channel
        result_id = result.id
        watch.sent.append(_Sent(None, result, time.monotonic()))
        taken = []
        monkeypatch.setattr(watch, "_take", lambda segment, error, fenced, away: taken.append((error, away)))
        asked = []      # what Celery would ask the dead Redis (for 40 s): recorded, not sent
        monkeypatch.setattr(app.backend.result_consumer, "cancel_for", asked.append)
        server.stop()
        watch._collect(wait=True)
        assert taken == [("no result: the farm's Redis does not answer", True)] and not watch.sent
        del result
        gc.collect()
        assert asked == []
        consumer = app.backend.result_consumer          # nor subscribed again when Redis comes back
        assert consumer._get_key_for_task(result_id) not in consumer.subscribed_to
    finally:
        if watch is not None:
            watch._redis.close()
        server.stop()
        monkeypatch.undo()
        restore_environment()
