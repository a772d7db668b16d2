"""Scheduled re-analysis: re-identification after the gallery changed (no re-decode) and a
full re-run of a time window; each publishes a new results version, the old ones stay."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

from core.storage import output_key
from services import gallery, runtime
from services.submit import submit_file
from tasks.reanalysis import reanalyse_window, reidentify_stale
from tests.conftest import wait_for_job
from tests.test_analytics import yao_in_players
from tests.test_gallery import jpeg


def results(job_id: str, name: str = "results.json") -> dict:
    return json.loads(runtime.store().local_path(output_key(job_id, name)).read_text())


def wait_for_version(job_id: str, version: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while runtime.records().get_job(job_id).results_version < version or \
            runtime.records().get_job(job_id).status != "done":
        assert time.monotonic() < deadline, f"job {job_id} never reached results version {version}"
        time.sleep(0.2)


def test_gallery_change_reidentifies_stored_recordings(farm, face_clip):
    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    first = results(job_id)
    assert first["version"] == 1 and {t["identity"] for t in first["tracks"]} == {None}

    gallery.enroll(runtime.farm(), "Yao Ming", [("yao.jpg", jpeg(yao_in_players()))], largest_face=True)
    try:
        assert reidentify_stale.apply().get()["queued"] >= 1
        wait_for_version(job_id, 2)
        second = results(job_id)
        assert second["version"] == 2 and {t["identity"] for t in second["tracks"]} == {"Yao Ming"}
        assert all(f["faces"][0]["identity"] == "Yao Ming" for f in second["frames"] if f["faces"])
        assert [len(f["faces"]) for f in second["frames"]] == [len(f["faces"]) for f in first["frames"]]
        assert results(job_id, "versions/results-1.json") == first       # the earlier version stays
        # ... and the API and the job page show both.
        from web import create_app
        api = create_app().test_client()
        auth = {"Authorization": "Bearer test-token"}
        assert api.get(f"/api/v1/jobs/{job_id}/results?version=1", headers=auth).json == first
        assert api.get(f"/api/v1/jobs/{job_id}/results", headers=auth).json["version"] == 2
        assert api.get(f"/api/v1/jobs/{job_id}", headers=auth).json["results_version"] == 2
        assert api.get(f"/api/v1/jobs/{job_id}/results?version=9", headers=auth).status_code == 404

        # Flagged through the API, as an operator does: the beat's next pass re-identifies.
        flagged = api.patch("/api/v1/identities/Yao Ming", headers=auth, json={"watchlist": True})
        assert flagged.status_code == 200 and flagged.json["watchlist"] is True
        reidentify_stale.apply()
        wait_for_version(job_id, 3)
        assert [a["kind"] for a in results(job_id)["alerts"]] == ["watchlist", "watchlist"]
    finally:
        gallery.delete_identity(runtime.farm(), "Yao Ming")


def test_a_rename_or_a_watchlist_change_reaches_stored_recordings_at_once(farm, face_clip):
    """Before, they waited for beat's next pass (every 5 minutes): meanwhile the job page named
    the person by their old name, its link and face crop answering 404."""
    gallery.enroll(runtime.farm(), "Yao", [("yao.jpg", jpeg(yao_in_players()))], largest_face=True)
    renamed = False
    try:
        job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
        assert wait_for_job(job_id)["status"] == "done"
        assert {t["identity"] for t in results(job_id)["tracks"]} == {"Yao"}
        version = runtime.records().get_job(job_id).results_version

        gallery.rename_identity(runtime.farm(), "Yao", "Yao Ming")      # no beat runs in this farm
        renamed = True
        wait_for_version(job_id, version + 1, timeout=60)
        assert {t["identity"] for t in results(job_id)["tracks"]} == {"Yao Ming"}

        gallery.set_watchlist(runtime.farm(), "Yao Ming", True)
        wait_for_version(job_id, version + 2, timeout=60)
        assert {a["kind"] for a in results(job_id)["alerts"]} == {"watchlist"}
    finally:
        gallery.delete_identity(runtime.farm(), "Yao Ming" if renamed else "Yao")


def test_reanalysis_of_a_window_reruns_segments_and_keeps_versions(farm, face_clip):
    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    before = results(job_id)
    now = datetime.now(timezone.utc)
    started = reanalyse_window.apply(args=((now - timedelta(minutes=2)).isoformat(),
                                           (now + timedelta(minutes=1)).isoformat())).get()["reanalysing"]
    assert job_id in started
    wait_for_version(job_id, before["version"] + 1, timeout=180)
    after = results(job_id)
    assert len(after["frames"]) == len(before["frames"]) == face_clip.frames
    assert [len(f["faces"]) for f in after["frames"]] == [len(f["faces"]) for f in before["frames"]]
    assert all(s.attempts >= 2 for s in runtime.records().segments(job_id))   # segments really re-ran
    assert results(job_id, f"versions/results-{before['version']}.json") == before


def test_a_window_skips_a_job_it_cannot_run_again_and_reanalyses_the_rest(farm, face_clip):
    """A done job whose stored recording is gone stopped beat's whole window (the jobs after
    it were never re-analysed) and was itself failed on the way; now it is skipped, saying why,
    and left done."""
    from services.submit import delete_job
    from tests.web.test_reanalyse import split_job

    records = runtime.records()
    gone = split_job(records, "gone.mp4", "done")
    try:
        job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
        assert wait_for_job(job_id)["status"] == "done"
        version = records.get_job(job_id).results_version
        now = datetime.now(timezone.utc)
        answer = reanalyse_window.apply(args=((now - timedelta(minutes=2)).isoformat(),
                                              (now + timedelta(minutes=1)).isoformat())).get()
        assert job_id in answer["reanalysing"] and gone not in answer["reanalysing"], answer
        assert "is gone" in answer["skipped"][gone], answer
        assert records.get_job(gone).status == "done"       # left as it was, not failed
        wait_for_version(job_id, version + 1, timeout=180)
    finally:
        delete_job(runtime.farm(), gone)


def test_a_reanalysis_restarts_the_job_and_its_segments_in_one_commit(farm, face_clip):
    """Nobody sees the job done with segments queued again (each segment used to be committed
    alone, then the job), and a second restart meanwhile finds it running and does nothing."""
    from services.jobs import reanalyse
    from tests.conftest import committed_writes

    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    version = runtime.records().get_job(job_id).results_version
    with committed_writes(runtime.records().engine, ("jobs", "segments")) as commits:
        assert reanalyse(runtime.farm(), job_id)
    assert commits == [["jobs", "segments"]]
    assert not reanalyse(runtime.farm(), job_id)
    wait_for_version(job_id, version + 1)


def queue_as_an_earlier_release(job_id: str) -> None:
    """The job's segments queued again as a release before ``vidfarm.segment_job/1`` queued
    them (``(job_id, index)``), in a chord with its errback as ``tasks.client.fan_out`` makes
    it: the workers of this release refuse each, and the errback fails the job."""
    from celery import chord

    from tasks.app import app

    segments = runtime.records().restart_job(job_id, timing={"run_started": time.time()})[1]
    header = [app.signature("vidfarm.segment", (job_id, s.index), immutable=True).set(queue="cpu") for s in segments]
    stitch = app.signature("vidfarm.stitch", (job_id,), immutable=True)
    chord(header)(stitch.on_error(app.signature("vidfarm.job_failed", (job_id,))))


def test_an_operator_reanalyses_a_done_job_and_one_an_upgrade_failed(farm, face_clip):
    """The README's advice after an upgrade ("re-analyse the job to run it again") had no way to
    be followed: each run publishes a new results version, the earlier ones stay, and the video
    is drawn again."""
    from web import create_app

    api, auth = create_app().test_client(), {"Authorization": "Bearer test-token"}
    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    first = results(job_id)

    started = api.post(f"/api/v1/jobs/{job_id}/reanalyse", headers=auth)
    assert started.status_code == 202, started.json
    assert started.json["id"] == job_id and started.json["status"] == "processing"
    again = api.post(f"/api/v1/jobs/{job_id}/reanalyse", headers=auth)     # while it runs: refused
    assert again.status_code == 409 and "once it is done or failed" in again.json["error"], again.json
    view = wait_for_job(job_id)
    assert view["status"] == "done" and view["results_version"] == view["video_version"] == 2, view
    second = results(job_id)
    assert second["version"] == 2 and [len(f["faces"]) for f in second["frames"]] == \
        [len(f["faces"]) for f in first["frames"]]
    assert api.get(f"/api/v1/jobs/{job_id}/results?version=1", headers=auth).json == first

    queue_as_an_earlier_release(job_id)
    failed = wait_for_job(job_id)
    assert failed["status"] == "failed" and "vidfarm.segment" in failed["error"], failed
    started = api.post(f"/api/v1/jobs/{job_id}/reanalyse", headers=auth)
    assert started.status_code == 202, started.json
    view = wait_for_job(job_id)
    assert view["status"] == "done" and not view["error"], view
    assert view["results_version"] == view["video_version"] == 3, view
    assert results(job_id)["version"] == 3 and len(results(job_id)["frames"]) == face_clip.frames


def test_the_errback_of_a_failed_run_fails_no_reanalysis_begun_meanwhile(farm):
    """A segment that fails for good fails its job at once, while the job's other segments may
    still wait in the queue; their chord's errback (``vidfarm.job_failed``) comes only once
    they ran. An operator who re-analysed the failed job meanwhile saw that run failed by it,
    "processing failed", its segments not even started."""
    from services.submit import delete_job
    from tasks.jobs import job_failed

    records = runtime.records()
    job_id = records.add_job("two segments.mp4", "jobs/none/source").id
    assert records.record_split(job_id, [{"index": i, "start_frame": i, "frames": 1, "pts": [i], "end_pts": i + 1}
                                         for i in (0, 1)], status="processing", media={"time_base": [1, 15], "fps": 15.0})
    try:
        first_run = records.get_job(job_id).run          # as ingest's fan_out gave it to the errback
        records.fail_job(job_id, "segment 0 failed: boom")
        records.restart_job(job_id, timing={"run_started": time.time()}, from_states=("failed",))
        job_failed.run(None, RuntimeError("segment 0 failed: boom"), None, job_id, run=first_run)
        assert records.get_job(job_id).status == "processing"

        # The errback of the run under way still fails it, and one of an earlier release's too.
        job_failed.run(None, RuntimeError("segment 1 failed: boom"), None, job_id, run=records.get_job(job_id).run)
        assert records.get_job(job_id).status == "failed"
        records.restart_job(job_id, timing={"run_started": time.time()}, from_states=("failed",))
        job_failed.run(None, RuntimeError("segment 1 failed: boom"), None, job_id)
        assert records.get_job(job_id).status == "failed"
    finally:
        delete_job(runtime.farm(), job_id)
