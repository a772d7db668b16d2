"""Account pages: your password and API tokens, and (admins) the users: add, change a role,
reset a password, delete."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from flask import Blueprint, Response, current_app, flash, redirect, render_template, session, url_for
from flask_login import login_user

from core.accounts import AccountError
from web.api_users import user_or_404
from web.auth import account_user, accounts, request_user, require_role
from web.forms import ConfirmForm, PasswordChangeForm, RoleForm, TokenForm, UserForm, problems_line

accounts_ui = Blueprint("accounts", __name__)
SHOWN_ONCE = "one_time"      # the session key of the secret a redirect carries to its page
ONE_TIME_SHOWN_FOR_S = 300   # left unread that long, it is not shown: reset again, or make another token


@accounts_ui.route("/account", methods=["GET", "POST"])
def account():
    """Your API tokens. A new one is shown once, on the page its creation redirects to
    (Post/Redirect/Get: answered with the page itself, a reload sent the form again and made
    a second token)."""
    me = account_user()
    form = TokenForm()
    status = 200
    if form.validate_on_submit():
        token = accounts().create_token(me.id, form.label.data)
        return _redirect_showing_once("accounts.account", token, label=form.label.data)
    if form.errors:
        flash(problems_line(form.errors), "error")
        status = 400
    return render_template("account.html", form=form, new_token=_take_shown_once("accounts.account"),
                           tokens=accounts().list_tokens(me.id), revoke_form=ConfirmForm()), status


@accounts_ui.route("/account/password", methods=["GET", "POST"])
def password():
    """Change your own password (the current one required). Every other session of yours ends;
    this one goes on, logged in again under your new session token."""
    me = account_user()
    form = PasswordChangeForm()
    status = 200
    if form.validate_on_submit():
        try:
            accounts().change_own_password(me.id, form.current.data, form.new.data)
        except AccountError as exc:
            flash(str(exc), "error")
            status = 400
        else:
            login_user(accounts().get_user(me.id))   # the new token; the login's start stays as it was
            flash("password changed; every other session of yours has ended", "info")
            return redirect(url_for("accounts.account"))
    elif form.errors:
        flash(problems_line(form.errors), "error")
        status = 400
    return render_template("password.html", form=form, forced=me.must_change_password), status


@accounts_ui.post("/account/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    if ConfirmForm().validate_on_submit() and accounts().revoke_token(account_user().id, token_id):
        flash("token revoked", "info")
    return redirect(url_for("accounts.account"))


@accounts_ui.route("/users", methods=["GET", "POST"])
@require_role("admin")
def users():
    form = UserForm()
    status = 200
    if form.validate_on_submit():
        try:
            accounts().create_user(form.username.data, form.password.data, form.role.data)
            flash(f"user {form.username.data} created ({form.role.data})", "info")
            return redirect(url_for("accounts.users"))
        except AccountError as exc:
            flash(str(exc), "error")
            status = 400
    elif form.errors:
        flash(problems_line(form.errors), "error")
        status = 400
    return _users_page(form, _take_shown_once("accounts.users")), status


def _users_page(form=None, one_time: dict | None = None) -> str:
    return render_template("users.html", form=form or UserForm(formdata=None), users=accounts().list_users(),
                           delete_form=ConfirmForm(), role_form=RoleForm(formdata=None), one_time=one_time)


@accounts_ui.post("/users/<int:user_id>/role")
@require_role("admin")
def change_role(user_id: int):
    form = RoleForm()
    if not form.validate_on_submit():
        flash(problems_line(form.errors), "error")
    else:
        try:
            accounts().set_role(user_id, form.role.data)
            flash(f"{_username(user_id)} is now {form.role.data}; their sessions have ended", "info")
        except AccountError as exc:
            flash(str(exc), "error")
    return redirect(url_for("accounts.users"))


@accounts_ui.post("/users/<int:user_id>/reset")
@require_role("admin")
def reset_password(user_id: int):
    """A one-time password, shown once on the users page this redirects to (answered with the
    page itself, a reload sent the form again and reset the password again, so the one just
    shown, perhaps given out already, no longer worked). The user must choose their own at
    the next login.

    An admin resetting their own password ends their own session: the page redirected to
    would refuse them, and the password, never shown, would lock them out. This answer shows
    it instead; a reload sends the form in the ended session, so it resets nothing."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        flash(problems_line(form.errors), "error")
        return redirect(url_for("accounts.users"))
    name, own = _username(user_id), request_user().id == user_id
    password = accounts().reset_password(user_id)
    if own:
        return _users_page(one_time={"username": name, "secret": password})
    return _redirect_showing_once("accounts.users", password, username=name)


def _redirect_showing_once(page: str, secret: str, **about) -> Response:
    """Post/Redirect/Get for a change that makes a secret to be shown once (a one-time password,
    a new API token): the redirect to ``page``, which shows it (``_take_shown_once``), and
    ``about`` (in clear: the user it is for, the token's label). The secret crosses the
    redirect sealed in the session cookie, which is signed, not secret: never in clear there."""
    session[SHOWN_ONCE] = {**about, "page": page, "sealed": _seal().encrypt(secret.encode()).decode()}
    return redirect(url_for(page))


def _take_shown_once(page: str) -> dict | None:
    """The secret left for ``page`` (as ``secret``, beside its ``about``), taken off the session:
    shown once. None when there is none (one left for another page stays for it), or it is
    older than ONE_TIME_SHOWN_FOR_S (or sealed with another secret key)."""
    if (session.get(SHOWN_ONCE) or {}).get("page") != page:
        return None
    left = session.pop(SHOWN_ONCE)
    try:
        secret = _seal().decrypt(left["sealed"].encode(), ttl=ONE_TIME_SHOWN_FOR_S).decode()
    except InvalidToken:
        return None
    return {**left, "secret": secret}


def _seal() -> Fernet:
    """Authenticated encryption with a key of its own derived from the app's secret key."""
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode() if isinstance(secret, str) else secret
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"vidfarm one-time password\0" + secret).digest()))


def _username(user_id: int) -> str:
    return user_or_404(user_id).username


@accounts_ui.post("/users/<int:user_id>/delete")
@require_role("admin")
def delete_user(user_id: int):
    if ConfirmForm().validate_on_submit():
        try:
            accounts().delete_user(user_id)
            flash("user deleted", "info")
        except AccountError as exc:
            flash(str(exc), "error")
    return redirect(url_for("accounts.users"))
