"""Erasing a person is complete and provable (issue 11.2).

Enrol someone, process two recordings of them (one matched against the whole gallery, one
against a subset ticked on the upload form), rename them (so older results call them by
another name), delete them; then no results version, per-segment analysis, job record,
database byte (write-ahead log included) or drawn label still holds either name or their
embedding, and the erasure's report says what it removed.
"""

from __future__ import annotations

import io
import json
import re
import time

import numpy as np

from core.storage import output_key
from services import runtime
from tasks.reanalysis import reidentify_stale
from tests.conftest import wait_for_job
from tests.labels import frames_i420, shows
from tests.test_reanalysis import wait_for_version
from tests.web.conftest import csrf_token, logged_in_client
from tests.web.test_gallery_web import enrol, one_face
from workers.annotate import Label

NAMES = ("Ada Erasable", "Ada Renamed")


def upload_with_subset(browser, clip, person: str) -> str:
    """Upload through the form, ticking ``person`` as the only one to match against."""
    page = browser.get("/upload").get_data(as_text=True)
    value = re.search(r'name="gallery" type="checkbox" value="([^"]+)"> ' + re.escape(person) + "<", page).group(1)
    with open(clip.path, "rb") as fh:
        response = browser.post("/upload", headers={"Accept": "application/json"}, content_type="multipart/form-data",
                                data={"csrf_token": csrf_token(page), "file": (fh, "subset.mp4"), "gallery": value,
                                      "analyzers": ["track", "recognize"]})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json["id"]


def upload_with_api(client, account, clip) -> str:
    with open(clip.path, "rb") as fh:
        response = client.post("/api/v1/jobs", headers=account.auth, content_type="multipart/form-data",
                               data={"file": (fh, "whole.mp4"), "analyzers": ["track", "recognize"]})
    assert response.status_code == 201, response.json
    return response.json["id"]


def traces(vector: bytes) -> list[bytes]:
    """What finding the person would look for: each name (as text and as JSON spells it) and
    their embedding (its bytes, and its first values as JSON text, however separated)."""
    values = [json.dumps(round(float(v), 6)) for v in np.frombuffer(vector, np.float32)[:3]]
    return [*(n.encode() for n in NAMES), *(json.dumps(n).encode() for n in NAMES), vector[:32],
            ", ".join(values).encode(), ",".join(values).encode()]


def found_in(data: bytes, vector: bytes) -> list[bytes]:
    return [trace for trace in traces(vector) if trace in data]


def wait_for_erasure(client, account, url: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        report = client.get(url, headers=account.auth).json
        if report["status"] == "done":
            return report
        assert time.monotonic() < deadline, report
        time.sleep(0.3)


def test_erasing_a_person_removes_every_trace_and_reports_it(web_app, client, accounts_by_role, farm, two_visits):
    admin, operator = accounts_by_role["admin"], accounts_by_role["operator"]
    records, store = runtime.records(), runtime.store()
    assert enrol(client, admin, NAMES[0], [("ada.jpg", one_face())]).status_code == 201
    [vector] = [v for name, v in records.gallery_vectors() if name == NAMES[0]]
    [crop] = records.identity_crop_keys(NAMES[0])

    whole = upload_with_api(client, operator, two_visits)
    subset = upload_with_subset(logged_in_client(web_app, operator), two_visits, NAMES[0])
    for job_id in (whole, subset):
        assert wait_for_job(job_id)["status"] == "done"
        assert {t["identity"] for t in json.loads(store.local_path(output_key(job_id, "results.json")).read_text())
                ["tracks"]} == {NAMES[0]}
    # The subset job refers to the person; it holds no copy of their embedding.
    assert set(records.get_job(subset).options) == {"analyzers", "gallery_ids"}

    # Renamed: both jobs are re-identified (the subset one too), older versions keep the old name.
    assert client.patch(f"/api/v1/identities/{NAMES[0]}", headers=admin.auth, json={"name": NAMES[1]}).status_code == 200
    reidentify_stale.apply()
    for job_id in (whole, subset):
        wait_for_version(job_id, 2)
        assert wait_for_job(job_id)["video_version"] == 2

    response = client.delete(f"/api/v1/identities/{NAMES[1]}", headers=admin.auth)
    assert response.status_code == 202, response.json
    assert response.json["embeddings_removed"] == 1 and response.json["crops_removed"] == 1
    assert not [i for i in client.get("/api/v1/identities", headers=admin.auth).json if i["name"] in NAMES]
    report = wait_for_erasure(client, admin, response.headers["Location"])

    # The report: both jobs published again, their named versions deleted, videos drawn again.
    # (Other tests' jobs may be in it too: the session's farm has seen this face before.)
    for job_id in (whole, subset):
        entry = report["jobs"][job_id]
        assert (entry["results_version"], entry["versions_deleted"], entry["video"]) == (
            3, [1, 2], "re-rendered (results version 3)"), entry
    assert report["jobs"][subset]["options_scrubbed"] is True and "options_scrubbed" not in report["jobs"][whole]
    assert report["jobs_republished"] >= 2 and report["videos_rerendered"] >= 2 and report["versions_deleted"] >= 4
    assert report["database"].startswith("sqlite: secure_delete on; write-ahead log checkpointed")
    assert not found_in(json.dumps(report).encode(), vector)

    for job_id in (whole, subset):
        assert client.get(f"/api/v1/jobs/{job_id}/results?version=1", headers=admin.auth).status_code == 404
        latest = json.loads(store.local_path(output_key(job_id, "results.json")).read_text())
        assert latest["version"] == 3
        assert all(t["identity"] is None and t["embedding"] is None for t in latest["tracks"])
        # Every file the job has: results versions, per-segment analyses, drawings, video, source.
        files = [p for p in (farm.data_dir / "blobs" / "jobs" / job_id).rglob("*") if p.is_file()]
        assert [p for p in files if found_in(p.read_bytes(), vector)] == []
        analyses = [json.loads(p.read_text()) for p in files if p.parent.name == "analysis"]
        assert analyses and all(t["embedding_sum"] is None for a in analyses for t in a["tracks"])
        # The drawn labels: each track's first frame shows its number, not a name.
        video = frames_i420(store.local_path(output_key(job_id, "annotated.mp4")))
        source = frames_i420(two_visits.path)
        for track in latest["tracks"]:
            index = track["first_frame"]
            [face] = latest["frames"][index]["faces"]
            assert shows(video[index], source[index], Label.of(face))
            assert not any(shows(video[index], source[index], Label.of({**face, "identity": n})) for n in NAMES)
    assert records.get_job(subset).options["gallery_ids"] == []
    assert not store.exists(crop)
    # An erased person's track is nobody's for good: enrolling it is refused, and says why
    # (it named the recogniser as if it had not run).
    [track, *_] = json.loads(store.local_path(output_key(whole, "results.json")).read_text())["tracks"]
    refused = client.post(f"/api/v1/jobs/{whole}/tracks/{track['track']}/enrol",
                          json={"name": "again"}, headers=admin.auth)
    assert refused.status_code == 400 and "its person was erased" in refused.json["error"], refused.json

    # The database file, and its write-ahead log, hold neither name nor the embedding.
    database = farm.data_dir / "vidfarm.db"
    for path in (database, database.with_name("vidfarm.db-wal")):
        if path.exists():
            assert found_in(path.read_bytes(), vector) == [], path
