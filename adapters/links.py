"""Emailed signing links: a stable link id per signer, carried in a signed token.

The token holds only the link id; the `sign_links` record says which dossier,
document and signer it stands for, when it expires and whether it was used.
The web app reads tokens with `read_sign_token` and the same secret.
"""

from __future__ import annotations

import hashlib

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SIGN_LINK_SALT = "sign-link"


class InvalidSignToken(ValueError):
    """A token that was not made with our secret, or is too old."""


def sign_link_id(dossier_id: str, document: str, signer: str) -> str:
    """The same id for the same signer of the same document of a dossier."""
    material = "\x1f".join((dossier_id, document, signer)).encode()
    return hashlib.sha256(material).hexdigest()[:32]


def sign_token(secret: str, link_id: str) -> str:
    return URLSafeTimedSerializer(secret, salt=SIGN_LINK_SALT).dumps({"l": link_id})


def read_sign_token(secret: str, token: str, max_age_seconds: int | None = None) -> str:
    """The link id in `token`; raises InvalidSignToken when forged or too old."""
    serializer = URLSafeTimedSerializer(secret, salt=SIGN_LINK_SALT)
    try:
        payload = serializer.loads(token, max_age=max_age_seconds)
    except SignatureExpired as error:
        raise InvalidSignToken("this signing link has expired") from error
    except BadSignature as error:
        raise InvalidSignToken("this signing link is not valid") from error
    if not isinstance(payload, dict) or not isinstance(payload.get("l"), str):
        raise InvalidSignToken("this signing link is not valid")
    return payload["l"]
