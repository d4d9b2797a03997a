"""Email addresses that mail can go to: one check for uploads, invoices and mails.

email-validator reads the address (RFC 5321/5322 syntax, IDNA for the domain)
without looking anything up. We send no SMTPUTF8 mail, so letters such as é
are refused before the @, while a domain with them is mailed in its ASCII
(IDNA) form.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


class InvalidAddress(ValueError):
    """Not a single plain email address that mail can go to."""


def mail_address(text: str) -> str:
    """`text` as an address mail can go to: ASCII, its domain in IDNA form.

    `an@bakkerij-peetérs.be` becomes `an@xn--bakkerij-peetrs-nnb.be`; `é`
    before the @ is refused. Raises InvalidAddress with email-validator's
    reason.
    """
    try:
        checked = validate_email(
            text.strip(), check_deliverability=False, allow_smtputf8=False
        )
    except EmailNotValidError as error:
        raise InvalidAddress(str(error)) from None
    return checked.ascii_email
