"""Accounts a user and an admin can change (issue 19 item 4), in the UI and the API: your own
password (the current one required; your other sessions end, this one goes on), an admin's
reset to a one-time password (shown once; the next login must choose a new one) and role
changes; every form needs its CSRF token."""

from __future__ import annotations

import pytest

from tests.web.conftest import PASSWORD, csrf_token
from tests.web.test_sessions import log_in

NEW = "a much better password"


@pytest.fixture
def accounts(web_app):
    from core.accounts import Accounts
    from services import runtime

    return Accounts(runtime.records())


def admin_browser(web_app, accounts_by_role):
    return log_in(web_app, accounts_by_role["admin"].username)


def test_changing_your_password_needs_the_current_one_and_ends_your_other_sessions(web_app, accounts):
    user = accounts.create_user("pw-own", PASSWORD, "viewer")
    here, elsewhere = log_in(web_app, user.username), log_in(web_app, user.username)
    page = here.get("/account/password").get_data(as_text=True)
    form = {"current": PASSWORD, "new": NEW, "repeat": NEW, "csrf_token": csrf_token(page)}

    assert here.post("/account/password", data={**form, "csrf_token": "forged"}).status_code == 400
    wrong = here.post("/account/password", data={**form, "current": "not my password"})
    assert wrong.status_code == 400 and "the current password is wrong" in wrong.get_data(as_text=True)
    short = here.post("/account/password", data={**form, "new": "short", "repeat": "short"})
    assert short.status_code == 400 and "needs 10 to 256 characters" in short.get_data(as_text=True)
    differ = here.post("/account/password", data={**form, "repeat": NEW + "!"})
    assert differ.status_code == 400 and "the two new passwords differ" in differ.get_data(as_text=True)
    log_in(web_app, user.username)                                   # nothing changed so far

    done = here.post("/account/password", data=form)
    assert done.status_code == 302 and done.location.endswith("/account")
    assert here.get("/account").status_code == 200                  # this session goes on
    assert elsewhere.get("/jobs").status_code == 302                 # the other one has ended
    with pytest.raises(AssertionError):
        log_in(web_app, user.username, PASSWORD)
    log_in(web_app, user.username, NEW)


def test_changing_your_password_through_the_api_keeps_your_tokens(web_app, accounts):
    user = accounts.create_user("pw-api", PASSWORD, "operator")
    token = {"Authorization": f"Bearer {accounts.create_token(user.id)}"}
    browser, client = log_in(web_app, user.username), web_app.test_client()
    body = {"current_password": "wrong password", "new_password": NEW}
    wrong = client.post("/api/v1/account/password", json=body, headers=token)
    assert wrong.status_code == 400 and wrong.json == {"error": "the current password is wrong"}
    # The session cookie alone changes nothing through the API.
    assert browser.post("/api/v1/account/password", json={**body, "current_password": PASSWORD}).status_code == 401
    assert client.post("/api/v1/account/password", json={**body, "current_password": PASSWORD},
                       headers=token).status_code == 204
    assert browser.get("/jobs").status_code == 302
    assert client.get("/api/v1/jobs", headers=token).status_code == 200
    log_in(web_app, user.username, NEW)


def test_an_admin_resets_a_password_to_a_one_time_one_that_must_be_changed(web_app, accounts, accounts_by_role):
    user = accounts.create_user("pw-reset", PASSWORD, "operator")
    victim = log_in(web_app, user.username)
    admin = admin_browser(web_app, accounts_by_role)
    users_page = admin.get("/users").get_data(as_text=True)
    assert admin.post(f"/users/{user.id}/reset", data={}).status_code == 400          # no CSRF token
    reset = admin.post(f"/users/{user.id}/reset", data={"csrf_token": csrf_token(users_page)})
    assert reset.status_code == 302 and reset.location.endswith("/users")     # Post/Redirect/Get
    assert "one_time" in session_of(web_app, admin)
    text = admin.get("/users").get_data(as_text=True)
    assert 'id="one-time-password"' in text
    one_time = text.split('id="one-time-password">')[1].split("<")[0]
    assert len(one_time) >= 12 and one_time not in admin.get("/users").get_data(as_text=True)   # shown once
    assert victim.get("/jobs").status_code == 302                                    # their session ended

    browser = log_in(web_app, user.username, one_time)
    for path in ("/jobs", "/upload", "/account"):           # only the password page, until it is changed
        answer = browser.get(path)
        assert answer.status_code == 302 and answer.location.endswith("/account/password"), path
    assert browser.get("/api/v1/jobs").status_code == 403
    page = browser.get("/account/password").get_data(as_text=True)
    assert "Your password was reset by an admin" in page
    assert browser.post("/account/password", data={"current": one_time, "new": NEW, "repeat": NEW,
                                                   "csrf_token": csrf_token(page)}).status_code == 302
    assert browser.get("/upload").status_code == 200
    assert not accounts.get_user(user.id).must_change_password

    # The API: admins only; the answer carries the password this once.
    client = web_app.test_client()
    refused = client.post(f"/api/v1/users/{user.id}/password-reset", headers=accounts_by_role["operator"].auth)
    assert refused.status_code == 403
    reset = client.post(f"/api/v1/users/{user.id}/password-reset", headers=accounts_by_role["admin"].auth)
    assert reset.status_code == 200 and reset.json["username"] == "pw-reset"
    listed = {u["username"]: u for u in client.get("/api/v1/users", headers=accounts_by_role["admin"].auth).json}
    assert listed["pw-reset"]["must_change_password"] is True and "password" not in listed["pw-reset"]
    log_in(web_app, user.username, reset.json["password"])
    assert client.post(f"/api/v1/users/999999/password-reset", headers=accounts_by_role["admin"].auth).status_code == 404


def session_of(app, browser) -> dict:
    """What a test client's session cookie holds (signed, not secret: anyone holding it reads it)."""
    cookie = browser.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session"))
    return app.session_interface.get_signing_serializer(app).loads(cookie.value) if cookie else {}


def test_the_one_time_password_crosses_the_redirect_sealed_not_in_clear(web_app, accounts, accounts_by_role):
    """The reset's answer redirects; the password waits in the session cookie, which anyone
    holding it can read: sealed there, so it is not in it in clear."""
    user = accounts.create_user("pw-sealed", PASSWORD, "viewer")
    admin = admin_browser(web_app, accounts_by_role)
    admin.post(f"/users/{user.id}/reset", data={"csrf_token": csrf_token(admin.get("/users").get_data(as_text=True))})
    held = str(session_of(web_app, admin))
    text = admin.get("/users").get_data(as_text=True)
    one_time = text.split('id="one-time-password">')[1].split("<")[0]
    assert "pw-sealed" in held and one_time not in held
    assert "one_time" not in session_of(web_app, admin)            # taken off once shown


def test_an_admin_changes_a_role_in_the_ui_and_the_api(web_app, accounts, accounts_by_role):
    user = accounts.create_user("role-change", PASSWORD, "viewer")
    admin = admin_browser(web_app, accounts_by_role)
    page = admin.get("/users").get_data(as_text=True)
    refused = admin.post(f"/users/{user.id}/role", data={"role": "operator"})       # no CSRF token
    assert refused.status_code == 400 and accounts.get_user(user.id).role == "viewer"
    done = admin.post(f"/users/{user.id}/role", data={"role": "operator", "csrf_token": csrf_token(page)},
                      follow_redirects=True)
    assert "role-change is now operator" in done.get_data(as_text=True)
    assert log_in(web_app, user.username).get("/upload").status_code == 200

    client = web_app.test_client()
    api = client.patch(f"/api/v1/users/{user.id}", json={"role": "admin"}, headers=accounts_by_role["admin"].auth)
    assert api.status_code == 200 and api.json["role"] == "admin"
    assert client.patch(f"/api/v1/users/{user.id}", json={"role": "king"},
                        headers=accounts_by_role["admin"].auth).status_code == 400
    assert client.patch(f"/api/v1/users/{user.id}", json={"role": "viewer"},
                        headers=accounts_by_role["operator"].auth).status_code == 403
    viewer = log_in(web_app, accounts_by_role["viewer"].username)
    assert viewer.post(f"/users/{user.id}/role", data={"role": "viewer", "csrf_token": csrf_token(
        viewer.get("/jobs").get_data(as_text=True))}).status_code == 403
    # The last admin keeps the role.
    others = [u for u in accounts.list_users() if u.role == "admin"]
    for other in others[1:]:
        accounts.set_role(other.id, "operator")
    try:
        last = client.patch(f"/api/v1/users/{others[0].id}", json={"role": "viewer"},
                            headers={"Authorization": "Bearer test-token"})
        assert last.status_code == 400 and "last admin" in last.json["error"]
    finally:
        for other in others[1:]:
            accounts.set_role(other.id, "admin")


def test_a_one_time_password_left_unread_past_its_time_is_not_shown(web_app, accounts_by_role):
    """A reset whose redirect was never followed leaves the sealed password in the cookie: a
    visit to the users page later than ONE_TIME_SHOWN_FOR_S does not show it."""
    import time

    from web.accounts_ui import ONE_TIME_SHOWN_FOR_S, _seal

    admin = admin_browser(web_app, accounts_by_role)
    with web_app.app_context():
        stale = _seal().encrypt_at_time(b"stale one-time", int(time.time()) - ONE_TIME_SHOWN_FOR_S - 1).decode()
    with admin.session_transaction() as session:
        session["one_time"] = {"username": "someone", "page": "accounts.users", "sealed": stale}
    page = admin.get("/users").get_data(as_text=True)
    assert "stale one-time" not in page and 'id="one-time-password"' not in page


def test_a_new_api_token_crosses_the_redirect_sealed_and_shows_once_on_its_own_page(web_app, accounts_by_role):
    """Creating a token redirects to the account page, which shows it once: in the session
    cookie meanwhile, sealed as the one-time password is, and left for that page alone (the
    users page, which shows one-time passwords, does not show it)."""
    admin = admin_browser(web_app, accounts_by_role)
    created = admin.post("/account", data={"label": "sealed-label", "csrf_token": csrf_token(
        admin.get("/account").get_data(as_text=True))})
    assert created.status_code == 302 and created.location.endswith("/account")
    held = str(session_of(web_app, admin))
    assert "sealed-label" in held and 'id="one-time-password"' not in admin.get("/users").get_data(as_text=True)
    text = admin.get("/account").get_data(as_text=True)
    token = text.split('id="new-token">')[1].split("<")[0]
    assert len(token) >= 20 and token not in held and "sealed-label" in text
    assert admin.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert 'id="new-token"' not in admin.get("/account").get_data(as_text=True)        # shown once


def test_an_admin_who_resets_their_own_password_is_shown_the_one_time_one(web_app, accounts):
    """Resetting one's own password ends one's own session too: the users page the reset
    redirects to was then refused (logged out), the password sealed for it never shown, and the
    admin locked out of their account (the last admin: of the farm). The answer shows it
    itself; a reload sends the form again in a session that has ended, so resets nothing."""
    me = accounts.create_user("pw-self-reset", PASSWORD, "admin")
    browser = log_in(web_app, me.username)
    page = browser.get("/users").get_data(as_text=True)
    answer = browser.post(f"/users/{me.id}/reset", data={"csrf_token": csrf_token(page)}, follow_redirects=True)
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200 and 'id="one-time-password"' in text, text
    one_time = text.split('id="one-time-password">')[1].split("<")[0]
    assert browser.get("/users").status_code != 200                     # this session has ended
    again = browser.post(f"/users/{me.id}/reset", data={"csrf_token": csrf_token(page)})
    assert again.status_code != 200 and "one-time-password" not in again.get_data(as_text=True)
    log_in(web_app, me.username, one_time)                               # the password shown works
