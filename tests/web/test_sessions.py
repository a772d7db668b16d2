"""Sessions end when they should (issue 11, item 1), each attack replayed with the real app:
a session cookie copied before logout, before the user's deletion (and the next user taking
the id), before a password or role change, or older than the absolute lifetime, opens nothing
afterwards: neither a page nor the API."""

from __future__ import annotations

import pytest

from tests.web.conftest import PASSWORD, csrf_token, make_app

COOKIE = "session"


@pytest.fixture
def accounts(web_app):
    from core.accounts import Accounts
    from services import runtime

    return Accounts(runtime.records())


def log_in(app, username: str, password: str = PASSWORD):
    client = app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def stolen_cookie(client) -> str:
    return client.get_cookie(COOKIE).value


def replay(app, cookie: str):
    """A fresh client (another machine) presenting a copied session cookie."""
    client = app.test_client()
    client.set_cookie(COOKIE, cookie)
    return client


def assert_opens_nothing(app, cookie: str) -> None:
    client = replay(app, cookie)
    for path in ("/jobs", "/account"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.location, path
    assert client.get("/api/v1/jobs").status_code == 401


def test_a_cookie_replayed_after_logout_opens_nothing(web_app, accounts):
    accounts.create_user("sess-logout", PASSWORD, "viewer")
    browser = log_in(web_app, "sess-logout")
    cookie = stolen_cookie(browser)
    assert replay(web_app, cookie).get("/api/v1/jobs").status_code == 200   # the copy works while logged in
    token = csrf_token(browser.get("/jobs").get_data(as_text=True))
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 302
    assert_opens_nothing(web_app, cookie)


def test_a_deleted_users_cookie_does_not_open_the_next_users_account(web_app, accounts):
    """temp1 logs in, an admin deletes temp1, a new user is made: the id is not reused and
    temp1's cookie is nobody's."""
    temp = accounts.create_user("sess-temp1", PASSWORD, "viewer")
    cookie = stolen_cookie(log_in(web_app, "sess-temp1"))
    accounts.delete_user(temp.id)
    newcomer = accounts.create_user("sess-viewer2", PASSWORD, "viewer")
    assert newcomer.id != temp.id
    assert_opens_nothing(web_app, cookie)


@pytest.mark.parametrize("change", ["password", "role"])
def test_a_new_password_or_role_ends_the_sessions_before_it(web_app, accounts, change):
    user = accounts.create_user(f"sess-{change}", PASSWORD, "operator")
    browser = log_in(web_app, user.username)
    cookie = stolen_cookie(browser)
    if change == "password":
        accounts.change_password(user.id, "a brand new password")
    else:
        accounts.set_role(user.id, "viewer")
    assert_opens_nothing(web_app, cookie)
    assert browser.get("/jobs").status_code == 302              # the browser that held it too
    log_in(web_app, user.username, "a brand new password" if change == "password" else PASSWORD)


def test_a_session_ends_after_its_absolute_lifetime_however_active(farm, accounts):
    lifetime = 60
    app = make_app(session_lifetime_s=lifetime)
    accounts.create_user("sess-lifetime", PASSWORD, "viewer")
    browser = log_in(app, "sess-lifetime")
    with browser.session_transaction() as session:
        logged_in_at = session["login_at"]
    assert browser.get("/jobs").status_code == 200
    with browser.session_transaction() as session:
        assert session["login_at"] == logged_in_at                # activity does not extend it
        # Older than the lifetime, without sleeping through it (a slow request would have
        # outlived a lifetime short enough to wait for).
        session["login_at"] = logged_in_at - lifetime - 1
    cookie = stolen_cookie(browser)
    assert_opens_nothing(app, cookie)
    assert browser.get("/api/v1/jobs").status_code == 401
    assert log_in(app, "sess-lifetime").get("/jobs").status_code == 200


def test_the_upload_script_is_told_the_session_ended(web_app, accounts):
    """upload.js posts each recording to the Upload page's route asking for JSON: once the
    session had ended it got the redirect, followed it to the login page's HTML (200) and said
    "Upload failed (HTTP 200)" for every recording left. It gets a 401 that says why now; a
    browser's form post still goes to the login page."""
    user = accounts.create_user("sess-upload", PASSWORD, "operator")
    browser = log_in(web_app, user.username)
    token = csrf_token(browser.get("/upload").get_data(as_text=True))
    accounts.rotate_session(user.id)       # a logout elsewhere
    script = browser.post("/upload", data={"csrf_token": token}, headers={"Accept": "application/json"})
    assert script.status_code == 401 and "session ended" in script.json["error"]
    assert browser.post("/upload", data={"csrf_token": token}).location.startswith("/login")


def test_a_login_in_another_tab_is_named_when_a_page_posts_its_stale_token(web_app, accounts):
    """A login in another tab starts a fresh session, so the CSRF token of a page opened before
    is stale. upload.js asks for JSON, but got the HTML error page (400), read as "Upload
    failed (HTTP 400)" for every recording left, each sent in full. A request for JSON gets
    JSON now, saying why, and ``reload``: the script stops its batch there (a form post gets
    the same words on the error page; the WebRTC offer's script the same JSON)."""
    user = accounts.create_user("sess-other-tab", PASSWORD, "operator")
    browser = log_in(web_app, user.username)
    stale = csrf_token(browser.get("/upload").get_data(as_text=True))
    again = csrf_token(browser.get("/login").get_data(as_text=True))      # the other tab
    assert browser.post("/login", data={"username": user.username, "password": PASSWORD,
                                        "csrf_token": again}).status_code == 302
    as_json = {"Accept": "application/json"}
    for opened in ("nothing yet", "/jobs"):   # the new session has no CSRF secret, then its own
        if opened != "nothing yet":
            browser.get(opened)
        script = browser.post("/upload", data={"csrf_token": stale}, headers=as_json)
        assert script.status_code == 400 and script.json["reload"] is True, opened
        assert script.json["error"] == ("The session changed since this page was opened (a login in another "
                                        "tab or window). Reload the page and try again.")
    form = browser.post("/upload", data={"csrf_token": stale})
    assert form.status_code == 400 and "The session changed since this page was opened" in form.get_data(as_text=True)
    offer = browser.post("/cameras/nope/view-offer", json={"type": "offer", "sdp": "v=0\r\n"},
                         headers={"X-CSRFToken": stale})
    assert offer.status_code == 400 and offer.json == script.json
    fresh = csrf_token(browser.get("/upload").get_data(as_text=True))
    refused = browser.post("/upload", data={"csrf_token": fresh}, headers=as_json)    # no file: its own reason
    assert refused.status_code == 400 and "reload" not in refused.json
