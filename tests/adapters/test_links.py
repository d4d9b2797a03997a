"""Signing links: stable ids, tokens only our secret can make."""

from __future__ import annotations

import pytest

from adapters.links import InvalidSignToken, read_sign_token, sign_link_id, sign_token


def test_link_id_is_stable_per_signer_and_document() -> None:
    """The same dossier, document and signer always give the same 32-hex id."""
    first = sign_link_id("0412345614-ls-2026-0141", "terms", "client")

    assert first == sign_link_id("0412345614-ls-2026-0141", "terms", "client")
    assert len(first) == 32
    assert first != sign_link_id("0412345614-ls-2026-0141", "attendance", "client")
    assert first != sign_link_id("0412345614-ls-2026-0141", "terms", "An Peeters")


def test_token_round_trip() -> None:
    """A token made with the secret gives back its link id."""
    token = sign_token("s3cret", "0123456789abcdef0123456789abcdef")

    assert read_sign_token("s3cret", token) == "0123456789abcdef0123456789abcdef"


def test_token_with_another_secret_is_refused() -> None:
    """A token signed with another secret is not valid."""
    token = sign_token("other", "0123456789abcdef0123456789abcdef")

    with pytest.raises(InvalidSignToken):
        read_sign_token("s3cret", token)


def test_tampered_token_is_refused() -> None:
    """Changing one character of a token's payload makes it invalid.

    Not the last character: base64's final character may carry padding bits
    that a change leaves without effect on the decoded signature.
    """
    token = sign_token("s3cret", "0123456789abcdef0123456789abcdef")
    middle = len(token) // 3
    tampered = (
        token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    )

    with pytest.raises(InvalidSignToken):
        read_sign_token("s3cret", tampered)
