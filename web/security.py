"""Security headers on every answer, and rate limits where people type secrets.

Signing links carry their token in the path, so no page may leak it through a
Referer header or a cache; the pages use no third-party assets, so the
content security policy allows only the site itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "cross-origin-opener-policy": "same-origin",
}
NO_STORE_PREFIXES = ("/sign/", "/portal", "/staff")


class SecurityHeaders:
    """Adds the headers above; HSTS too when the site is served over https."""

    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.headers = dict(HEADERS)
        if https:
            self.headers["strict-transport-security"] = "max-age=31536000"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = scope["path"].startswith(NO_STORE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (name.encode(), value.encode())
                    for name, value in self.headers.items()
                    if name.encode() not in present
                ]
                if no_store and b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RateLimit:
    """At most `per_minute` POSTs per client address to each guarded prefix.

    In memory, per process: behind N replicas the effective limit is N times
    higher, which still stops guessing at scale; a shared store (Redis) is a
    configuration of the `limits` library away.
    """

    def __init__(
        self, app: ASGIApp, *, prefixes: Iterable[str], per_minute: int = 10
    ) -> None:
        self.app = app
        self.prefixes = tuple(prefixes)
        self.item = RateLimitItemPerMinute(per_minute)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guarded = (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(self.prefixes)
        )
        if guarded:
            client = (scope.get("client") or ("unknown", 0))[0]
            prefix = next(p for p in self.prefixes if scope["path"].startswith(p))
            if not self.limiter.hit(self.item, prefix, client):
                log.warning("web.rate_limited", path_prefix=prefix)
                response = PlainTextResponse(
                    "Too many attempts; please wait a minute and try again.",
                    status_code=429,
                    headers={"retry-after": "60"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class FailedAttempts:
    """At most `per_minute` failed sign-ins per client address, then a wait.

    Unlike `RateLimit` only failures count, so a script that signs in right
    on every call is never slowed down; the same in-memory, per-process store.
    """

    def __init__(self, scope: str, *, per_minute: int = 10) -> None:
        self.scope = scope
        self.item = RateLimitItemPerMinute(per_minute)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def blocked(self, client: str) -> bool:
        """Whether the client used up its failures of the last minute."""
        return not self.limiter.test(self.item, self.scope, client)

    def failed(self, client: str) -> None:
        self.limiter.hit(self.item, self.scope, client)
