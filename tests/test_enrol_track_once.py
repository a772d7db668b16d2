"""A track enrolled while its job's re-identification has not yet published is not enrolled
again (under another name, or the same): the job's results still call it unknown in that
window, so the gallery is asked. The window is held open for certain by a farm whose broker
cannot be reached, so the re-identification never runs (the enrolment stands: beat's sweep
would re-identify later)."""

from __future__ import annotations

import io
import json

from core.models import Job
from core.storage import version_key
from services import runtime
from tests.test_broker_down import AUTH, dead_broker_app  # noqa: F401 (a fixture)

EMBEDDING = [((i * 37) % 101 - 50) / 50 for i in range(512)]


def done_job_with_an_unknown_track() -> str:
    """A finished job whose results (version 1) hold one unknown track with its embedding."""
    farm = runtime.farm()
    job = farm.records.add_job("door.mp4", "jobs/none/source")
    farm.store.put_stream(version_key(job.id, 1), io.BytesIO(json.dumps({
        "schema": "vidfarm.results/1", "version": 1, "frames": [], "alerts": [],
        "tracks": [{"track": 3, "identity": None, "first_frame": 0, "last_frame": 9, "best_similarity": None,
                    "mask": None, "max_temperature_c": None, "embedding": EMBEDDING}]}).encode()))
    with farm.records.session() as s:
        record = s.get(Job, job.id)
        record.status, record.results_version = "done", 1
    return job.id


def test_a_track_is_enrolled_once_while_its_job_is_matched_again(dead_broker_app):  # noqa: F811
    client = dead_broker_app.test_client()
    job_id = done_job_with_an_unknown_track()
    first = client.post(f"/api/v1/jobs/{job_id}/tracks/3/enrol", headers=AUTH, json={"name": "Ann"})
    assert first.status_code == 201, first.json
    for name in ("Bob", "Ann"):     # the results still say unknown: re-identification has not run
        again = client.post(f"/api/v1/jobs/{job_id}/tracks/3/enrol", headers=AUTH, json={"name": name})
        assert again.status_code == 409, again.json
        assert again.json == {"error": f"track #3 of job {job_id} is already enrolled as Ann", "identity": "Ann"}
    people = client.get("/api/v1/identities", headers=AUTH).json
    assert [(p["name"], p["embeddings"]) for p in people] == [("Ann", 1)]


# Two enrolments sent at once: tests/test_records.py (SQLite and PostgreSQL).
