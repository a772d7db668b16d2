"""An S3 outage longer than the client's own retries (``VIDFARM_S3_MAX_ATTEMPTS``, here 1 try, so
every request meets it at once) delays a job instead of failing it: its tasks are retried with a
backoff for ``VIDFARM_BLOB_STORE_WAIT_S`` (tasks/store_wait.py). Real s3rver, real workers, a
private Redis."""

from __future__ import annotations

import json
import re
import time
import types
from collections import Counter

import pytest

from core.models import Job
from core.storage import BlobStoreUnavailable, analysis_key, face_crops_key, job_key, output_key, segment_key
from tests import s3server
from tests.clipmaker import count_video_frames, make_clip
from tests.conftest import private_farm, wait_for_job
from tests.test_s3_storage import AUTH, _upload, _web_client, stop_once_a_segment_is_done

pytestmark = pytest.mark.skipif(s3server.missing() is not None, reason=str(s3server.missing()))

OUTAGE_S = 5.0         # with one S3 try (VIDFARM_S3_MAX_ATTEMPTS=1) any outage outlasts the client's retries


def _outages_met(farm) -> Counter:
    """How often each task met the store away (``tasks.store_wait``'s warning in its worker's log)."""
    logs = "".join(path.read_text(errors="replace") for path in farm.log_dir.glob("*.log"))
    return Counter(re.findall(r"(vidfarm\.\w+) \S+: the blob store is away", logs))


def _done_despite_an_outage(server, farm, job_id: str, clip, away_s: float) -> set[str]:
    """The server away (from now, if it is not already) for ``away_s``: the job must end done,
    its video frame-exact. Returns the tasks that met the outage."""
    from services import runtime

    before = _outages_met(farm)
    server.stop()
    time.sleep(away_s)
    server.start()
    back_at = time.time()
    view = wait_for_job(job_id, timeout=240)
    assert view["status"] == "done" and not view["video_error"], view
    assert count_video_frames(runtime.store().local_path(output_key(job_id, "annotated.mp4"))) == clip.frames
    met = set(_outages_met(farm) - before)
    print(f"\nS3 away {away_s:.0f} s, met by {sorted(met)}: job done {time.time() - back_at:.1f} s after it came back")
    return met


def test_a_job_rides_out_an_s3_outage_longer_than_the_clients_retries(tmp_path):
    from services import runtime

    clip = make_clip(tmp_path / "clip.mp4", seconds=8, fps=15, gop=15)
    with s3server.S3Server(tmp_path / "s3rver") as server, \
            private_farm(tmp_path / "farm", workers=2, VIDFARM_SEGMENT_SECONDS="1", VIDFARM_S3_MAX_ATTEMPTS="1",
                         VIDFARM_BLOB_STORE_WAIT_S="90", **server.env()) as farm:
        client = _web_client()
        job_id = _upload(client, clip.path)
        _, unfinished = stop_once_a_segment_is_done(server, job_id)
        assert "vidfarm.segment" in _done_despite_an_outage(server, farm, job_id, clip, OUTAGE_S)
        segments = runtime.records().segments(job_id)
        assert [s.status for s in segments] == ["done"] * len(segments)
        retried = [s.index for s in segments if s.attempts > 1]
        assert retried, "no segment met the outage: nothing was tested"
        print(f"segments {unfinished} were unfinished; run more than once: {retried}")
        store = runtime.store()
        keys = set(store.list_keys(job_key(job_id)))
        indices = range(len(segments))
        assert {segment_key(job_id, i) for i in indices} | {analysis_key(job_id, i) for i in indices} <= keys
        assert {job_key(job_id, "source"), output_key(job_id, "results.json"), output_key(job_id, "annotated.mp4")} <= keys
        assert not store.list_keys(face_crops_key(job_id))       # read by the stitch, then deleted
        results = json.loads(store.local_path(output_key(job_id, "results.json")).read_text())
        assert [f["index"] for f in results["frames"]] == list(range(clip.frames))   # each frame once

        # Past the segments: away from the stitch on, the stitch, a drawing or the join meets it.
        second = _upload(client, clip.path)
        deadline = time.monotonic() + 120
        while runtime.records().get_job(second).status not in ("stitching", "done", "failed"):
            assert time.monotonic() < deadline, "the second job was not stitched"
            time.sleep(0.02)
        met = _done_despite_an_outage(server, farm, second, clip, OUTAGE_S / 2)
        assert met & {"vidfarm.stitch", "vidfarm.render_segment", "vidfarm.join_video"}, met

        # Before them: away as soon as the recording is stored, the ingest meets it.
        third = _upload(client, clip.path)
        assert "vidfarm.ingest" in _done_despite_an_outage(server, farm, third, clip, OUTAGE_S / 2)


def test_a_job_fails_saying_so_once_s3_is_away_longer_than_tasks_wait_and_the_next_job_is_served(tmp_path):
    from services import runtime

    wait_s = 6.0
    clip = make_clip(tmp_path / "clip.mp4", seconds=6, fps=15, gop=15)
    with s3server.S3Server(tmp_path / "s3rver") as server, \
            private_farm(tmp_path / "farm", workers=2, VIDFARM_SEGMENT_SECONDS="1", VIDFARM_S3_MAX_ATTEMPTS="1",
                         VIDFARM_BLOB_STORE_WAIT_S=str(wait_s), **server.env()):
        client = _web_client()
        job_id = _upload(client, clip.path)
        stopped_at, _ = stop_once_a_segment_is_done(server, job_id)
        view = wait_for_job(job_id, timeout=120)
        failed_after = time.time() - stopped_at
        assert view["status"] == "failed", view
        away = re.search(r"the blob store was away for (\d+) s", view["error"] or "")
        assert away and int(away[1]) >= wait_s - 1 and failed_after >= wait_s - 1, view["error"]
        assert "VIDFARM_BLOB_STORE_WAIT_S" in view["error"] and "cannot be reached" in view["error"], view["error"]

        server.start()          # back: the workers take the next job as any other
        next_id = _upload(client, clip.path)
        view = wait_for_job(next_id, timeout=120)
        assert view["status"] == "done", view["error"]
        assert count_video_frames(runtime.store().local_path(output_key(next_id, "annotated.mp4"))) == clip.frames
        print(f"\nfailed {failed_after:.1f} s after S3 went away: {runtime.records().get_job(job_id).error}")


def test_a_bucket_deleted_under_a_job_fails_it_at_once_naming_the_cause_and_an_upload_gets_a_500(tmp_path):
    """A bucket that is gone is no outage: no wait mends it. The job fails at once (not after
    ``VIDFARM_BLOB_STORE_WAIT_S``) saying the bucket does not exist; an upload meanwhile gets a
    500 saying so (no Retry-After: trying again will not help), and no job is made."""
    from services import runtime

    wait_s = 120.0
    clip = make_clip(tmp_path / "clip.mp4", seconds=6, fps=15, gop=15)
    with s3server.S3Server(tmp_path / "s3rver") as server, \
            private_farm(tmp_path / "farm", workers=2, VIDFARM_SEGMENT_SECONDS="1", VIDFARM_S3_MAX_ATTEMPTS="1",
                         VIDFARM_BLOB_STORE_WAIT_S=str(wait_s), **server.env()) as farm:
        client = _web_client()
        job_id = _upload(client, clip.path)
        records = runtime.records()
        deadline = time.monotonic() + 120
        while not any(s.status == "done" for s in records.segments(job_id)):
            assert time.monotonic() < deadline, "no segment finished"
            time.sleep(0.05)
        # Deleted (s3rver keeps a bucket as a folder): put aside, so the test can look in it.
        (tmp_path / "s3rver" / server.bucket).rename(tmp_path / "deleted-bucket")
        deleted_at = time.time()
        view = wait_for_job(job_id, timeout=wait_s / 2)
        failed_after = time.time() - deleted_at
        assert view["status"] == "failed", view
        assert f"S3 bucket '{server.bucket}'" in view["error"] and "does not exist" in view["error"], view["error"]
        assert "was away" not in view["error"] and not _outages_met(farm), view["error"]
        with records.session() as s:
            jobs_before = s.query(Job).count()
        with open(clip.path, "rb") as fh:
            refused = client.post("/api/v1/jobs", headers=AUTH, data={"file": (fh, "clip.mp4")},
                                  content_type="multipart/form-data")
        with records.session() as s:
            jobs_after = s.query(Job).count()
        assert refused.status_code == 500 and "Retry-After" not in refused.headers, refused.json
        assert "does not exist (VIDFARM_S3_BUCKET)" in refused.json["error"], refused.json
        assert jobs_after == jobs_before          # no job made of it
        print(f"\nfailed {failed_after:.1f} s after the bucket was deleted: {view['error']}; "
              f"an upload got {refused.status_code}: {refused.json['error']}")


def test_a_task_that_meets_refused_credentials_does_not_wait_for_them(tmp_path, monkeypatch):
    """Wrong credentials, against the real server: the task is not retried for
    ``VIDFARM_BLOB_STORE_WAIT_S`` as for an outage; it fails at once, naming them."""
    from tasks import store_wait
    from tests.test_s3_storage import wrong_credentials
    from tests.test_store_wait import StandInTask

    monkeypatch.setattr(store_wait.runtime, "settings", lambda: types.SimpleNamespace(blob_store_wait_s=300.0))
    with s3server.S3Server(tmp_path / "s3rver") as server:
        with pytest.raises(BlobStoreUnavailable, match="refused the credentials") as refused:
            wrong_credentials(server, tmp_path / "cache").local_path(job_key("x", "source"))
    assert store_wait.wait_for_store(StandInTask(), refused.value) is None


def test_retries_held_through_their_workers_warm_shutdown_go_back_to_the_queue_with_their_leases(tmp_path):
    """A worker stopped (SIGTERM: Celery's warm shutdown) while it holds segments' retries for
    their countdown gives them back to the queue and releases their leases: none lapses to be
    queued a second time (and run twice at once), and the worker started again runs them."""
    from services import runtime
    from tasks import leases

    lease_s = 2.0
    clip = make_clip(tmp_path / "clip.mp4", seconds=6, fps=15, gop=15)
    with s3server.S3Server(tmp_path / "s3rver") as server, \
            private_farm(tmp_path / "farm", workers=1, VIDFARM_SEGMENT_SECONDS="1", VIDFARM_S3_MAX_ATTEMPTS="1",
                         VIDFARM_BLOB_STORE_WAIT_S="120", VIDFARM_SEGMENT_LEASE_S=str(lease_s),
                         **server.env()) as farm:
        job_id = _upload(_web_client(), clip.path)
        stop_once_a_segment_is_done(server, job_id)
        deadline = time.monotonic() + 60
        while not _outages_met(farm)["vidfarm.segment"]:
            assert time.monotonic() < deadline, "no segment met the outage"
            time.sleep(0.1)
        time.sleep(1.0)               # its retry received back, waiting for its countdown
        worker = next(process for process in farm.processes if process.name.startswith("worker"))
        worker.request_stop()
        worker.popen.wait(60)
        time.sleep(2 * lease_s)       # a lease left held would have lapsed by now
        assert leases.reclaim_expired() == []      # what beat would queue a second time
        server.start()
        worker.restart()
        view = wait_for_job(job_id, timeout=180)
        assert view["status"] == "done", view["error"]
        assert count_video_frames(runtime.store().local_path(output_key(job_id, "annotated.mp4"))) == clip.frames
        assert [s.status for s in runtime.records().segments(job_id)] == ["done"] * view["chunks_total"]
