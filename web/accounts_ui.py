"""Account pages: your API tokens, and (admins) the users list."""

from __future__ import annotations

from apiflask import abort   # carries its message to the error page (Flask's keeps only the name)
from flask import Blueprint, flash, redirect, render_template, url_for

from core.accounts import AccountError
from web.auth import accounts, require_role, request_user
from web.forms import ConfirmForm, TokenForm, UserForm, problems_line

accounts_ui = Blueprint("accounts", __name__)


def _me():
    user = request_user()
    if user.id == 0:   # the bootstrap token has no account to manage
        abort(403, "the bootstrap token has no account; log in as a user")
    return user


@accounts_ui.route("/account", methods=["GET", "POST"])
def account():
    me = _me()
    form = TokenForm()
    new_token = None
    if form.validate_on_submit():
        new_token = accounts().create_token(me.id, form.label.data)
    return render_template("account.html", form=form, new_token=new_token,
                           tokens=accounts().list_tokens(me.id), revoke_form=ConfirmForm())


@accounts_ui.post("/account/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    if ConfirmForm().validate_on_submit() and accounts().revoke_token(_me().id, token_id):
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
    return render_template("users.html", form=form, users=accounts().list_users(),
                           delete_form=ConfirmForm()), status


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
