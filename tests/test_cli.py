"""The `vidfarm` command as a user runs it: its own embedded farm, started and stopped."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cli.main import main
from cli.redis_server import free_port
from core.settings import get_settings
from tests.clipmaker import count_video_frames, make_clip
from tests.conftest import child_env
from tests.net import wait_for_http
from tests.waiting import wait_until

VIDFARM = [sys.executable, "-m", "cli.main"]


def processes_with_env(marker: str) -> list[int]:
    """PIDs whose environment holds marker (how we find anything a farm left behind)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker.encode() in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_process_with_embedded_farm(tmp_path):
    clip = make_clip(tmp_path / "walk.mp4", seconds=8, fps=15, gop=30)
    data_dir = tmp_path / "data"
    env = child_env(VIDFARM_DATA_DIR=str(data_dir), VIDFARM_SEGMENT_SECONDS="3")
    run = subprocess.run(VIDFARM + ["process", str(clip.path), "--out", str(tmp_path / "out"),
                                    "--workers", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "segments" in run.stdout
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results["frames"]) == clip.frames and results["chunks"] >= 2
    assert results["source"]["path"] == "walk.mp4"    # its file name, as an upload's: not the folders above
    assert count_video_frames(tmp_path / "out" / "annotated.mp4") == clip.frames
    assert processes_with_env(f"VIDFARM_DATA_DIR={data_dir}") == []   # nothing left running


def test_process_bad_input_exits_nonzero_with_one_line(farm, tmp_path):
    from core.models import Job
    from services import runtime

    def jobs() -> int:
        with runtime.records().session() as s:
            return s.query(Job).count()

    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video at all\n")
    env = child_env(REDIS_URL=farm.redis_url, VIDFARM_DATA_DIR=str(farm.data_dir))
    before = jobs()
    run = subprocess.run(VIDFARM + ["process", str(notes), "--out", str(tmp_path / "out")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a readable video" in lines[0] and "notes.mp4" in lines[0]
    assert not (tmp_path / "out" / "results.json").exists()
    # Refused at the door, as an upload is: the shared farm's jobs list gains no failed job.
    assert jobs() == before


def test_process_a_damaged_recording_ends_done_with_a_warning(farm, tmp_path):
    from tests.crafted import DAMAGED

    path, clip = DAMAGED[2].make(tmp_path)                 # a picture between keyframes lost
    env = child_env(REDIS_URL=farm.redis_url, VIDFARM_DATA_DIR=str(farm.data_dir))
    run = subprocess.run(VIDFARM + ["process", str(path), "--out", str(tmp_path / "out")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("done: ") and "; warning: damaged recording: 8 of 60 frames damaged" in last, last
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results["frames"]) == clip.frames and results["damaged"][0]["first_frame"] == 37


def test_process_missing_file(tmp_path):
    run = subprocess.run(VIDFARM + ["process", str(tmp_path / "nope.mp4"), "--out", str(tmp_path)],
                         env=child_env(VIDFARM_DATA_DIR=str(tmp_path)), capture_output=True, text=True)
    assert run.returncode == 1 and "no such file" in run.stderr


def test_the_last_line_counts_in_words_that_agree():
    """A short recording is one segment: "1 segments, 1 tracks" read as a slip."""
    from cli.main import done_line

    summary = {"tracks": [{"identity": "Ada"}], "alerts": []}
    line = done_line({"chunks_total": 1, "warning": None}, summary, Path("out"))
    assert line == "done: 1 segment, 1 track (Ada), 0 alerts -> out/annotated.mp4, out/results.json"


def test_a_watch_counts_in_words_that_agree_too():
    """`vidfarm watch` printed "1 alerts" for a segment and "1 gaps" at the end."""
    from cli.live import watch_done_line
    from tasks.live_watch import WatchSummary, segment_report

    line = {"segment": 3, "frames": 1, "faces": 1, "latency_s": 2.5, "tracks": [{"identity": "Ada"}],
            "alerts": [{"kind": "watchlist"}]}
    assert segment_report(line) == "segment 3: 1 frame, 1 face (Ada), 1 alert, latency 2.50 s"
    summary = WatchSummary(segments=1, frames=60, latencies=[2.0], failed_segments=1, gaps=1, alerts=1)
    assert watch_done_line(summary, Path("out")) == (
        "done: 1 segment, 60 frames, 1 gap, 1 segment failed, 1 alert; latency p50 2.00 s, p95 2.00 s -> "
        "out/annotated.mp4, out/results.json, out/live.jsonl")
    # A repeat (Ada again, soon after) is not a new alert.
    line["alerts"] = [{"kind": "watchlist", "id": 2, "repeat_of": 1}, {"kind": "watchlist", "id": 3, "repeat_of": 1}]
    assert segment_report(line) == "segment 3: 1 frame, 1 face (Ada), 0 alerts, 2 repeats, latency 2.50 s"
    assert watch_done_line(WatchSummary(1, 60, [2.0], alerts=1, repeats=2), Path("out")).startswith(
        "done: 1 segment, 60 frames, 0 gaps, 1 alert, 2 repeats; ")


def test_output_to_a_reader_that_left_is_no_traceback(tmp_path):
    """`vidfarm db history | head -1` ended in a BrokenPipeError traceback."""
    run = subprocess.Popen(VIDFARM + ["db", "history"], env=child_env(VIDFARM_DATA_DIR=str(tmp_path)),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run.stdout.close()          # gone before it writes a line (its imports take longer)
    assert run.wait(60) == 1
    assert run.stderr.read() == ""
    run.stderr.close()


def test_a_pipe_that_breaks_elsewhere_is_an_error_that_says_so(tmp_path):
    """Every BrokenPipeError was taken for a reader of the output that left: one from a pipe
    to a child (the workers' fork server) or a socket (Redis's) ended the command with status 1
    and not a word. Here a real pipe breaks inside `vidfarm db history`, its output read."""
    run = subprocess.run([sys.executable, "-m", "tests.at_a_moment", "core.schema:history", "EPIPE", "--",
                          "db", "history"], env=child_env(VIDFARM_DATA_DIR=str(tmp_path)),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "BrokenPipeError" in run.stderr and "at_a_moment.py" in run.stderr, run.stderr


def test_process_a_folder_says_it_is_a_folder(tmp_path):
    folder = tmp_path / "camera-1.mp4"
    folder.mkdir()
    run = subprocess.run(VIDFARM + ["process", str(folder), "--out", str(tmp_path / "out")],
                         env=child_env(VIDFARM_DATA_DIR=str(tmp_path)), capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.strip().endswith("camera-1.mp4: a folder, not a video file")


@pytest.mark.parametrize("options, line", [
    (["process", "CLIP", "--out", "OUT", "--workers", "0"], "--workers must be at least 1 (got 0)"),
    (["process", "CLIP", "--out", "OUT", "--segment-seconds", "-1"],
     "--segment-seconds must be a positive number of seconds (got -1)"),
    (["process", "CLIP", "--out", "CLIP"], "CLIP: not a folder (--out names the folder the results are written to)"),
    (["watch", "rtsp://127.0.0.1:1/cam", "--out", "OUT", "--workers", "0"], "--workers must be at least 1 (got 0)"),
    (["watch", "rtsp://127.0.0.1:1/cam", "--out", "OUT", "--for", "nan"],
     "--for must be a positive number of seconds (got nan)"),
    (["up", "--workers", "0"], "--workers must be at least 1 (got 0)"),
    (["up", "--port", "70000"], "--port must be a TCP port, 1 to 65535 (got 70000)"),
])
def test_a_bad_option_is_one_line_before_anything_starts(tmp_path, options, line):
    """Before, `--workers 0` started a farm with no worker and waited for ever, `--segment-seconds
    -1` ran the job as one segment, and `--out FILE` was a traceback once the whole job had run."""
    clip = make_clip(tmp_path / "walk.mp4", seconds=2, fps=10).path
    data_dir, out = tmp_path / "data", tmp_path / "out"
    argv = [str(clip) if o == "CLIP" else str(out) if o == "OUT" else o for o in options]
    run = subprocess.run(VIDFARM + argv, env=child_env(VIDFARM_DATA_DIR=str(data_dir)),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.splitlines() == ["vidfarm: error: " + line.replace("CLIP", str(clip))]
    assert not data_dir.exists() and not out.exists()     # nothing started, nothing made


def test_up_help_says_what_each_option_does_and_where_a_second_farm_is_set(capsys):
    """Before, `vidfarm up --help` listed `--workers WORKERS` and `--port PORT` bare: nothing said
    that --workers caps the CPU workers, nor how to give a second farm its own data folder and ports."""
    with pytest.raises(SystemExit) as exit_:
        main(["up", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0
    assert "most CPU workers" in text and "port of the web app" in text
    for setting in ("VIDFARM_DATA_DIR", "VIDFARM_WEB_PORT", "VIDFARM_FLOWER_PORT"):
        assert setting in text


@pytest.mark.parametrize("taken", ["web", "Flower"])
def test_up_on_a_taken_port_is_one_line_before_anything_starts(tmp_path, taken):
    """Before, it started the whole farm, printed "vidfarm is up" with the new admin's password,
    and then ended: "farm process exited: web"."""
    data_dir, port, flower_port = tmp_path / "data", free_port(), free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port if taken == "web" else flower_port))
        holder.listen()
        run = subprocess.run(VIDFARM + ["up", "--port", str(port)], capture_output=True, text=True, timeout=60,
                             env=child_env(VIDFARM_DATA_DIR=str(data_dir), VIDFARM_FLOWER_PORT=str(flower_port)))
    busy, how = (port, "--port or VIDFARM_WEB_PORT") if taken == "web" else (flower_port, "VIDFARM_FLOWER_PORT")
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.splitlines() == [
        f"vidfarm: error: {taken} port 127.0.0.1:{busy} cannot be used (Address already in use): another "
        f"`vidfarm up` or another server has it; choose another with {how}"]
    assert not (data_dir / "logs").exists() and not (data_dir / "vidfarm.db").exists()   # nothing started


# The resolver's words vary with the machine ("Name or service not known"; "Temporary failure in
# name resolution" where the DNS server is unreachable): only the line around them is pinned.
@pytest.mark.parametrize("host, why", [("no-such-host.invalid", r"[^()]+"),
                                       ("192.0.2.1", r"Cannot assign requested address")])
def test_up_on_a_web_host_it_cannot_listen_on_names_the_host_setting(tmp_path, host, why):
    """It said another `vidfarm up` or another server had the port, and to choose another port."""
    data_dir, port = tmp_path / "data", free_port()
    run = subprocess.run(VIDFARM + ["up", "--port", str(port)], capture_output=True, text=True, timeout=60,
                         env=child_env(VIDFARM_DATA_DIR=str(data_dir), VIDFARM_WEB_HOST=host,
                                       VIDFARM_FLOWER_PORT=str(free_port())))
    assert run.returncode == 1 and run.stdout == ""
    [line] = run.stderr.splitlines()
    assert re.fullmatch(re.escape(f"vidfarm: error: web address {host}:{port} cannot be listened on (") + why
                        + re.escape("): not an address of this machine; set VIDFARM_WEB_HOST to one"), line), line
    assert not (data_dir / "logs").exists() and not (data_dir / "vidfarm.db").exists()   # nothing started


@pytest.mark.parametrize("command", ["process", "watch"])
def test_a_redis_url_nobody_answers_is_one_line_and_no_job(tmp_path, command):
    """Before, `process` stored the recording, left its job "queued" for ever and ended in a
    kombu traceback; `watch` opened the camera, then ended in a traceback too."""
    import sqlite3

    from tests.rtsp_camera import RtspCamera

    clip = make_clip(tmp_path / "walk.mp4", seconds=4, fps=10, audio=False).path
    data_dir, url = tmp_path / "data", f"redis://:secret@127.0.0.1:{free_port()}/0"
    env = child_env(VIDFARM_DATA_DIR=str(data_dir), REDIS_URL=url)
    if command == "process":
        run = subprocess.run(VIDFARM + [command, str(clip), "--out", str(tmp_path / "out")], capture_output=True,
                             text=True, timeout=60, env=env)
    else:
        with RtspCamera(clip) as camera:
            run = subprocess.run(VIDFARM + [command, camera.url, "--out", str(tmp_path / "out"), "--for", "2"],
                                 capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 1
    [line] = run.stderr.splitlines()
    assert line.startswith(f"vidfarm: error: REDIS_URL {url.replace('secret', '***')}: cannot reach the farm's "
                           "Redis (Error 111 connecting to 127.0.0.1:"), line
    if (data_dir / "vidfarm.db").exists():
        with sqlite3.connect(data_dir / "vidfarm.db") as db:
            assert db.execute("SELECT count(*) FROM jobs").fetchone() == (0,)


def test_an_out_folder_that_cannot_be_made_queues_no_job(farm, tmp_path):
    """Before, the whole job ran and then a traceback said the folder could not be made."""
    from core.models import Job
    from services import runtime

    def jobs() -> int:
        with runtime.records().session() as s:
            return s.query(Job).count()

    clip = make_clip(tmp_path / "walk.mp4", seconds=2, fps=10).path
    out = clip / "out"                     # under a file: no folder can be made there
    env = child_env(REDIS_URL=farm.redis_url, VIDFARM_DATA_DIR=str(farm.data_dir))
    before = jobs()
    run = subprocess.run(VIDFARM + ["process", str(clip), "--out", str(out)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert run.stderr.splitlines() == [f"vidfarm: error: {out}: cannot make the output folder (Not a directory)"]
    assert jobs() == before


def test_enroll_a_folder_says_it_is_a_folder(tmp_path):
    """It said "no such file" of a folder that is there."""
    photos = tmp_path / "photos"
    photos.mkdir()
    run = subprocess.run(VIDFARM + ["enroll", "Ada", str(photos)], env=child_env(VIDFARM_DATA_DIR=str(tmp_path / "data")),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.splitlines() == [f"vidfarm: error: a folder, not a photo: {photos} (name the photos in it)"]


@pytest.mark.parametrize("command", [
    ["process", "x.mp4", "--out", "out"],
    ["enroll", "someone", "face.jpg"],
    ["user", "someone"],
])
def test_a_bad_setting_is_one_clear_line_for_every_command(capsys, monkeypatch, tmp_path, command):
    monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIDFARM_MIN_SEGMENTS", "0")
    get_settings.cache_clear()
    try:
        code = main(command)
    finally:
        get_settings.cache_clear()
    assert code == 2
    assert capsys.readouterr().err == ("vidfarm: error: bad setting min_segments: "
                                       "Input should be greater than or equal to 1\n")
    assert not any(tmp_path.iterdir())   # refused before anything was made


@pytest.mark.parametrize("command, variable, value, said", [
    (["up"], "VIDFARM_WEB_PORT", "99999", "web_port: Input should be less than or equal to 65535"),
    (["up"], "VIDFARM_FLOWER_PORT", "99999", "flower_port: Input should be less than or equal to 65535"),
    (["process", "x.mp4", "--out", "out"], "VIDFARM_MAX_UPLOAD_BYTES", "-1",
     "max_upload_bytes: Input should be greater than 0"),
    (["process", "x.mp4", "--out", "out"], "VIDFARM_RECOGNITION_THRESHOLD", "2",
     "recognition_threshold: Input should be less than or equal to 1"),
])
def test_a_setting_out_of_its_range_is_one_clear_line(capsys, monkeypatch, tmp_path, command, variable, value, said):
    """The ports were a traceback (OverflowError from `up`'s ports check, where --port 99999 is
    one line); the others were taken without a word: every upload then refused as larger than
    "-1 B", or no track ever named (a cosine similarity is at most 1)."""
    monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    try:
        code = main(command)
    finally:
        get_settings.cache_clear()
    assert (code, capsys.readouterr().err) == (2, f"vidfarm: error: bad setting {said}\n")
    assert not any(tmp_path.iterdir())


def test_a_bad_analyzer_config_is_a_bad_setting_before_anything_starts(capsys, monkeypatch, tmp_path):
    # Checked as the settings load (core.analyzer_configs), not by a worker or a segment.
    monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIDFARM_ANALYZER_CONFIG__THERMAL__PERCENTILE", "10")
    get_settings.cache_clear()
    try:
        code = main(["process", "x.mp4", "--out", "out"])
    finally:
        get_settings.cache_clear()
    assert code == 2
    assert capsys.readouterr().err == ("vidfarm: error: bad setting analyzer_config.thermal.percentile: "
                                       "Input should be greater than or equal to 50\n")
    assert not any(tmp_path.iterdir())


def test_every_bad_setting_is_named_on_the_one_line(tmp_path):
    run = subprocess.run(VIDFARM + ["process", str(tmp_path / "x.mp4"), "--out", str(tmp_path / "out")],
                         env=child_env(VIDFARM_DATA_DIR=str(tmp_path), VIDFARM_MIN_SEGMENTS="0",
                                       VIDFARM_X264_CRF="99"),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("vidfarm: error: bad settings "), run.stderr
    assert "min_segments: Input should be greater than or equal to 1" in run.stderr
    assert "x264_crf: Input should be less than or equal to 51" in run.stderr


def test_a_setting_that_does_not_parse_is_one_line_too(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIDFARM_AUTOSCALE_CPU", "{bad json")     # nested settings are JSON
    get_settings.cache_clear()
    try:
        code = main(["user", "bob"])
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "autoscale_cpu" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_ups_banner_says_when_beat_re_analyses_the_stored_recordings():
    from cli.main import beat_duties
    from core.settings import Settings

    assert "re-analyses" not in beat_duties(Settings())
    assert beat_duties(Settings(reanalyse_hours=6, reanalyse_at_hour=3)).endswith(
        "; re-analyses the last 6 h each day at 03:00 UTC")


def test_up_serves_the_api_and_ctrl_c_stops_everything(tmp_path, face_clip):
    data_dir = tmp_path / "data"
    port, flower_port = free_port(), free_port()
    env = child_env(VIDFARM_DATA_DIR=str(data_dir), VIDFARM_FLOWER_PORT=str(flower_port))
    up = subprocess.Popen(VIDFARM + ["up", "--workers", "1", "--port", str(port)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = ""
        while "Ctrl-C" not in banner:
            line = up.stdout.readline()
            assert line, f"vidfarm up ended early: {banner}"
            banner += line
        assert re.search(r"admin\s*:\s*admin / \S+", banner), banner   # first admin, shown once
        # The workers it says it runs are those it runs (it said "1 ingest worker" of two).
        always_on = int(re.search(r"vidfarm is up: (\d+) always-on workers?", banner).group(1))
        assert len(list((data_dir / "logs").glob(f"worker*-{up.pid}.log"))) == always_on == 1
        token = re.search(r"token\s*:\s*(\S+)", banner).group(1)
        base = f"http://127.0.0.1:{port}"
        assert json.load(wait_for_http(f"{base}/healthz")) == {"status": "ok"}
        # Flower runs, behind basic auth only.
        password = re.search(r"flower .*password (\S+)\)", banner).group(1)
        flower = f"http://127.0.0.1:{flower_port}/api/workers"
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            wait_for_http(flower)
        assert anonymous.value.code == 401
        authorised = urllib.request.Request(flower, headers={
            "Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()})
        assert wait_for_http(authorised).status == 200
        # Flower's own Prometheus page answers without its password, as Flower serves it (README).
        assert b"flower_worker_online" in wait_for_http(f"http://127.0.0.1:{flower_port}/metrics").read()
        # The banner says where the farm's metrics are; they answer with the token.
        scrape = urllib.request.Request(re.search(r"metrics : (\S+)", banner).group(1),
                                        headers={"Authorization": f"Bearer {token}"})
        assert b'vidfarm_jobs{status="failed"} 0.0' in wait_for_http(scrape).read()
        beat_log = data_dir / "logs" / "beat.log"
        deadline = time.monotonic() + 30
        while "Starting" not in (beat_log.read_text() if beat_log.exists() else ""):
            assert time.monotonic() < deadline, "celery beat did not start"
            time.sleep(0.3)
        request = urllib.request.Request(f"{base}/api/v1/jobs/none", headers={"Authorization": f"Bearer {token}"})
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(request, timeout=5)
        assert missing.value.code == 404
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 130
    # Its processes end with it; waited for, not slept on (a loaded machine reaps them late).
    wait_until(lambda: processes_with_env(f"VIDFARM_DATA_DIR={data_dir}") == [], 10, "the farm's processes to end")
    # Secrets are printed once to the person who started the farm, never written to a log.
    logs = "".join(p.read_text(errors="replace") for p in (data_dir / "logs").glob("*.log"))
    assert logs and token not in logs and password not in logs
