"""REST API for accounts: change your own password; (admins) list users, change a role, reset
a password to a one-time one."""

from __future__ import annotations

from apiflask import APIBlueprint, abort

from core.accounts import AccountError, User
from core.models import iso_utc
from web.api import error_responses, found_or_404
from web.auth import account_user, accounts, token_auth
from web.schemas import NoQuery, PasswordChangeIn, PasswordResetOut, UserOut, UserPatchIn

users_api = APIBlueprint("users_api", __name__, url_prefix="/api/v1", tag="accounts")


def user_view(user: User) -> dict:
    return {"id": user.id, "username": user.username, "role": user.role,
            "must_change_password": user.must_change_password,
            "created_at": iso_utc(user.created_at)}


def user_or_404(user_id: int) -> User:
    return found_or_404(accounts().get_user(user_id), f"no user {user_id}")


@users_api.post("/account/password")
@users_api.auth_required(token_auth, roles=["viewer"])
@users_api.input(PasswordChangeIn, location="json", arg_name="body")
@users_api.output({}, status_code=204)
@users_api.doc(summary="Change your own password (the current one required)",
               description="Every browser session of yours ends; API tokens stay.",
               responses=error_responses(400, 403))
def change_own_password(body: dict):
    try:
        accounts().change_own_password(account_user().id, body["current_password"], body["new_password"])
    except AccountError as exc:
        abort(400, str(exc))
    return "", 204


@users_api.get("/users")
@users_api.auth_required(token_auth, roles=["admin"])
@users_api.input(NoQuery, location="query", arg_name="_query")
@users_api.output(UserOut(many=True))
@users_api.doc(summary="Every user", responses=error_responses(400, 403))
def list_users(_query):
    return [user_view(user) for user in accounts().list_users()]


@users_api.patch("/users/<int:user_id>")
@users_api.auth_required(token_auth, roles=["admin"])
@users_api.input(UserPatchIn, location="json", arg_name="body")
@users_api.output(UserOut)
@users_api.doc(summary="Change a user's role (their sessions end)", responses=error_responses(400, 403, 404))
def change_role(user_id: int, body: dict):
    user_or_404(user_id)
    try:
        accounts().set_role(user_id, body["role"])
    except AccountError as exc:
        abort(400, str(exc))
    return user_view(user_or_404(user_id))


@users_api.post("/users/<int:user_id>/password-reset")
@users_api.auth_required(token_auth, roles=["admin"])
@users_api.output(PasswordResetOut)
@users_api.doc(summary="Reset a user's password to a one-time one, returned this once",
               description="Their sessions end; at their next login they must choose their own password.",
               responses=error_responses(403, 404))
def reset_password(user_id: int):
    user = user_or_404(user_id)
    return {"username": user.username, "password": accounts().reset_password(user_id)}
