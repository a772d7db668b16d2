"""User accounts, roles and per-user API tokens.

Passwords are hashed with Werkzeug's ``generate_password_hash`` (scrypt, salted). API tokens
are random 32-byte strings shown to their owner once; only their SHA-256 is stored, which is
enough for secrets of that entropy and lets a request find its token by an indexed lookup.

A browser session names its user by ``"<id>:<session token>"`` (``User.get_id``, kept in the
signed session cookie). The token changes on logout, password change and role change, so
every cookie issued before stops working at once; a deleted user's row is gone, and ids are
never reused (SQLite AUTOINCREMENT, PostgreSQL's sequence), so no later user inherits a cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, delete, false, func, select, update
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from core.models import Base

if TYPE_CHECKING:     # only named in annotations: core.records opens the schema, which imports this
    from core.records import Records

# Each role includes the ones after it: admin > operator > viewer.
ROLES = ("admin", "operator", "viewer")
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_PASSWORD = 10


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message is fit to show a user."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _new_session_token() -> str:
    return secrets.token_urlsafe(32)


class User(Base):
    __tablename__ = "users"
    # Without AUTOINCREMENT SQLite gives the next user the id of a deleted one with the highest id.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    session_token: Mapped[str] = mapped_column(String(64), default=_new_session_token)
    # Set by an admin's reset (the password is a one-time one): the next login must choose a new one.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    def can(self, role: str) -> bool:
        """True when this user's role is ``role`` or a stronger one."""
        return ROLES.index(self.role) <= ROLES.index(role)

    # Flask-Login's user protocol, without importing Flask into core.
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    """Users and tokens in the records database."""

    def __init__(self, records: Records):
        self.records = records
        # Our tables are on the records' metadata and in its migrations: create_schema
        # (safe when many processes open a database at once) makes or upgrades them too.
        records.create_schema()

    # --- users -------------------------------------------------------------------------
    def create_user(self, username: str, password: str, role: str) -> User:
        if not _USERNAME.match(username or ""):
            raise AccountError("a username is 1-64 letters, digits, '.', '_' or '-'")
        _check_role(role)
        _check_password(password)
        with self.records.session() as s:
            if s.scalar(select(User).where(User.username == username)) is not None:
                raise AccountError(f"user {username} already exists")
            user = User(username=username, password_hash=generate_password_hash(password), role=role)
            s.add(user)
        return user

    def get_user(self, user_id: int) -> User | None:
        with self.records.session() as s:
            return s.get(User, user_id)

    def list_users(self) -> list[User]:
        with self.records.session() as s:
            return list(s.scalars(select(User).order_by(User.username)))

    def count_admins(self) -> int:
        with self.records.session() as s:
            return s.scalar(select(func.count()).select_from(User).where(User.role == "admin")) or 0

    def delete_user(self, user_id: int) -> None:
        with self.records.session() as s:
            user = s.get(User, user_id)
            if user is None:
                raise AccountError("no such user")
            if user.role == "admin" and self.count_admins() <= 1:
                raise AccountError("the last admin cannot be deleted")
            s.execute(delete(ApiToken).where(ApiToken.user_id == user_id))
            s.delete(user)

    def user_for_session(self, session_id: str) -> User | None:
        """The user a session cookie names (``User.get_id``), if its token is still theirs."""
        user_id, _, token = (session_id or "").partition(":")
        user = self.get_user(int(user_id)) if user_id.isdigit() and token else None
        if user is None or not hmac.compare_digest(user.session_token.encode(), token.encode()):
            return None
        return user

    def rotate_session(self, user_id: int, **changes) -> None:
        """A new session token for the user (with ``changes`` to the row in the same write):
        every session cookie issued before stops working."""
        with self.records.session() as s:
            changed = s.execute(update(User).where(User.id == user_id)
                                .values(session_token=_new_session_token(), **changes))
            if changed.rowcount == 0:
                raise AccountError("no such user")

    def change_password(self, user_id: int, password: str) -> None:
        _check_password(password)
        self.rotate_session(user_id, password_hash=generate_password_hash(password), must_change_password=False)

    def change_own_password(self, user_id: int, current: str, new: str) -> None:
        """A user's own change: the current password is required (a session left open on a
        shared screen is not enough). Every session of theirs ends (``rotate_session``)."""
        user = self.get_user(user_id)
        if user is None or not check_password_hash(user.password_hash, current or ""):
            raise AccountError("the current password is wrong")
        if new == current:
            raise AccountError("the new password is the current one")
        self.change_password(user_id, new)

    def reset_password(self, user_id: int) -> str:
        """An admin's reset: a random one-time password, returned here and never again; the
        user must choose their own at the next login, and every session of theirs ends."""
        password = secrets.token_urlsafe(12)
        self.rotate_session(user_id, password_hash=generate_password_hash(password), must_change_password=True)
        return password

    def set_role(self, user_id: int, role: str) -> None:
        _check_role(role)
        user = self.get_user(user_id)
        if user is not None and user.role == "admin" and role != "admin" and self.count_admins() <= 1:
            raise AccountError("the last admin cannot lose the admin role")
        self.rotate_session(user_id, role=role)

    def authenticate(self, username: str, password: str) -> User | None:
        with self.records.session() as s:
            user = s.scalar(select(User).where(User.username == username))
        if user is None:
            # Hash anyway, so a wrong name takes as long as a wrong password.
            check_password_hash(_dummy_hash(), password)
            return None
        return user if check_password_hash(user.password_hash, password) else None

    # --- tokens ------------------------------------------------------------------------
    def create_token(self, user_id: int, label: str = "api") -> str:
        """A new token for a user; the plain token is returned here and never again."""
        token = secrets.token_urlsafe(32)
        with self.records.session() as s:
            s.add(ApiToken(user_id=user_id, label=(label or "api")[:64], token_sha256=_digest(token)))
        return token

    def user_for_token(self, token: str) -> User | None:
        if not token:
            return None
        with self.records.session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_sha256 == _digest(token)))
            return s.get(User, row.user_id) if row else None

    def list_tokens(self, user_id: int) -> list[ApiToken]:
        with self.records.session() as s:
            return list(s.scalars(select(ApiToken).where(ApiToken.user_id == user_id)
                                  .order_by(ApiToken.created_at)))

    def revoke_token(self, user_id: int, token_id: int) -> bool:
        with self.records.session() as s:
            result = s.execute(delete(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))
            return result.rowcount > 0

    # --- first start -------------------------------------------------------------------
    def ensure_admin(self, username: str = "admin") -> tuple[str, str, str] | None:
        """Create the first admin with a random password and token when there is none.
        Returns (username, password, token) once; None when an admin already exists."""
        if self.count_admins():
            return None
        password = secrets.token_urlsafe(12)
        user = self.create_user(username, password, "admin")
        return username, password, self.create_token(user.id, "first start")


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return generate_password_hash("not a real password")
