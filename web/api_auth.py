"""Who calls `/api/dossiers`: staff, or a portal user with HTTP Basic.

Staff are let in exactly as the staff pages let them in (`web.staff`): a
loopback client that no proxy forwarded, or the `X-Dossier-Staff-Token`
header. Everyone else signs in on each request with a portal user's e-mail
and password (HTTP Basic, checked by `web.auth.authenticate`); without them,
or with wrong ones, the answer is 401 with a Basic challenge. Failed sign-ins
count per client address: after 10 in a minute the answer is 429 for a minute.

What the caller then sees is decided by `web.auth`: a provider user its own
provider's dossiers, staff all. Browsers send a cached Basic login along
with any site's form, so a POST that a browser marks as coming from another
site is refused (403).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

import structlog
from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from adapters.records import User
from web import auth
from web.auth import Role
from web.security import FailedAttempts
from web.staff import STAFF_TOKEN_HEADER, is_staff_request

log = structlog.get_logger(__name__)

REALM = "dossiers"
CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}"'}
FAILURES_PER_MINUTE = 10
NO_CREDENTIALS = (
    "sign in with a portal user's e-mail and password (HTTP Basic), "
    f"or call from this machine or with the {STAFF_TOKEN_HEADER} header"
)
TOO_MANY_FAILURES = "too many failed sign-ins; wait a minute and try again"
OTHER_SITE = "this request was sent from another site; call the API directly"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Caller:
    """Who is calling: a portal user, or staff let in by machine or token.

    Staff let in without a login get a staff `User` that is never stored, so
    that `web.auth` decides what they see like for any staff account.
    """

    user: User
    signed_in: bool  # False: staff by loopback or token

    @property
    def is_staff(self) -> bool:
        return self.user.role == Role.STAFF

    @property
    def provider_id(self) -> str:
        """A provider user's provider; staff have none."""
        return self.user.provider_id or ""


def failed_sign_ins() -> FailedAttempts:
    """The store of one app's failed Basic sign-ins; `create_app` keeps it."""
    return FailedAttempts("api-basic", per_minute=FAILURES_PER_MINUTE)


async def api_caller(request: Request) -> Caller:
    """The caller of an API route; 401 without a valid sign-in."""
    _refuse_other_sites(request)
    if is_staff_request(request):
        return Caller(_staff_without_login(), signed_in=False)

    credentials = _basic_credentials(request)
    if credentials is None:
        raise HTTPException(401, NO_CREDENTIALS, headers=CHALLENGE)
    failures: FailedAttempts = request.app.state.api_failures
    client = request.client.host if request.client else "unknown"
    if failures.blocked(client):
        log.warning("api.sign_in_rate_limited")
        raise HTTPException(429, TOO_MANY_FAILURES, headers={"Retry-After": "60"})

    user = await run_in_threadpool(_authenticate, request, *credentials)
    if user is None:
        failures.failed(client)
        log.info("api.sign_in_failed")
        raise HTTPException(401, auth.WRONG_LOGIN, headers=CHALLENGE)
    return Caller(user, signed_in=True)


ApiCaller = Annotated[Caller, Depends(api_caller)]


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """(e-mail, password) of an `Authorization: Basic` header, if readable."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    email, colon, password = decoded.partition(":")
    if not colon or not email or not password:
        return None
    return email, password


def _authenticate(request: Request, email: str, password: str) -> User | None:
    sessions = request.app.state.services.session_factory
    with sessions.begin() as session:  # a login may upgrade the stored hash
        return auth.authenticate(session, email, password)


def _staff_without_login() -> User:
    return User(user_id="", email="", role=Role.STAFF.value, provider_id=None)


def _refuse_other_sites(request: Request) -> None:
    """403 for a POST a browser sent from another site's page."""
    if request.method in SAFE_METHODS:
        return
    fetch_site = request.headers.get("sec-fetch-site", "")
    origin = request.headers.get("origin")
    if fetch_site in ("cross-site", "same-site") or (
        origin is not None and _origin(origin) not in _own_origins(request)
    ):
        log.info("api.other_site_refused")
        raise HTTPException(403, OTHER_SITE)


def _own_origins(request: Request) -> set[str]:
    base_url = str(request.app.state.settings.base_url)
    return {_origin(str(request.base_url)), _origin(base_url)}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
