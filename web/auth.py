"""Who is asking: sessions (Flask-Login), bearer tokens, roles, and the deny-by-default guard.

Every request passes ``guard`` before its view: only the endpoints in ``PUBLIC_ENDPOINTS`` are
open to anonymous callers. The UI authenticates by session cookie; the API by bearer token
(a user's own, or the optional bootstrap token from settings), and also by session for safe
methods, so a logged-in browser can open the results and video links. Unsafe API methods
never take the session: the API is exempt from CSRF, so a cookie alone must not change anything.
"""

from __future__ import annotations

import hmac
import time
from functools import lru_cache, wraps
from urllib.parse import urlsplit

from apiflask import HTTPTokenAuth, abort   # abort carries its message to the error page
from apiflask.fields import String
from flask import (Blueprint, current_app, flash, g, jsonify, redirect, render_template, request, session,
                   url_for)
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user, login_user, logout_user

from core.accounts import ROLES, Accounts, User
from web.context import asks_json, farm
from web.forms import LoginForm
from web.page_query import takes_query
from web.schemas import QuerySchema

PUBLIC_ENDPOINTS = frozenset({"auth.login", "healthz", "static"})
# All a session with a one-time password may reach (besides the public ones).
PASSWORD_CHANGE_ENDPOINTS = frozenset({"accounts.password", "auth.logout"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

login_manager = LoginManager()
login_manager.login_view = "auth.login"
# A moving window: with the default fixed one, guesses on either side of a window's end count
# in two windows (twice the limit within seconds), and make test's login burst once straddled one.
limiter = Limiter(key_func=get_remote_address, default_limits=[], strategy="moving-window")


class RequestUserAuth(HTTPTokenAuth):
    """APIFlask's bearer scheme (for the role checks and the OpenAPI document), answered by
    ``request_user``: a logged-in browser's GET carries no token but is still a user."""

    def authenticate(self, auth, stored_password):
        return request_user()


token_auth = RequestUserAuth(scheme="Bearer", description="A user's API token (Authorization: Bearer ...)")

# A plain blueprint (not APIBlueprint) keeps the login pages out of the OpenAPI document.
auth = Blueprint("auth", __name__)


def accounts() -> Accounts:
    return _accounts_of(farm().records)


@lru_cache(maxsize=4)
def _accounts_of(records) -> Accounts:
    """One Accounts per records handle: its schema check runs once per process, not per request."""
    return Accounts(records)


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The session's user while its token is theirs (logout, a new password or role, or the
    user's deletion ends it) and it is younger than the absolute lifetime: the cookie's own
    expiry is the browser's business, a replayed cookie is refused here."""
    started = session.get("login_at")
    lifetime = current_app.config["VIDFARM_SETTINGS"].session_lifetime_s
    if not isinstance(started, (int, float)) or not 0 <= time.time() - started <= lifetime:
        return None
    return accounts().user_for_session(session_id)


def _bootstrap_user() -> User:
    """The settings token's identity: an admin that exists only for the request."""
    return User(id=0, username="bootstrap-token", role="admin", password_hash="", must_change_password=False)


def _bearer_user(token: str) -> User | None:
    expected = current_app.config["VIDFARM_SETTINGS"].api_token
    if expected and hmac.compare_digest(token.encode(), expected.encode()):
        return _bootstrap_user()
    return accounts().user_for_token(token)


def request_user() -> User | None:
    """The user behind this request, or None (cached on ``g``)."""
    if "user" not in g:
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            g.user = _bearer_user(token.strip()) if scheme == "Bearer" and token.strip() else None
        elif current_user.is_authenticated and (not request.path.startswith("/api/") or request.method in SAFE_METHODS):
            # Every /api/ blueprint is exempt from CSRF: its changes take a bearer token, never the cookie.
            g.user = current_user._get_current_object()
        else:
            g.user = None
    return g.user


def account_user() -> User:
    """The user behind this request, who must be a real account (the bootstrap token is not)."""
    user = request_user()
    if user.id == 0:
        abort(403, "the bootstrap token has no account; log in as a user")
    return user


def _is_api_request() -> bool:
    """Machine endpoints (the API, Prometheus' /metrics, a page script's fetch routes) and a
    page script's request for JSON (upload.js posts to the Upload page's own route) answer
    401; pages redirect to login (a script would follow that to the login page's HTML)."""
    return asks_json() or request.path == "/metrics"


def guard():
    """before_request for the whole app: anonymous callers reach only the public endpoints, and
    a browser logged in with a one-time password (an admin's reset) only the page that
    changes it."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    user = request_user()
    if user is None:
        if _is_api_request():
            if not request.path.startswith(("/api/", "/metrics")):    # a page's script, its session ended
                return jsonify(error="not logged in (the session ended): reload the page and log in"), 401
            return jsonify(error="missing or invalid bearer token"), 401, {"WWW-Authenticate": "Bearer"}
        return redirect(url_for("auth.login", next=_back_after_login()))
    if user.must_change_password and "Authorization" not in request.headers \
            and request.endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        if _is_api_request():
            return jsonify(error="choose a new password first (your password was reset)"), 403
        return redirect(url_for("accounts.password"))
    return None


def _back_after_login() -> str | None:
    """Where the login leads back to: the page asked for, with its query as given (the page
    checks it: ``web.page_query``). None for a form sent after the session ended: its route is
    no page (a GET of it was a 405 once logged in), so the login leads to the jobs."""
    if request.method not in SAFE_METHODS:
        return None
    return request.full_path if request.query_string else request.path


@token_auth.get_user_roles
def _roles(user: User) -> list[str]:
    return list(ROLES[ROLES.index(user.role):])


def require_role(role: str):
    """For UI views: refuse (403) users whose role is weaker than ``role``."""
    def decorate(view):
        @wraps(view)
        def checked(*args, **kwargs):
            user = request_user()
            if user is None or not user.can(role):
                abort(403, f"this page needs the {role} role")    # an error page, or JSON (asks_json)
            return view(*args, **kwargs)
        return checked
    return decorate


def _safe_next(target: str | None) -> str:
    """Only same-site paths: a login link must not bounce the user to another site."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("ui.jobs")


class LoginQuery(QuerySchema):
    next = String(metadata={"description": "Where to go once logged in (a path of this site)."})


def _address_and_username() -> str:
    return f"{get_remote_address()}/{request.form.get('username', '')[:64]}"


def _failed(response) -> bool:
    return response.status_code != 302


# Failed logins count twice: per (address, username), so one person's typos do not lock out
# their colleagues behind the same NAT, and per address, so one address cannot try many
# names. The address is the client's (ProxyFix, VIDFARM_TRUSTED_PROXIES), not the Ingress'.
@auth.route("/login", methods=["GET", "POST"])
@takes_query(LoginQuery)
@limiter.limit(lambda: current_app.config["VIDFARM_SETTINGS"].login_address_rate_limit, methods=["POST"],
               deduct_when=_failed)
@limiter.limit(lambda: current_app.config["VIDFARM_SETTINGS"].login_rate_limit, methods=["POST"],
               key_func=_address_and_username, deduct_when=_failed)
def login():
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        user = accounts().authenticate(form.username.data, form.password.data)
        if user is not None:
            session.clear()   # a fresh session id on login (no fixation)
            login_user(user)
            session["login_at"] = time.time()
            session.permanent = True   # the browser drops the cookie after the lifetime too
            return redirect(_safe_next(request.args.get("next")))
        flash("wrong username or password", "error")
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("login.html", form=form), status


@auth.post("/logout")
def logout():
    if current_user.is_authenticated:
        accounts().rotate_session(current_user.id)   # this cookie, and every copy of it, ends here
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
