"""The REST API against the real farm (Flask's test client in this process), with the
bootstrap admin token from settings; per-user tokens and roles are tested in tests/web/."""

from __future__ import annotations

import io

import pytest

from tests.conftest import wait_for_job


@pytest.fixture
def client(farm):
    from web import create_app

    app = create_app()
    app.testing = True
    return app.test_client()


AUTH = {"Authorization": "Bearer test-token"}


def test_upload_follow_and_fetch(client, face_clip):
    with open(face_clip.path, "rb") as fh:
        response = client.post("/api/v1/jobs", headers=AUTH, data={"file": (fh, "../../etc/x y.mp4")},
                               content_type="multipart/form-data")
    assert response.status_code == 201, response.json
    job_id = response.json["id"]
    # The job's status when the response is made: a worker may have taken it already.
    assert response.json["status"] in ("queued", "splitting", "processing", "stitching", "done")
    # The answer is the job's view, with the views' field names (it gave only name once).
    assert response.json["source_name"] == response.json["name"] == "x y.mp4"
    # Every field of GET /jobs/{id} (README: "201 with the job's view"; ``alerts`` was missing).
    assert set(client.get(f"/api/v1/jobs/{job_id}", headers=AUTH).json) <= set(response.json)
    assert response.json["alerts"] == 0
    wait_for_job(job_id)
    view = client.get(f"/api/v1/jobs/{job_id}", headers=AUTH).json
    assert view["status"] == "done" and view["progress"] == 1.0
    assert view["chunks_done"] == view["chunks_total"] >= 2
    results = client.get(f"/api/v1/jobs/{job_id}/results", headers=AUTH).json
    assert len(results["frames"]) == face_clip.frames
    ranged = client.get(f"/api/v1/jobs/{job_id}/video", headers={**AUTH, "Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.data) == 100


def test_requests_without_a_valid_token_are_refused(client):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-token"}):
        assert client.get("/api/v1/jobs/abc", headers=headers).status_code == 401
        assert client.post("/api/v1/jobs", headers=headers).status_code == 401


def test_unknown_job_and_missing_file(client):
    assert client.get("/api/v1/jobs/0123", headers=AUTH).status_code == 404
    response = client.post("/api/v1/jobs", headers=AUTH, data={"other": (io.BytesIO(b"x"), "a.mp4")},
                           content_type="multipart/form-data")
    assert response.status_code == 400 and "file" in response.json["error"]
    assert client.get("/healthz").json == {"status": "ok"}


def test_bad_upload_is_refused_at_the_door(client):
    # Content is probed before a job exists: junk gets 415 and one line, and no job.
    response = client.post("/api/v1/jobs", headers=AUTH, data={"file": (io.BytesIO(b"hello"), "notes.mp4")},
                           content_type="multipart/form-data")
    assert response.status_code == 415
    assert "notes.mp4" in response.json["error"] and "not a readable video" in response.json["error"]


def test_metrics_need_a_token_and_report_the_farm(client, face_clip):
    from prometheus_client.parser import text_string_to_metric_families

    assert client.get("/metrics").status_code == 401
    with open(face_clip.path, "rb") as fh:
        job_id = client.post("/api/v1/jobs", headers=AUTH, data={"file": (fh, "m.mp4")},
                             content_type="multipart/form-data").json["id"]
    wait_for_job(job_id)
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.get_data(as_text=True))}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("vidfarm_jobs", (("status", "done"),))] >= 1
    assert samples[("vidfarm_segments", (("status", "done"),))] >= 2
    assert samples[("vidfarm_segment_seconds_count", ())] >= 2
    assert samples[("vidfarm_frames_per_second", ())] > 0
    assert samples[("vidfarm_broker_up", ())] == 1
    import celeryconfig
    for queue in celeryconfig.task_queues:   # every queue the farm routes to, the cameras' live one included
        assert ("vidfarm_queue_waiting", (("queue", queue.name),)) in samples
        assert ("vidfarm_queue_running", (("queue", queue.name),)) in samples
    assert samples[("vidfarm_workers", (("state", "busy"),))] + samples[("vidfarm_workers", (("state", "idle"),))] == 2


def test_a_scrape_broadcasts_once_and_scrapes_share_one_connection(client, monkeypatch):
    """Each scrape asks the workers once (the answer serves busy and idle counts), and a web
    process keeps one observer (one broker connection) for all its scrapes."""
    from celery.app.control import Control

    from autoscaler.observe import QueueObserver

    broadcasts, observers = [], []
    broadcast, init = Control.broadcast, QueueObserver.__init__

    def counted_broadcast(self, command, *args, **kwargs):
        broadcasts.append(command)
        return broadcast(self, command, *args, **kwargs)

    def counted_init(self, *args, **kwargs):
        observers.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(Control, "broadcast", counted_broadcast)
    monkeypatch.setattr(QueueObserver, "__init__", counted_init)
    for scrape in (1, 2):
        response = client.get("/metrics", headers=AUTH)
        assert response.status_code == 200
        assert len(broadcasts) == scrape, broadcasts
        assert 'vidfarm_workers{state="idle"}' in response.get_data(as_text=True)
    assert len(observers) <= 1      # none when an earlier test's scrape opened it already


def test_a_failed_job_says_it_failed_and_why_not_that_it_is_not_done(client):
    """Its results and video answered "job ... is failed, not done", as if they might come."""
    from services import runtime
    from tests.web.test_job_pages import done_job, queued_job

    records = runtime.records()
    job_id = queued_job("broken.mp4")
    records.fail_job(job_id, "the video stream does not decode")
    for output, what in (("results", "results"), ("video", "annotated video")):
        response = client.get(f"/api/v1/jobs/{job_id}/{output}", headers=AUTH)
        assert response.status_code == 409 and "Retry-After" not in response.headers
        assert response.json["error"] == f"job {job_id} failed (the video stream does not decode): it has no {what}"
    # One that failed when run again (a re-analysis) still has the results of before.
    job_id = done_job("rerun.mp4")
    assert records.restart_job(job_id, {}) is not None
    records.fail_job(job_id, "worker lost")
    response = client.get(f"/api/v1/jobs/{job_id}/results", headers=AUTH)
    assert response.status_code == 409
    assert response.json["error"] == (f"job {job_id} failed when run again (worker lost); its results of before "
                                      "stay, as ?version=1")
    assert client.get(f"/api/v1/jobs/{job_id}/results?version=1", headers=AUTH).status_code == 200
