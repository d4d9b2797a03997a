"""Portal accounts, logins and web sessions, and what each user may see.

Passwords are hashed with Argon2id. A web session is a random 32-byte token
in an HttpOnly cookie; the database keeps only its SHA-256, so a copy of the
records logs nobody in. Each session carries a CSRF token that every form
posts back.

Who sees what lives here and nowhere else (`visible_dossiers`,
`visible_dossier`, `visible_items`, `visible_item`): a provider user sees its
own provider's dossiers and documents, staff see all. Whatever a user may not
see answers 404, exactly like what does not exist, so guessing ids or keys
tells nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from adapters.records import ArchiveItem, Dossier, Provider, User, WebSession, utcnow

SESSION_LIFETIME = timedelta(hours=8)
MIN_PASSWORD_LENGTH = 12
WRONG_LOGIN = "e-mail or password is wrong"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # NUL, line breaks: in no address

# Argon2id with the library's defaults (RFC 9106's low-memory profile); tests
# swap in cheaper parameters, which `authenticate` then upgrades on login.
PASSWORD_HASHER = PasswordHasher()


class Role(StrEnum):
    PROVIDER = "provider"  # an employee of one provider
    STAFF = "staff"


class AccountError(ValueError):
    """An account that cannot be made as asked; the message says why."""


# --- accounts ----------------------------------------------------------------


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(
    session: Session,
    email: str,
    password: str,
    role: Role | str,
    provider_id: str | None = None,
) -> User:
    """Add a portal account; a provider user belongs to a known provider."""
    email = normalise_email(email)
    role = Role(role)
    if "@" not in email.strip("@") or _CONTROL.search(email):
        raise AccountError(f"'{email}' is not an e-mail address")
    if len(password.strip()) < MIN_PASSWORD_LENGTH:  # spaces alone do not count
        raise AccountError(
            f"the password is too short; use at least {MIN_PASSWORD_LENGTH} characters"
        )
    if role is Role.STAFF and provider_id is not None:
        raise AccountError("a staff account belongs to no provider; leave it out")
    if role is Role.PROVIDER and not provider_id:
        raise AccountError("a provider account needs its provider's number; give it")
    if role is Role.PROVIDER and session.get(Provider, provider_id) is None:
        raise AccountError(f"there is no provider '{provider_id}'; give a known one")
    if session.scalar(select(User.user_id).where(User.email == email)) is not None:
        raise AccountError(f"there is already an account for '{email}'")

    user = User(
        user_id=uuid.uuid4().hex,
        email=email,
        password_hash=PASSWORD_HASHER.hash(password),
        role=role.value,
        provider_id=provider_id,
        created_at=utcnow(),
        disabled=False,
    )
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    """Every portal account, staff first, then by provider and email."""
    query = select(User).order_by(User.role.desc(), User.provider_id, User.email)
    return list(session.scalars(query))


def disable_user(session: Session, email: str) -> bool:
    """Disable the account of `email` and end its web sessions.

    Returns False when it was disabled already; AccountError when there is
    no such account. The account stays (its history refers to it).
    """
    email = normalise_email(email)
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        raise AccountError(f"there is no account for '{email}'")
    session.execute(delete(WebSession).where(WebSession.user_id == user.user_id))
    if user.disabled:
        return False
    user.disabled = True
    session.flush()
    return True


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The enabled user with this email and password, or None.

    An unknown email costs the same hash check as a wrong password, so the
    answer's timing does not tell which accounts exist.
    """
    hasher = PASSWORD_HASHER
    user = None
    if not _CONTROL.search(email):  # no account has one; PostgreSQL takes no NUL
        user = session.scalar(select(User).where(User.email == normalise_email(email)))
    stored = user.password_hash if user is not None else _unknown_user_hash(hasher)
    try:
        hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled:
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return user


@cache
def _unknown_user_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_urlsafe(16))


# --- web sessions ------------------------------------------------------------


def start_session(
    session: Session, user: User, now: datetime | None = None
) -> tuple[str, WebSession]:
    """A new web session of `user`: the cookie's token and the stored row."""
    now = now or utcnow()
    session.execute(  # the user's expired sessions go as a new one starts
        delete(WebSession).where(
            WebSession.user_id == user.user_id, WebSession.expires_at <= now
        )
    )
    token = secrets.token_urlsafe(32)
    row = WebSession(
        session_id=_digest(token),
        user_id=user.user_id,
        created_at=now,
        expires_at=now + SESSION_LIFETIME,
        csrf_token=secrets.token_urlsafe(32),
    )
    session.add(row)
    session.flush()
    return token, row


def find_session(
    session: Session, token: str | None, now: datetime | None = None
) -> tuple[User, WebSession] | None:
    """The user and web session of a cookie's token, if still valid."""
    if not token:
        return None
    row = session.get(WebSession, _digest(token))
    if row is None or row.expires_at <= (now or utcnow()):
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    return user, row


def end_session(session: Session, token: str | None) -> None:
    """Forget the web session of a cookie's token; unknown tokens are ignored."""
    if token:
        row = session.get(WebSession, _digest(token))
        if row is not None:
            session.delete(row)


def same_token(expected: str, given: object) -> bool:
    """Whether a posted CSRF token is the expected one, in constant time."""
    return isinstance(given, str) and hmac.compare_digest(
        expected.encode(), given.encode()
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- who sees what -----------------------------------------------------------


def visible_dossiers(
    session: Session, user: User, provider_id: str | None = None
) -> list[Dossier]:
    """The dossiers `user` may list, newest first; staff may filter by provider."""
    query = select(Dossier).order_by(Dossier.created_at.desc(), Dossier.dossier_id)
    if user.role != Role.STAFF:
        query = query.where(Dossier.provider_id == _own_provider(user))
    elif provider_id:
        query = query.where(Dossier.provider_id == provider_id)
    return list(session.scalars(query))


def visible_dossier(session: Session, user: User, dossier_id: str) -> Dossier:
    """The dossier if `user` may see it; 404 otherwise, as if it did not exist."""
    dossier = session.get(Dossier, dossier_id)
    if dossier is None or not _sees(user, dossier.provider_id):
        raise HTTPException(404, f"there is no dossier '{dossier_id}'")
    return dossier


def visible_items(session: Session, user: User, dossier: Dossier) -> list[ArchiveItem]:
    """The archived documents of a dossier that `user` may see, oldest first."""
    query = (
        select(ArchiveItem)
        .where(ArchiveItem.dossier_id == dossier.dossier_id)
        .order_by(ArchiveItem.created_at, ArchiveItem.key)
    )
    if user.role != Role.STAFF:
        if not _sees(user, dossier.provider_id):
            return []
        query = query.where(ArchiveItem.container == _own_provider(user))
    return list(session.scalars(query))


def visible_item(session: Session, user: User, key: str) -> ArchiveItem:
    """The archived document if `user` may see it; 404 otherwise.

    A provider user needs both the document's container and its dossier to
    be its own provider's.
    """
    item = session.get(ArchiveItem, key)
    if item is None or not _sees(user, item.container):
        raise HTTPException(404, "there is no such document")
    if user.role != Role.STAFF:
        dossier = session.get(Dossier, item.dossier_id)
        if dossier is None or not _sees(user, dossier.provider_id):
            raise HTTPException(404, "there is no such document")
    return item


def _sees(user: User, provider_id: str) -> bool:
    return user.role == Role.STAFF or _own_provider(user) == provider_id


def _own_provider(user: User) -> str:
    """A provider user's provider; an account without one sees nothing."""
    return user.provider_id or ""
