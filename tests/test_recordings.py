"""Camera recordings on the real farm: a real RTSP camera watched by the ingester with a short
"hour" (4 s) becomes jobs like uploads (results.json of contract 3 over every frame, the
annotated video with as many frames), each recording the camera and its capture time;
re-identification names a person enrolled afterwards; the retention sweep deletes expired
recordings, their files included, and never an upload."""

from __future__ import annotations

import json
import threading
from fractions import Fraction

import pytest

from tests.clipmaker import make_clip
from tests.conftest import committed_writes, wait_for_job
from tests.rtsp_camera import RtspCamera, gstreamer_missing, open_recordings, running_ingest
from tests.waiting import wait_until

HOUR_S = 4.0


@pytest.fixture(scope="module")
def recordings(farm, tmp_path_factory):
    """The first recordings of a camera (ids, oldest first), all made into done jobs."""
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    from core.cameras import CameraRegistry
    from core.models import Job
    from services import runtime

    registry = CameraRegistry.from_url(farm.redis_url)
    clip = make_clip(tmp_path_factory.mktemp("recorded") / "door.mp4", seconds=40, fps=15, gop=15,
                     size=(640, 360), face_windows=[(0, 40)], audio=False)

    def made() -> list[str]:
        with runtime.records().session() as s:
            return [job.id for job in s.query(Job).filter(Job.camera_id == camera_id).order_by(Job.recorded_at)]

    with RtspCamera(clip.path) as camera:
        with running_ingest(registry, recording_hour_s=HOUR_S):
            camera_id = registry.add("Door", camera.url)["id"]
            wait_until(lambda: len(made()) >= 3, 120, "three recordings")
        registry.delete(camera_id)     # the open recording was handed over as the watch stopped
    wait_until(lambda: not open_recordings(camera_id), 60, "every recording to be made a job")
    ids = made()
    for job_id in ids:
        assert wait_for_job(job_id)["status"] == "done", job_id
    yield {"camera": camera_id, "jobs": ids}


def test_each_hour_of_a_camera_is_a_job_like_an_upload(recordings):
    from workers import media
    from services import runtime
    from core.storage import output_key

    records, store = runtime.records(), runtime.store()
    starts = []
    for job_id in recordings["jobs"][:-1]:      # the last one is whatever the stop left
        job = records.get_job(job_id)
        assert job.camera_id == recordings["camera"] and job.source_name.startswith("Door ")
        results = json.loads(store.local_path(output_key(job_id, "results.json")).read_text())
        assert results["schema"] == "vidfarm.results/1"
        frames = sum(s.frames for s in records.segments(job_id))
        assert [f["index"] for f in results["frames"]] == list(range(frames)) == list(range(results["source"]["frames"]))
        assert results["chunks"] == job.chunks_total >= 1
        assert sum(len(f["faces"]) for f in results["frames"]) >= frames * 0.8        # the face is there throughout
        assert results["tracks"] and results["tracks"][0]["first_frame"] == 0
        # An hour's frames: at most the hour plus one segment (cut at the segment that crosses it).
        assert frames <= 15 * (HOUR_S + 2.5)
        # Its record is made with the first results (version 0: none drawn yet); drawn: version 1.
        wait_until(lambda: getattr(records.video(job_id), "version", 0) > 0, 120, "the annotated video")
        assert media.probe(store.local_path(output_key(job_id, "annotated.mp4"))).frames == frames
        starts.append(job.recorded_at.timestamp())
    # One recording per "hour": each starts in a later one than the one before.
    hours = [int(t // HOUR_S) for t in starts]
    assert hours == sorted(set(hours)), starts


def test_recordings_are_re_identified_like_uploads(recordings):
    import cv2

    from services import gallery, runtime
    from core.storage import output_key
    from tasks.reanalysis import reidentify_job
    from tests.test_analytics import yao_in_players

    job_id = recordings["jobs"][0]
    gallery.enroll(runtime.farm(), "Recorded Yao", [("yao.jpg", cv2.imencode(".jpg", yao_in_players())[1].tobytes())],
                   largest_face=True)
    try:
        assert reidentify_job(job_id)["version"] == 2
        results = json.loads(runtime.store().local_path(output_key(job_id, "results.json")).read_text())
        assert results["tracks"][0]["identity"] == "Recorded Yao"
        # ... and people search finds them there, at the time the camera saw them.
        from core.appearances import Appearances
        from core.models import aware

        found = [a for a in Appearances(runtime.records()).of_identity("Recorded Yao", 100) if a["job"] == job_id]
        assert found and found[0]["recorded_at"] == aware(runtime.records().get_job(job_id).recorded_at).isoformat()
    finally:
        gallery.delete_identity(runtime.farm(), "Recorded Yao")


def test_a_recording_nobody_handed_over_is_adopted_by_the_sweep(farm, tmp_path, monkeypatch):
    """An ingester killed mid-hour never hands its open recording over: the sweep makes it a
    job once no segment came for a while."""
    from core.cameras import CameraRegistry
    from services import runtime
    from tasks.recording import CameraRecorder, expire_recordings

    monkeypatch.setattr(CameraRecorder, "close", lambda self: None)      # as if killed
    registry, store = CameraRegistry.from_url(farm.redis_url), runtime.store()
    clip = make_clip(tmp_path / "hall.mp4", seconds=20, fps=15, gop=15, face_windows=[(0, 20)], audio=False)
    with RtspCamera(clip.path) as camera:
        with running_ingest(registry):
            camera_id = registry.add("Hall", camera.url)["id"]
            recording_id = wait_until(lambda: next((r for r in open_recordings(camera_id)
                                                    if len(store.list_keys(f"recordings/{r}/meta")) >= 3), None),
                                      120, "three segments recorded")
        registry.delete(camera_id)
    assert recording_id not in expire_recordings(orphan_after_s=3600)["adopted"]     # too fresh to be an orphan
    assert recording_id in expire_recordings(orphan_after_s=0)["adopted"]
    wait_until(lambda: runtime.records().get_job(recording_id), 60, "the recording made a job")
    assert wait_for_job(recording_id)["status"] == "done"
    job = runtime.records().get_job(recording_id)
    assert job.camera_id == camera_id and job.chunks_total >= 3
    assert len(store.list_keys(f"jobs/{recording_id}/segments")) == job.chunks_total
    assert not store.list_keys(f"recordings/{recording_id}")


def test_a_recording_still_growing_is_not_adopted_however_long_ago_it_opened(farm):
    import time
    import uuid

    from services import runtime
    from tasks.jobs import put_json
    from tasks.recording import adopt_orphans, recording_key

    store, now = runtime.store(), time.time()
    growing, silent = uuid.uuid4().hex, uuid.uuid4().hex
    for recording_id in (growing, silent):
        put_json(recording_key(recording_id, "recording.json"),
                 {"camera_id": "c" * 32, "camera_name": "Old", "hour": 0, "opened_at": now - 7200})
    for n, at in enumerate((now - 7000, now - 3000, now - 5)):            # its newest segment: just now
        put_json(recording_key(growing, "meta", f"{n:06d}.json"), {"pts": [], "end_pts": 0, "captured_at": at})
    assert adopt_orphans(600) == [silent]        # opened long ago and never a segment: adopted
    wait_until(lambda: not store.list_keys(recording_key(silent)), 60, "the empty recording to be dropped")
    assert runtime.records().get_job(silent) is None
    store.delete_prefix(recording_key(growing))


def test_the_folder_of_a_watch_killed_outright_is_swept_and_a_running_watch_s_is_not(farm, tmp_path):
    """A watch ends by deleting its live/<watch>/ folder; one killed outright (SIGKILL, the OOM
    killer) left its last segments and their analyses there for good: nothing else looked."""
    import time

    from services import runtime
    from tasks.jobs import put_json
    from tasks.live import alive_key, live_key, piece_key
    from tasks.live_watch import LiveWatch
    from tasks.recording import expire_recordings

    store = runtime.store()
    killed = "a" * 32
    put_json(alive_key(killed), {"at": time.time() - 2 * 3600})
    put_json(piece_key(killed, 7, "analysis"), {"frames": [], "tracks": []})
    clip = make_clip(tmp_path / "door.mp4", seconds=30, fps=15, gop=15, face_windows=[], audio=False)
    with RtspCamera(clip.path) as camera:
        watch = LiveWatch(camera.url, tmp_path / "out", keep_results=False, stop_wait_s=5.0)
        stop = threading.Event()
        runner = threading.Thread(target=watch.run, args=(stop,), daemon=True)
        runner.start()
        try:
            wait_until(lambda: store.exists(alive_key(watch.watch_id)), 60, "the running watch to say it is alive")
            swept = expire_recordings()["abandoned_watches"]
            assert killed in swept and watch.watch_id not in swept
            assert not store.list_keys(live_key(killed)) and store.exists(alive_key(watch.watch_id))
        finally:
            stop.set()
            runner.join(60)


def test_a_watch_drawing_its_results_at_the_end_still_says_it_is_alive(farm, tmp_path, monkeypatch):
    """A long watch draws its segments one by one at the end (minutes, tens of them against a
    busy farm) and said nothing meanwhile: the sweep deleted its folder mid-draw."""
    from io import BytesIO
    from types import SimpleNamespace

    import tasks.live_watch as live_watch
    from services import runtime
    from tasks.common import put_json
    from tasks.live import alive_key, live_key, piece_key

    store = runtime.store()
    watch = live_watch.LiveWatch("rtsp://127.0.0.1:9/none", tmp_path / "out")
    watch.received = [SimpleNamespace(index=k, first_frame=k, frames=1, pts=[k], end_pts=k + 1, fps=15.0,
                                      width=64, height=64) for k in range(3)]
    for segment in watch.received:
        store.put_stream(piece_key(watch.watch_id, segment.index, "segment"), BytesIO(b"drawn by the stub"))
    put_json(alive_key(watch.watch_id), {"at": 0.0})         # its last word, long ago
    said_at = []

    def render(*args, **kwargs):
        said_at.append(json.loads(store.local_path(alive_key(watch.watch_id)).read_text())["at"])
        return {}

    monkeypatch.setattr(live_watch, "ALIVE_EVERY_S", 0.0)    # each chance to say it is taken
    monkeypatch.setattr(live_watch, "render_segment", render)
    monkeypatch.setattr(live_watch.media, "concat_segments", lambda *args: None)
    try:
        watch._write_video({"frames": [{"faces": []}] * 3})
        assert len(said_at) == 3 and min(said_at) > 0.0
    finally:
        store.delete_prefix(live_key(watch.watch_id))


def test_the_sweep_takes_only_watches_silent_for_an_hour_and_passes_over_one_gone_or_unreadable(farm, monkeypatch):
    """A watch that ended between the sweep's listing and its read raised FileNotFoundError out
    of expire_recordings (that round's recordings and alerts were not expired), as did an
    unreadable alive.json; and a watch whose writes failed for 10 minutes (the store away) lost
    its folder while it ran."""
    import time
    from io import BytesIO

    from services import runtime
    from tasks.common import put_json
    from tasks.live import ABANDONED_AFTER_S, alive_key, live_key
    from tasks.recording import expire_recordings

    store = runtime.store()
    killed, quiet, garbled, ended = "b" * 32, "c" * 32, "d" * 32, "e" * 32
    put_json(alive_key(killed), {"at": time.time() - 2 * ABANDONED_AFTER_S})
    put_json(alive_key(quiet), {"at": time.time() - 11 * 60})
    store.put_stream(alive_key(garbled), BytesIO(b'{"at": 12'))
    listed = type(store).list_keys
    monkeypatch.setattr(type(store), "list_keys", lambda self, prefix: listed(self, prefix) + [alive_key(ended)]
                        if prefix == "live" else listed(self, prefix))
    try:
        swept = expire_recordings()["abandoned_watches"]
        assert killed in swept and not {quiet, garbled, ended} & set(swept)
        assert store.exists(alive_key(quiet)) and store.exists(alive_key(garbled))
    finally:
        for watch_id in (killed, quiet, garbled):
            store.delete_prefix(live_key(watch_id))


def test_expired_recordings_are_deleted_and_uploads_are_not(recordings, farm):
    from core.models import Job
    from services import runtime
    from tasks.recording import expire_recordings

    records = runtime.records()
    with records.session() as s:
        uploads = sorted(job.id for job in s.query(Job).filter(Job.camera_id.is_(None)))
    assert expire_recordings(retention_days=30) == {"deleted": [], "busy": [], "adopted": [],    # none that old
                                                    "live_alerts": 0, "abandoned_watches": []}
    swept = expire_recordings(retention_days=1e-9)                                       # ... all are now
    assert set(recordings["jobs"]) <= set(swept["deleted"])     # (and other tests' cameras' recordings)
    assert not set(recordings["jobs"]) & set(swept["busy"])
    for job_id in recordings["jobs"]:
        assert records.get_job(job_id) is None
        assert not (farm.data_dir / "blobs" / "jobs" / job_id).exists()
    with records.session() as s:
        assert sorted(job.id for job in s.query(Job).filter(Job.camera_id.is_(None))) == uploads


def test_a_recording_is_made_a_job_in_one_commit_with_its_segments(farm, tmp_path):
    """Nobody sees a recording's job without its segments: not a reader (a queued job with no
    camera), nor a redelivered ``record_hour``, which takes a job it finds as made whole and
    deletes the recording (the job row used to be committed before its segments)."""
    import uuid

    from services import runtime
    from tasks.live import piece_key
    from tasks.recording import CameraRecorder, record_hour
    from tests.test_live_view_task import cut_segments

    clip = make_clip(tmp_path / "hall.mp4", seconds=5, fps=15, gop=15, audio=False)
    recorder, watch_id = CameraRecorder({"id": uuid.uuid4().hex, "name": "Hall"}, 3600.0), uuid.uuid4().hex
    for segment in cut_segments(clip.path, tmp_path / "cut"):
        runtime.store().move_file(piece_key(watch_id, segment.index, "segment"), segment.path)
        recorder.add(watch_id, segment)
    recording_id = recorder.open["id"]
    with committed_writes(runtime.records().engine, ("jobs", "segments")) as commits:
        made = record_hour.apply((recording_id,)).get()
    assert made["job"] == recording_id and made["segments"] >= 2
    assert commits == [["jobs", "segments"]]
    assert wait_for_job(recording_id)["status"] == "done"


def test_a_recording_keeps_the_cameras_frame_rate(farm, tmp_path):
    """A recording's source is NUT, which stores no frame rate: FFmpeg's probe estimates one
    from the packets, and a 29.97 fps camera sending B-frames read as 59.94 there (the job's
    results, tracks and annotated video took it). The job takes the rate its frames' times say."""
    import uuid

    from services import runtime
    from tasks.live import piece_key
    from tasks.recording import CameraRecorder, record_hour
    from tests.test_live_view_task import cut_segments

    clip = make_clip(tmp_path / "ntsc.mp4", seconds=5, fps=Fraction(30000, 1001), size=(320, 180), gop=30,
                     bframes=2, audio=False)
    recorder, watch_id = CameraRecorder({"id": uuid.uuid4().hex, "name": "Porch"}, 3600.0), uuid.uuid4().hex
    for segment in cut_segments(clip.path, tmp_path / "cut"):
        runtime.store().move_file(piece_key(watch_id, segment.index, "segment"), segment.path)
        recorder.add(watch_id, segment)
    made = record_hour.apply((recorder.open["id"],)).get()
    assert runtime.records().get_job(made["job"]).media["fps"] == pytest.approx(30000 / 1001, rel=1e-6)
    assert wait_for_job(made["job"])["status"] == "done"
