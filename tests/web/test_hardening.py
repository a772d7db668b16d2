"""Body limits, the client's address behind proxies with per-(address, username) login
limits, and the security headers (issue 11, items 4, 5 and 9), on the real app and farm."""

from __future__ import annotations

import io
import socket
import uuid
from urllib.parse import urlsplit

import pytest

from tests.web.conftest import PASSWORD, csrf_token, logged_in_client, make_app

BIG = 50 * 1024 * 1024


def upload_leftovers() -> set[str]:
    """Files the upload request class has spooled (its folder under the data dir)."""
    from services import runtime

    folder = runtime.settings().data_dir / "tmp" / "uploads"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_an_anonymous_50_mb_post_to_login_is_refused_before_it_is_read(client):
    before = upload_leftovers()
    response = client.post("/login", data={"username": "x", "password": "y",
                                           "file": (io.BytesIO(b"\0" * BIG), "big.mp4")})
    assert response.status_code == 413
    assert "64 KiB allowed here" in response.get_data(as_text=True)
    assert upload_leftovers() == before


def test_a_chunked_anonymous_body_is_cut_at_the_limit_over_real_http(live_server):
    """No Content-Length to refuse by: the app stops reading at the limit (the development
    server then drains the rest of the connection into nothing)."""
    before = upload_leftovers()
    address = urlsplit(live_server)
    boundary = "vidfarmboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall((f"POST /login HTTP/1.1\r\nHost: {address.netloc}\r\nTransfer-Encoding: chunked\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode())
        try:
            for chunk in [head] + [b"\0" * 65536] * (BIG // 65536):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass   # the server answered and stopped reading: what we want
        reply = sock.makefile("rb").readline()
    assert reply.split()[1] == b"413", reply
    assert upload_leftovers() == before


def test_signed_in_users_send_large_bodies_only_to_the_uploads_their_role_allows(web_app, accounts_by_role):
    viewer = logged_in_client(web_app, accounts_by_role["viewer"])
    body = {"file": (io.BytesIO(b"\0" * (1 << 20)), "clip.mp4")}
    assert viewer.post("/upload", data=body).status_code == 413       # a viewer may not upload
    operator = logged_in_client(web_app, accounts_by_role["operator"])
    token = csrf_token(operator.get("/account").get_data(as_text=True))
    assert operator.post("/account", data={"label": "x" * (1 << 20), "csrf_token": token}).status_code == 413
    anonymous_api = web_app.test_client().post("/api/v1/jobs", data={"file": (io.BytesIO(b"\0" * (1 << 20)), "c.mp4")})
    assert anonymous_api.status_code == 401
    # An operator's upload route takes it (and refuses it for what it is, not for its size).
    refused = operator.post("/upload", data={"file": (io.BytesIO(b"\0" * (1 << 20)), "clip.mp4"),
                                             "csrf_token": csrf_token(operator.get("/upload").get_data(as_text=True))},
                            headers={"Accept": "application/json"})
    assert refused.status_code == 415


def failed_logins(app, count: int, username: str, remote: str, forwarded: str | None = None) -> list[int]:
    client = app.test_client()
    environ = {"REMOTE_ADDR": remote}
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    token = csrf_token(client.get("/login", environ_base=environ, headers=headers).get_data(as_text=True))
    return [client.post("/login", environ_base=environ, headers=headers,
                        data={"username": username, "password": "wrong guess", "csrf_token": token}).status_code
            for _ in range(count)]


def fresh_address() -> str:
    """An address no other test used (the limiter's counts live in the farm's Redis)."""
    tail = uuid.uuid4().bytes
    return f"10.{tail[0]}.{tail[1]}.{tail[2]}"


def test_logins_are_limited_per_address_and_username_and_per_address(farm):
    app = make_app(login_rate_limit="3 per minute", login_address_rate_limit="5 per minute")
    office = fresh_address()
    assert failed_logins(app, 4, "alice", office) == [401, 401, 401, 429]
    assert failed_logins(app, 2, "bob", office) == [401, 401]      # alice's typos do not lock bob out
    assert failed_logins(app, 1, "carol", office) == [429]          # but the address as a whole is limited
    assert failed_logins(app, 1, "alice", fresh_address()) == [401]


def test_forwarded_addresses_count_only_behind_trusted_proxies(farm):
    ingress = fresh_address()
    behind = make_app(login_rate_limit="2 per minute", trusted_proxies=1)
    first, second = fresh_address(), fresh_address()
    assert failed_logins(behind, 3, "dave", ingress, forwarded=first) == [401, 401, 429]
    assert failed_logins(behind, 1, "dave", ingress, forwarded=second) == [401]   # another client, same Ingress

    direct = make_app(login_rate_limit="2 per minute")              # 0 proxies: the header is ignored
    attacker = fresh_address()
    assert failed_logins(direct, 2, "erin", attacker, forwarded=fresh_address()) == [401, 401]
    assert failed_logins(direct, 1, "erin", attacker, forwarded=fresh_address()) == [429]


@pytest.fixture
def enrolled_with_crop():
    """A gallery person with a face crop (rows and blob written as an enrolment does)."""
    import numpy as np

    from services import runtime

    name = f"crop-{uuid.uuid4().hex[:6]}"
    key = f"gallery/{name}-1.jpg"
    runtime.store().put_stream(key, io.BytesIO(b"\xff\xd8\xff\xe0 not really a jpeg"))
    runtime.records().add_embeddings(name, [np.ones(512, np.float32).tobytes()], ["p.jpg"], [key])
    yield name
    runtime.records().delete_identity(name)


def test_every_response_carries_the_security_headers(web_app, accounts_by_role, enrolled_with_crop):
    viewer = logged_in_client(web_app, accounts_by_role["viewer"])
    responses = {"login page": web_app.test_client().get("/login"),
                 "jobs page": viewer.get("/jobs"),
                 "face crop": viewer.get(f"/gallery/{enrolled_with_crop}/crop.jpg"),
                 "API": web_app.test_client().get("/api/v1/identities", headers=accounts_by_role["viewer"].auth),
                 "error": viewer.get("/jobs/nope"),
                 "static": viewer.get("/static/app.css")}
    assert responses["face crop"].status_code == 200
    for what, response in responses.items():
        csp = response.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp, what
        assert response.headers.get("X-Content-Type-Options") == "nosniff", what
        if what != "static":
            assert response.headers.get("Cache-Control") == "private, no-store", what
