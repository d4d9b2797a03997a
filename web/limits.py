"""A cap on request bodies, so an upload never fills memory or disk.

The invoice itself is checked against `MAX_INVOICE_BYTES` by intake; this
cap only stops bodies that could not hold an acceptable invoice anyway.
"""

from __future__ import annotations

import re

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kmo.invoice import MAX_INVOICE_BYTES
from web.errors import error_body

# Room for the multipart boundaries and the upload's text fields.
FORM_OVERHEAD_BYTES = 256 * 1024


# A header number: ASCII digits only (str.isdigit takes any script's digits),
# and few enough that int() neither refuses nor takes long.
_HEADER_NUMBER = re.compile(r"[0-9]{1,18}")


def header_number(value: str) -> int | None:
    """The non-negative integer a header holds, or None when it holds none."""
    return int(value) if _HEADER_NUMBER.fullmatch(value) else None


def upload_body_limit() -> int:
    return MAX_INVOICE_BYTES + FORM_OVERHEAD_BYTES


def too_large_message() -> str:
    megabytes = MAX_INVOICE_BYTES / (1024 * 1024)
    return f"the invoice is too large; the limit is {megabytes:g} MB"


class BodySizeLimit:
    """ASGI middleware: answer 413 once a body passes `limit` bytes.

    The body is read before the app sees it, at most `limit` + one chunk.
    Paths matching `skip` are left to another limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        paths: tuple[str, ...] = ("/",),
        skip: re.Pattern[str] | None = None,
    ):
        self.app = app
        self.limit = limit
        self.paths = paths
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._applies(scope):
            await self.app(scope, receive, send)
            return

        if self._declared_length(scope) > self.limit:
            await self._too_large(scope, receive, send)
            return

        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        await self.app(scope, _replay(bytes(body), receive), send)

    def _applies(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] in ("POST", "PUT", "PATCH")
            and scope["path"].startswith(self.paths)
            and not (self.skip and self.skip.match(scope["path"]))
        )

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(error_body(too_large_message()), status_code=413)
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
