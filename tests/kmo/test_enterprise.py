"""Belgian enterprise numbers: spelling tolerated, mod-97 check enforced."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmo.enterprise import InvalidEnterpriseNumber, is_valid, normalize


def test_plain_ten_digits_are_formatted():
    """Ten digits with valid check digits come back as 0123.456.789."""
    assert normalize("0412345614") == "0412.345.614"


def test_vat_prefix_is_dropped():
    """A VAT number (BE + ten digits) gives the enterprise number."""
    assert normalize("BE0412345614") == "0412.345.614"


def test_lowercase_prefix_dots_and_spaces_are_tolerated():
    """'be 0412.345.614' is the same enterprise number."""
    assert normalize(" be 0412.345.614 ") == "0412.345.614"


def test_nine_digits_get_the_leading_zero():
    """A pre-2023 number written with nine digits gets its leading 0."""
    assert normalize("412.345.614") == "0412.345.614"


def test_wrong_check_digits_are_refused_in_the_users_terms():
    """A typing error in the check digits says so."""
    with pytest.raises(InvalidEnterpriseNumber) as error:
        normalize("0412345615")
    assert str(error.value) == (
        "'0412345615' is not a valid enterprise number: the check digits do not "
        "match; please check for a typing error"
    )


def test_letters_are_refused():
    """Letters inside the number are not an enterprise number."""
    with pytest.raises(InvalidEnterpriseNumber) as error:
        normalize("04123A5614")
    assert str(error.value) == (
        "'04123A5614' is not a Belgian enterprise number: expected 10 digits "
        "like 0123.456.789"
    )


def test_first_digit_must_be_zero_or_one():
    """An enterprise number starts with 0 or 1."""
    with pytest.raises(InvalidEnterpriseNumber) as error:
        normalize("2000000024")
    assert str(error.value) == (
        "'2000000024' is not a Belgian enterprise number: it must start with 0 or 1"
    )


def test_too_short_is_refused():
    """Eight digits are not an enterprise number."""
    assert is_valid("04123456") is False


@settings(max_examples=300, deadline=None)
@given(base=st.integers(min_value=0, max_value=19_999_999))
def test_computed_check_digits_validate(base):
    """For any 8-digit base starting with 0 or 1, 97 - base mod 97 validates."""
    number = f"{base:08d}{97 - base % 97:02d}"

    assert normalize(number) == f"{number[:4]}.{number[4:7]}.{number[7:]}"


@settings(max_examples=300, deadline=None)
@given(
    base=st.integers(min_value=0, max_value=19_999_999),
    position=st.integers(min_value=0, max_value=9),
    shift=st.integers(min_value=1, max_value=9),
)
def test_any_single_digit_change_fails(base, position, shift):
    """Changing any one digit of a valid number makes it invalid."""
    number = f"{base:08d}{97 - base % 97:02d}"
    changed = (int(number[position]) + shift) % 10
    typo = number[:position] + str(changed) + number[position + 1 :]

    assert is_valid(typo) is False
