"""Nobody gets in without an account: every route but login, /healthz and static refuses anonymous
callers; roles limit what a signed-in user may do; forms need their CSRF token."""

from __future__ import annotations

import pytest

from tests.web.conftest import PASSWORD, csrf_token, logged_in_client

PUBLIC = {"auth.login", "healthz", "static"}


def concrete_url(rule) -> str:
    values = {arg: 1 if "int" in type(rule._converters[arg]).__name__.lower() else "x" for arg in rule.arguments}
    return rule.build(values, append_unknown=False)[1]


def test_every_route_refuses_anonymous_callers(web_app, client):
    from web.context import JSON_ERRORS

    checked = 0
    for rule in web_app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        url = concrete_url(rule)
        for method in sorted(rule.methods - {"OPTIONS"}) + ["OPTIONS"]:
            response = client.open(url, method=method)
            # A route a page's script fetches; OPTIONS goes to the first rule of the URL (its page's).
            endpoint = web_app.url_map.bind("localhost").match(url, method=method)[0]
            fetched = getattr(web_app.view_functions[endpoint], JSON_ERRORS, False)
            if url.startswith("/api/") or url == "/metrics":
                assert response.status_code == 401, (method, url, response.status_code)
                if method != "HEAD":
                    assert response.json == {"error": "missing or invalid bearer token"}
            elif fetched:        # a redirect to the login page would reach the script as an HTML page
                assert response.status_code == 401, (method, url, response.status_code)
                if method != "HEAD":
                    assert "log in" in response.json["error"], (method, url, response.json)
            else:
                assert response.status_code == 302, (method, url, response.status_code)
                assert response.location.startswith("/login"), (method, url, response.location)
            checked += 1
    assert checked >= 20   # the enumeration really ran over the app's routes


def test_public_routes_are_open(client):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/login").status_code == 200
    assert client.get("/static/app.css").status_code == 200


@pytest.mark.parametrize("header", ["Bearer wrong", "Bearer ", "test-token", "Basic dGVzdDp0ZXN0"])
def test_bad_credentials_are_refused(client, header):
    assert client.get("/api/v1/jobs", headers={"Authorization": header}).status_code == 401


def test_user_tokens_work_and_are_stored_hashed(client, accounts_by_role):
    from sqlalchemy import select

    from core.accounts import ApiToken
    from services import runtime

    viewer = accounts_by_role["viewer"]
    assert client.get("/api/v1/jobs", headers=viewer.auth).status_code == 200
    with runtime.records().session() as s:
        stored = list(s.scalars(select(ApiToken.token_sha256)))
    assert viewer.token not in stored and all(len(h) == 64 for h in stored)


def test_viewer_may_read_but_not_upload_or_delete(client, accounts_by_role):
    viewer = accounts_by_role["viewer"]
    response = client.post("/api/v1/jobs", headers=viewer.auth, data={}, content_type="multipart/form-data")
    assert response.status_code == 403
    assert client.delete("/api/v1/jobs/x", headers=viewer.auth).status_code == 403


def test_viewer_pages(web_app, accounts_by_role):
    browser = logged_in_client(web_app, accounts_by_role["viewer"])
    assert browser.get("/jobs").status_code == 200
    assert browser.get("/upload").status_code == 403
    assert browser.get("/users").status_code == 403


def test_session_reads_the_api_but_cannot_change_it(web_app, accounts_by_role):
    # The API is exempt from CSRF, so a cookie alone must never authorise an unsafe method.
    browser = logged_in_client(web_app, accounts_by_role["admin"])
    assert browser.get("/api/v1/jobs").status_code == 200
    assert browser.delete("/api/v1/jobs/x").status_code == 401
    assert browser.post("/api/v1/jobs", data={}, content_type="multipart/form-data").status_code == 401
    # ... nor on the identities endpoints, which are a blueprint of their own under /api/v1.
    assert browser.get("/api/v1/identities").status_code == 200
    assert browser.delete("/api/v1/identities/x").status_code == 401
    assert browser.patch("/api/v1/identities/x", json={"name": "y"}).status_code == 401
    assert browser.post("/api/v1/identities", data={}, content_type="multipart/form-data").status_code == 401


def test_forms_need_their_csrf_token(web_app, client, accounts_by_role):
    response = client.post("/login", data={"username": "test-admin", "password": PASSWORD})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    browser = logged_in_client(web_app, accounts_by_role["admin"])
    response = browser.post("/users", data={"username": "mallory", "password": "x" * 12, "role": "admin"})
    assert response.status_code == 400
    assert "mallory" not in browser.get("/users").get_data(as_text=True)


def test_wrong_password_and_logout(web_app, client, accounts_by_role):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": "test-admin", "password": "nope", "csrf_token": token})
    assert response.status_code == 401 and "wrong username or password" in response.get_data(as_text=True)
    browser = logged_in_client(web_app, accounts_by_role["operator"])
    token = csrf_token(browser.get("/jobs").get_data(as_text=True))
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 302
    assert browser.get("/jobs").status_code == 302


def test_login_is_rate_limited(farm):
    from tests.web.conftest import make_app

    app = make_app(login_rate_limit="3 per minute")
    client = app.test_client()
    address = {"REMOTE_ADDR": "10.11.12.13"}   # its own bucket, apart from the other tests
    token = csrf_token(client.get("/login", environ_base=address).get_data(as_text=True))
    codes = [client.post("/login", environ_base=address,
                         data={"username": "nobody", "password": "guess", "csrf_token": token}).status_code
             for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]


def test_login_redirects_only_within_the_site(web_app, accounts_by_role):
    client = web_app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login?next=//evil.example/x", data={
        "username": "test-viewer", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302 and response.location == "/jobs"


def test_admin_manages_users(web_app, accounts_by_role):
    browser = logged_in_client(web_app, accounts_by_role["admin"])
    token = csrf_token(browser.get("/users").get_data(as_text=True))
    response = browser.post("/users", data={"username": "newcomer", "password": "x" * 12, "role": "viewer",
                                            "csrf_token": token}, follow_redirects=True)
    assert response.status_code == 200 and "user newcomer created" in response.get_data(as_text=True)
    response = browser.post("/users", data={"username": "shorty", "password": "x", "role": "viewer",
                                            "csrf_token": token})
    assert response.status_code == 400
    page = browser.get("/account").get_data(as_text=True)
    response = browser.post("/account", data={"label": "ci", "csrf_token": csrf_token(page)})
    assert response.status_code == 302 and response.location.endswith("/account")     # Post/Redirect/Get
    assert 'id="new-token"' in browser.get("/account").get_data(as_text=True)


@pytest.mark.parametrize("path", [
    "/api/v1/jobs/x/tracks/114635160388107978628136960/thumbnail",    # what schemathesis sent
    "/api/v1/identities/x/photos/99999999999999999999",
    "/api/v1/users/9223372036854775808/password-reset",
])
def test_an_id_past_the_database_integers_is_not_found(client, path):
    """A path id beyond any row's is a 404 like any unknown id, not an overflow in the
    database driver (it was a 500)."""
    method = client.delete if "/photos/" in path else client.post if "reset" in path else client.get
    response = method(path, headers={"Authorization": "Bearer test-token"})
    assert response.status_code == 404, response.get_data(as_text=True)
