"""Which email addresses mail can go to, and in which form."""

from __future__ import annotations

import pytest

from kmo.addresses import InvalidAddress, mail_address


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("an.peeters@bakkerij-peeters.example", "an.peeters@bakkerij-peeters.example"),
        ("  an@peeters.be ", "an@peeters.be"),
        ("An.Peeters@Peeters.BE", "An.Peeters@peeters.be"),  # domains have no case
        ("an@bakkerij-peetérs.be", "an@xn--bakkerij-peetrs-nnb.be"),  # IDNA
        ("boekhouding+kmo@peeters.be", "boekhouding+kmo@peeters.be"),
    ],
)
def test_an_address_is_given_in_the_form_mail_goes_to(text: str, address: str):
    assert mail_address(text) == address


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("jérôme@bakkerij-peeters.be", "before the @-sign"),  # needs SMTPUTF8
        ("an@peeters", "period"),
        ("an peeters@peeters.be", "SPACE"),
        ("an@@peeters.be", "invalid characters: '@'"),
        ("An <an@peeters.be>", "angle brackets"),
        ("an@peeters.be, jan@peeters.be", "invalid characters: ','"),
        ("", "must have an @-sign"),
    ],
)
def test_an_address_mail_cannot_go_to_is_refused_with_the_reason(
    text: str, reason: str
):
    with pytest.raises(InvalidAddress, match=reason):
        mail_address(text)
