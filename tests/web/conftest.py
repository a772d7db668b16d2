"""Fixtures for the web tests: the app on the real farm, users of each role, a live server."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import pytest
from werkzeug.serving import make_server

from cli.redis_server import free_port

PASSWORD = "correct horse battery"
BOOTSTRAP = {"Authorization": "Bearer test-token"}   # use_farm_environment's settings token


@dataclass
class Account:
    username: str
    role: str
    token: str

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


def make_app(**overrides):
    from core.settings import get_settings
    from web import create_app

    # Tests log in often from one address; the rate-limit test uses its own address and limit.
    settings = get_settings().model_copy(update={"login_rate_limit": "1000 per minute",
                                                 "login_address_rate_limit": "1000 per minute", **overrides})
    app = create_app(settings)
    app.testing = True
    # Flask-Limiter's limiter is one per process (web.auth's decorators name it), and each
    # create_app points it at that app's Redis, but keeps its "storage dead" mark: an earlier
    # test whose private farm's Redis went away left it counting in memory, until a backoff
    # check found Redis alive and switched back mid-test, dropping the counts (a CI run's
    # [401] where a third failed login must be 429). A new app starts with its Redis presumed alive.
    from web.auth import limiter
    limiter._storage_dead = False
    return app


@pytest.fixture(scope="session")
def web_app(farm):
    return make_app()


@pytest.fixture(scope="session")
def accounts_by_role(web_app) -> dict[str, Account]:
    """One user per role (names unique to this test session)."""
    from core.accounts import Accounts
    from services import runtime

    accounts = Accounts(runtime.records())
    made = {}
    for role in ("admin", "operator", "viewer"):
        user = accounts.create_user(f"test-{role}", PASSWORD, role)
        made[role] = Account(user.username, role, accounts.create_token(user.id, "tests"))
    return made


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def logged_in_client(app, account: Account):
    client = app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": account.username, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def client(web_app):
    return web_app.test_client()


@pytest.fixture
def operator_client(web_app, accounts_by_role):
    return logged_in_client(web_app, accounts_by_role["operator"])


@pytest.fixture(scope="session")
def live_server(web_app):
    """The app over real HTTP (threaded Werkzeug server) for schemathesis and the browser."""
    port = free_port()
    server = make_server("127.0.0.1", port, web_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{port}"
    server.shutdown()
    thread.join()
