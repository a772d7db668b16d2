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
