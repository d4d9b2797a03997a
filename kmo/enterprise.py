"""Belgian enterprise numbers (ondernemingsnummer): 10 digits, mod-97 check."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\D")


class InvalidEnterpriseNumber(ValueError):
    pass


def normalize(raw: str) -> str:
    """Return `0123.456.789` for any spelling (BE prefix, dots, spaces, 9 digits).

    Raises InvalidEnterpriseNumber with a message in the user's terms.
    """
    text = raw.strip().upper()
    if text.startswith("BE"):
        text = text[2:]
    digits = _DIGITS.sub("", text)
    if len(digits) == 9:  # numbers from before 2023 may omit the leading 0
        digits = "0" + digits
    if len(digits) != 10 or not re.fullmatch(r"[\d .\-]+", text.strip()):
        raise InvalidEnterpriseNumber(
            f"'{raw}' is not a Belgian enterprise number: expected 10 digits "
            "like 0123.456.789"
        )
    if digits[0] not in "01":
        raise InvalidEnterpriseNumber(
            f"'{raw}' is not a Belgian enterprise number: it must start with 0 or 1"
        )
    base, check = int(digits[:8]), int(digits[8:])
    if 97 - base % 97 != check:
        raise InvalidEnterpriseNumber(
            f"'{raw}' is not a valid enterprise number: the check digits do not "
            "match; please check for a typing error"
        )
    return f"{digits[:4]}.{digits[4:7]}.{digits[7:]}"


def is_valid(raw: str) -> bool:
    try:
        normalize(raw)
    except InvalidEnterpriseNumber:
        return False
    return True


def digits(number: str) -> str:
    """`0123.456.789` -> `0123456789`."""
    return _DIGITS.sub("", number)


def vat_number(number: str) -> str:
    """The VAT number of an enterprise: BE + its ten digits."""
    return "BE" + digits(normalize(number))
