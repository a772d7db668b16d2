"""Accounts on a real SQLite database: hashed passwords, roles, hashed tokens, the first admin."""

from __future__ import annotations

import pytest

from core.accounts import AccountError, Accounts
from core.records import Records


@pytest.fixture
def accounts(tmp_path) -> Accounts:
    records = Records(f"sqlite:///{tmp_path / 'a.db'}")
    records.create_schema()
    return Accounts(records)


def test_passwords_are_hashed_and_checked(accounts):
    user = accounts.create_user("ann", "a long password", "operator")
    assert "a long password" not in user.password_hash and user.password_hash.startswith("scrypt:")
    assert accounts.authenticate("ann", "a long password").id == user.id
    assert accounts.authenticate("ann", "wrong password") is None
    assert accounts.authenticate("nobody", "a long password") is None


@pytest.mark.parametrize("username,password,role,words", [
    ("bad name!", "a long password", "viewer", "username"), ("bob", "short", "viewer", "password"),
    ("bob", "a long password", "root", "role")])
def test_bad_accounts_are_refused(accounts, username, password, role, words):
    with pytest.raises(AccountError, match=words):
        accounts.create_user(username, password, role)


def test_roles_include_weaker_ones(accounts):
    admin = accounts.create_user("root", "a long password", "admin")
    viewer = accounts.create_user("vic", "a long password", "viewer")
    assert admin.can("viewer") and admin.can("operator") and admin.can("admin")
    assert viewer.can("viewer") and not viewer.can("operator")


def test_tokens_are_stored_hashed_and_revocable(accounts):
    user = accounts.create_user("ann", "a long password", "viewer")
    token = accounts.create_token(user.id, "laptop")
    [row] = accounts.list_tokens(user.id)
    assert row.token_sha256 != token and len(row.token_sha256) == 64
    assert accounts.user_for_token(token).username == "ann"
    assert accounts.user_for_token(token + "x") is None and accounts.user_for_token("") is None
    assert accounts.revoke_token(user.id, row.id)
    assert accounts.user_for_token(token) is None


def test_first_admin_once_and_the_last_admin_stays(accounts):
    username, password, token = accounts.ensure_admin()
    assert accounts.authenticate(username, password).role == "admin"
    assert accounts.user_for_token(token).username == username
    assert accounts.ensure_admin() is None
    [admin] = accounts.list_users()
    with pytest.raises(AccountError, match="last admin"):
        accounts.delete_user(admin.id)


def test_vidfarm_user_adds_a_web_user(tmp_path):
    import re
    import subprocess
    import sys

    from tests.conftest import child_env

    env = child_env(VIDFARM_DATA_DIR=str(tmp_path))
    command = [sys.executable, "-m", "cli.main", "user", "ops", "--role", "operator"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    password = re.search(r"user\s*:\s*ops / (\S+)", run.stdout).group(1)
    token = re.search(r"token\s*:\s*(\S+)", run.stdout).group(1)
    records = Records(f"sqlite:///{tmp_path / 'vidfarm.db'}")
    accounts = Accounts(records)
    assert accounts.authenticate("ops", password).role == "operator"
    assert accounts.user_for_token(token).username == "ops"
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_a_new_password_or_role_ends_every_session_of_the_user(accounts):
    user = accounts.create_user("ann", "a long password", "viewer")
    cookie_id = user.get_id()
    assert accounts.user_for_session(cookie_id).username == "ann"
    accounts.change_password(user.id, "another long password")
    assert accounts.user_for_session(cookie_id) is None
    assert accounts.authenticate("ann", "another long password") and not accounts.authenticate("ann", "a long password")
    cookie_id = accounts.get_user(user.id).get_id()
    accounts.set_role(user.id, "operator")
    assert accounts.user_for_session(cookie_id) is None and accounts.get_user(user.id).role == "operator"
    cookie_id = accounts.get_user(user.id).get_id()
    accounts.rotate_session(user.id)                  # what logout does
    assert accounts.user_for_session(cookie_id) is None
    assert accounts.user_for_session(accounts.get_user(user.id).get_id()).username == "ann"


def test_password_and_role_changes_are_checked(accounts):
    admin = accounts.create_user("root", "a long password", "admin")
    with pytest.raises(AccountError, match="password"):
        accounts.change_password(admin.id, "short")
    with pytest.raises(AccountError, match="role"):
        accounts.set_role(admin.id, "root")
    with pytest.raises(AccountError, match="last admin"):
        accounts.set_role(admin.id, "viewer")
    with pytest.raises(AccountError, match="no such user"):
        accounts.change_password(999, "a long password")
    assert accounts.user_for_session(f"{admin.id}:") is None and accounts.user_for_session("x:y") is None


def test_user_ids_are_never_reused(accounts):
    """SQLite without AUTOINCREMENT hands a deleted highest id to the next user."""
    accounts.create_user("root", "a long password", "admin")
    temp = accounts.create_user("temp1", "a long password", "viewer")
    accounts.delete_user(temp.id)
    assert accounts.create_user("viewer2", "a long password", "viewer").id > temp.id
