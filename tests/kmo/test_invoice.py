"""Invoice intake: hardened UBL reading, problems in the user's terms."""

import base64
import html
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmo.invoice import (
    MAX_INVOICE_BYTES,
    InvoiceRejected,
    check,
    extract_attachments,
    invoice_from_fields,
    read_ubl,
)
from kmo.models import DocumentType, Invoice, Kind, Problem, Severity

HERE = Path(__file__).resolve()
OUR_INVOICES = HERE.parents[1] / "fixtures" / "invoices"
# Public examples of other projects: read in place, never copied into the repo.
SHARED = HERE.parents[2] / ".." / "shared" / "fixtures"
NOT_SHARED = "../shared/fixtures not present: public Peppol examples are not committed"

OPEN_1P = "training-open-1p.xml"
INCOMPANY_10P = "training-incompany-10p-12m.xml"
ADVICE_6M = "advice-cyber-6m.xml"

ERROR, WARNING = Severity.ERROR, Severity.WARNING


def ours(name: str) -> bytes:
    return (OUR_INVOICES / name).read_bytes()


def variant(name: str, *replacements: tuple[str, str]) -> bytes:
    """One of our fixtures with text replaced; each old text must be there."""
    text = ours(name).decode()
    for old, new in replacements:
        assert old in text, f"{old!r} is not in {name}"
        text = text.replace(old, new)
    return text.encode()


def shared(folder: str, name: str) -> bytes:
    path = SHARED / folder / name
    if not path.is_file():
        pytest.skip(NOT_SHARED)
    return path.read_bytes()


def codes(invoice: Invoice) -> list[tuple[str, Severity]]:
    return [(p.code, p.severity) for p in invoice.problems]


def problem(invoice: Invoice, code: str) -> Problem:
    found = [p for p in invoice.problems if p.code == code]
    assert len(found) == 1, f"{code} in {codes(invoice)}"
    return found[0]


def value(invoice: Invoice, path: str) -> object:
    result: object = invoice
    for name in path.split("."):
        result = getattr(result, name)
    return result


# Our three invoices, field by field

FIELDS = [
    (OPEN_1P, "document_type", DocumentType.INVOICE),
    (OPEN_1P, "number", "LS-2026-0141"),
    (OPEN_1P, "issue_date", date(2026, 11, 20)),
    (OPEN_1P, "due_date", date(2026, 12, 20)),
    (OPEN_1P, "period_start", date(2026, 12, 8)),
    (OPEN_1P, "period_end", date(2026, 12, 8)),
    (OPEN_1P, "currency", "EUR"),
    (OPEN_1P, "supplier.name", "Leerhuis Schelde BV"),
    (OPEN_1P, "supplier.enterprise_number", "0412.345.614"),
    (OPEN_1P, "supplier.vat_number", "BE0412345614"),
    (OPEN_1P, "supplier.street", "Kaai 12"),
    (OPEN_1P, "supplier.postal_code", "2000"),
    (OPEN_1P, "supplier.city", "Antwerpen"),
    (OPEN_1P, "supplier.country", "BE"),
    (OPEN_1P, "customer.name", "Bakkerij Peeters BV"),
    (OPEN_1P, "customer.enterprise_number", "0511.223.355"),
    (OPEN_1P, "customer.vat_number", "BE0511223355"),
    (OPEN_1P, "customer.street", "Dorpsplein 4"),
    (OPEN_1P, "customer.postal_code", "2800"),
    (OPEN_1P, "customer.city", "Mechelen"),
    (OPEN_1P, "customer.country", "BE"),
    (OPEN_1P, "customer_contact.name", "An Peeters"),
    (OPEN_1P, "customer_contact.email", "an.peeters@bakkerij-peeters.example"),
    (OPEN_1P, "customer_contact.phone", "+32 15 00 00 01"),
    (OPEN_1P, "dv_number", "DV.O214567"),
    (OPEN_1P, "kind", Kind.TRAINING),
    (
        OPEN_1P,
        "notes",
        [
            "KMO-portefeuille: erkend dienstverlener DV.O214567",
            "Open opleiding, 1 deelnemer, thema digitalisering",
        ],
    ),
    (OPEN_1P, "participant_count", 1),
    (OPEN_1P, "participant_names", ["An Peeters"]),
    (OPEN_1P, "total_excl_vat", Decimal("395.00")),
    (OPEN_1P, "vat_amount", Decimal("82.95")),
    (OPEN_1P, "total_incl_vat", Decimal("477.95")),
    (OPEN_1P, "billing_reference", None),
    (
        OPEN_1P,
        "customization_id",
        "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0",
    ),
    (OPEN_1P, "attachments", []),
    (OPEN_1P, "problems", []),
    (INCOMPANY_10P, "document_type", DocumentType.INVOICE),
    (INCOMPANY_10P, "number", "LS-2026-0157"),
    (INCOMPANY_10P, "issue_date", date(2026, 11, 25)),
    (INCOMPANY_10P, "due_date", date(2026, 12, 25)),
    (INCOMPANY_10P, "period_start", date(2027, 1, 11)),
    (INCOMPANY_10P, "period_end", date(2027, 12, 13)),
    (INCOMPANY_10P, "currency", "EUR"),
    (INCOMPANY_10P, "supplier.name", "Leerhuis Schelde BV"),
    (INCOMPANY_10P, "supplier.enterprise_number", "0412.345.614"),
    (INCOMPANY_10P, "customer.name", "Metaalwerken Verhaegen NV"),
    (INCOMPANY_10P, "customer.enterprise_number", "0604.567.841"),
    (INCOMPANY_10P, "customer.vat_number", "BE0604567841"),
    (INCOMPANY_10P, "customer.city", "Aalst"),
    (INCOMPANY_10P, "customer_contact.name", "Koen Verhaegen"),
    (INCOMPANY_10P, "customer_contact.email", "koen@verhaegen-metaal.example"),
    (INCOMPANY_10P, "customer_contact.phone", "+32 53 00 00 02"),
    (INCOMPANY_10P, "dv_number", "DV.O214567"),
    (INCOMPANY_10P, "kind", Kind.TRAINING),
    (INCOMPANY_10P, "participant_count", 10),
    (INCOMPANY_10P, "participant_names", []),
    (INCOMPANY_10P, "total_excl_vat", Decimal("14500.00")),
    (INCOMPANY_10P, "vat_amount", Decimal("3045.00")),
    (INCOMPANY_10P, "total_incl_vat", Decimal("17545.00")),
    (INCOMPANY_10P, "problems", []),
    (ADVICE_6M, "document_type", DocumentType.INVOICE),
    (ADVICE_6M, "number", "CVA/26/031"),
    (ADVICE_6M, "issue_date", date(2026, 11, 30)),
    (ADVICE_6M, "due_date", date(2026, 12, 30)),
    (ADVICE_6M, "period_start", date(2026, 6, 1)),
    (ADVICE_6M, "period_end", date(2026, 11, 27)),
    (ADVICE_6M, "supplier.name", "Cyberveilig Advies CommV"),
    (ADVICE_6M, "supplier.enterprise_number", "0712.345.036"),
    (ADVICE_6M, "customer.name", "Drukkerij De Smet BV"),
    (ADVICE_6M, "customer.enterprise_number", "0433.221.103"),
    (ADVICE_6M, "customer_contact.name", "Sofie De Smet"),
    (ADVICE_6M, "customer_contact.email", "sofie.desmet@drukkerij-desmet.example"),
    (ADVICE_6M, "customer_contact.phone", "+32 56 00 00 03"),
    (ADVICE_6M, "dv_number", "DV.A109876"),
    (ADVICE_6M, "kind", Kind.ADVICE),
    (ADVICE_6M, "participant_count", None),
    (ADVICE_6M, "total_excl_vat", Decimal("6800.00")),
    (ADVICE_6M, "vat_amount", Decimal("1428.00")),
    (ADVICE_6M, "total_incl_vat", Decimal("8228.00")),
    (ADVICE_6M, "problems", []),
]


@pytest.mark.parametrize(
    ("name", "path", "expected"), FIELDS, ids=[f"{n}:{p}" for n, p, _ in FIELDS]
)
def test_our_invoices_read_field_by_field(name, path, expected):
    """Each field of our three invoices reads as written in the file."""
    invoice = read_ubl(ours(name), filename=name)

    assert value(invoice, path) == expected


def test_lines_of_the_open_training():
    """The line keeps its id, item name, quantity, unit, amount and note."""
    (line,) = read_ubl(ours(OPEN_1P)).lines

    assert line.line_id == "1"
    assert line.description == "Opleiding Excel voor gevorderden (7 lesuren)"
    assert line.quantity == Decimal("1")
    assert line.unit_code == "C62"
    assert line.amount_excl_vat == Decimal("395.00")
    assert line.notes == ["Deelnemer: An Peeters"]


def test_lines_of_the_advice():
    """The advice's single line reads with its amount."""
    (line,) = read_ubl(ours(ADVICE_6M)).lines

    assert line.description == "Cybersecurity-advies, 6 maanden begeleiding"
    assert line.amount_excl_vat == Decimal("6800.00")


# Problems in the user's terms


def test_missing_client_email_is_an_error_to_fix_at_upload():
    """Without a client email the dossier cannot start; the message says so."""
    data = variant(
        INCOMPANY_10P,
        (
            "<cbc:ElectronicMail>koen@verhaegen-metaal.example</cbc:ElectronicMail>",
            "",
        ),
    )

    invoice = read_ubl(data)

    assert invoice.problems == [
        Problem(
            "missing_client_email",
            "customer_contact.email",
            "invoice LS-2026-0157 has no client email; add it at upload",
            ERROR,
        )
    ]


def test_missing_dv_number_is_an_error():
    """Without a DV number in the notes the dossier cannot start."""
    data = variant(
        OPEN_1P,
        ("<cbc:Note>KMO-portefeuille: erkend dienstverlener DV.O214567</cbc:Note>", ""),
    )

    invoice = read_ubl(data)

    assert invoice.dv_number is None
    assert invoice.kind is None
    assert problem(invoice, "missing_dv_number") == Problem(
        "missing_dv_number",
        "dv_number",
        "invoice LS-2026-0141 has no KMO-portefeuille DV number (DV.O… or DV.A…) "
        "in the invoice notes; add it at upload",
        ERROR,
    )


@pytest.mark.parametrize(
    "spelling", ["DV O 214567", "dv.o214567", "DV-O-214567", "DV.O 214567", "DVO214567"]
)
def test_dv_number_spellings_are_normalised(spelling):
    """Spaces, dashes and lower case in the DV number are tolerated."""
    data = variant(OPEN_1P, ("dienstverlener DV.O214567", f"dienstverlener {spelling}"))

    invoice = read_ubl(data)

    assert invoice.dv_number == "DV.O214567"
    assert invoice.kind is Kind.TRAINING


def test_dv_number_in_a_line_note_is_found():
    """The DV number may be in any note, also a line's."""
    data = variant(
        ADVICE_6M,
        ("<cbc:Note>Erkend dienstverlener KMO-portefeuille DV.A109876</cbc:Note>", ""),
        ("<cbc:ID>1</cbc:ID>", "<cbc:ID>1</cbc:ID><cbc:Note>DV.A109876</cbc:Note>"),
    )

    assert read_ubl(data).dv_number == "DV.A109876"


def test_two_different_dv_numbers_are_not_guessed():
    """Two DV numbers give one error and no DV number."""
    data = variant(
        OPEN_1P, ("thema digitalisering", "thema digitalisering, zie ook DV.A109876")
    )

    invoice = read_ubl(data)

    assert invoice.dv_number is None
    assert codes(invoice) == [("ambiguous_dv_number", ERROR)]
    assert problem(invoice, "ambiguous_dv_number").message == (
        "invoice LS-2026-0141 names several DV numbers (DV.O214567, DV.A109876); "
        "give the one of this dossier at upload"
    )


def test_invalid_client_enterprise_number_uses_the_message_of_normalize():
    """A client number failing mod-97 is an error quoting the check's message."""
    data = variant(OPEN_1P, ("0511223355", "0511223356"))

    invoice = read_ubl(data)

    assert invoice.customer.enterprise_number is None
    assert invoice.problems == [
        Problem(
            "invalid_enterprise_number",
            "customer.enterprise_number",
            "invoice LS-2026-0141, client: '0511223356' is not a valid enterprise "
            "number: the check digits do not match; please check for a typing error",
            ERROR,
        )
    ]


def test_enterprise_number_from_vat_number_only():
    """A BE VAT number in PartyTaxScheme gives the enterprise number."""
    data = variant(
        OPEN_1P,
        ('<cbc:EndpointID schemeID="0208">0511223355</cbc:EndpointID>', ""),
        ('<cbc:CompanyID schemeID="0208">0511223355</cbc:CompanyID>', ""),
    )

    invoice = read_ubl(data)

    assert invoice.customer.enterprise_number == "0511.223.355"
    assert invoice.problems == []


def test_old_9956_scheme_is_a_belgian_enterprise_number():
    """The endpoint scheme 9956 used before 0208 also gives the number."""
    data = variant(
        OPEN_1P,
        (
            '<cbc:EndpointID schemeID="0208">0511223355</cbc:EndpointID>',
            '<cbc:EndpointID schemeID="9956">0511223355</cbc:EndpointID>',
        ),
        ('<cbc:CompanyID schemeID="0208">0511223355</cbc:CompanyID>', ""),
        ("<cbc:CompanyID>BE0511223355</cbc:CompanyID>", ""),
    )

    assert read_ubl(data).customer.enterprise_number == "0511.223.355"


def test_two_different_enterprise_numbers_keep_the_legal_one_with_a_warning():
    """The legal registration wins over another endpoint, and staff is told."""
    data = variant(
        OPEN_1P,
        (
            '<cbc:EndpointID schemeID="0208">0511223355</cbc:EndpointID>',
            '<cbc:EndpointID schemeID="0208">0433221103</cbc:EndpointID>',
        ),
    )

    invoice = read_ubl(data)

    assert invoice.customer.enterprise_number == "0511.223.355"
    assert codes(invoice) == [("enterprise_numbers_differ", WARNING)]


def test_missing_belgian_ids_are_errors_for_both_parties():
    """No Belgian id for provider or client: two errors."""
    data = variant(
        OPEN_1P,
        ('schemeID="0208"', 'schemeID="0088"'),
        ("<cbc:CompanyID>BE", "<cbc:CompanyID>NL"),
    )

    invoice = read_ubl(data)

    assert codes(invoice) == [
        ("missing_provider_enterprise_number", ERROR),
        ("missing_client_enterprise_number", ERROR),
    ]
    assert problem(invoice, "missing_client_enterprise_number").message == (
        "invoice LS-2026-0141 has no Belgian enterprise number for the client; "
        "add it at upload"
    )


def test_missing_period_start_is_an_error():
    """Without a start date the application deadline is unknown: error."""
    data = variant(OPEN_1P, ("<cbc:StartDate>2026-12-08</cbc:StartDate>", ""))

    invoice = read_ubl(data)

    assert invoice.problems == [
        Problem(
            "missing_period_start",
            "period_start",
            "invoice LS-2026-0141 has no start date of the training or advice "
            "(invoice period); add it at upload",
            ERROR,
        )
    ]


def test_missing_number_and_dates_are_reported():
    """Missing number and issue date each give a problem."""
    data = variant(
        OPEN_1P,
        ("<cbc:ID>LS-2026-0141</cbc:ID>", ""),
        ("<cbc:IssueDate>2026-11-20</cbc:IssueDate>", ""),
    )

    invoice = read_ubl(data)

    assert invoice.problems == [
        Problem(
            "missing_number",
            "number",
            "the invoice has no invoice number; add it at upload",
            ERROR,
        ),
        Problem(
            "missing_issue_date",
            "issue_date",
            "the invoice has no issue date; add it at upload",
            WARNING,
        ),
    ]


def test_unreadable_date_is_one_problem_not_two():
    """A start date that is not a date says so, without also saying 'missing'."""
    data = variant(OPEN_1P, ("<cbc:StartDate>2026-12-08", "<cbc:StartDate>2026-13-45"))

    invoice = read_ubl(data)

    assert invoice.period_start is None
    assert invoice.problems == [
        Problem(
            "invalid_date",
            "period_start",
            "invoice LS-2026-0141: '2026-13-45' is not a date like 2026-12-31 "
            "(period start); add it at upload",
            ERROR,
        )
    ]


def test_period_ending_before_it_starts_is_an_error():
    """An end date before the start date is refused."""
    data = variant(OPEN_1P, ("<cbc:EndDate>2026-12-08", "<cbc:EndDate>2026-12-01"))

    assert codes(read_ubl(data)) == [("invalid_period", ERROR)]


def test_client_email_that_is_not_an_address_is_an_error():
    """A client email without @ cannot be mailed."""
    data = variant(
        OPEN_1P,
        ("an.peeters@bakkerij-peeters.example", "an.peeters at bakkerij-peeters"),
    )

    assert codes(read_ubl(data)) == [("invalid_client_email", ERROR)]


def test_non_eur_currency_is_a_warning():
    """An invoice in another currency starts, with a warning."""
    data = variant(
        OPEN_1P,
        (
            "<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>",
            "<cbc:DocumentCurrencyCode>USD</cbc:DocumentCurrencyCode>",
        ),
    )

    invoice = read_ubl(data)

    assert invoice.currency == "USD"
    assert invoice.problems == [
        Problem(
            "currency_not_eur",
            "currency",
            "invoice LS-2026-0141 is in USD, not in euro; the KMO-portefeuille works "
            "in euro, check the amounts",
            WARNING,
        )
    ]


def test_missing_customization_id_is_only_a_warning():
    """An invoice that does not claim Peppol BIS 3 is read, with a warning."""
    data = re.sub(
        rb"<cbc:CustomizationID>.*?</cbc:CustomizationID>", b"", ours(OPEN_1P)
    )

    invoice = read_ubl(data)

    assert invoice.number == "LS-2026-0141"
    assert invoice.problems == [
        Problem(
            "not_peppol_bis3",
            "customization_id",
            "invoice LS-2026-0141 is not a Peppol BIS Billing 3.0 e-invoice "
            "(CustomizationID: none); the fields found were read, check them "
            "against the invoice",
            WARNING,
        )
    ]


OPEN_TOTAL = '<cbc:TaxExclusiveAmount currencyID="EUR">395.00</cbc:TaxExclusiveAmount>'


@pytest.mark.parametrize("raw", ["NaN", "1e999999", "Infinity", "3,95", "zero"])
def test_unreadable_project_amount_is_an_error_naming_the_field(raw):
    """A project amount that is not a number stops the dossier: no EUR 0,00."""
    data = variant(
        OPEN_1P,
        (
            OPEN_TOTAL,
            f'<cbc:TaxExclusiveAmount currencyID="EUR">{raw}</cbc:TaxExclusiveAmount>',
        ),
    )

    invoice = read_ubl(data)

    assert invoice.total_excl_vat is None
    assert codes(invoice) == [("invalid_amount", ERROR)]
    found = problem(invoice, "invalid_amount")
    assert found.field == "total_excl_vat"
    assert "project amount excl. VAT" in found.message
    assert f"'{raw}'" in found.message


def test_missing_project_amount_is_an_error():
    """An invoice without LegalMonetaryTotal/TaxExclusiveAmount cannot start."""
    invoice = read_ubl(variant(OPEN_1P, (OPEN_TOTAL, "")))

    assert invoice.total_excl_vat is None
    assert codes(invoice) == [("missing_total", ERROR)]
    assert "project amount excl. VAT" in problem(invoice, "missing_total").message


def test_unreadable_vat_amount_stays_a_warning():
    """Only the project amount stops a dossier; a bad incl. VAT total warns."""
    data = variant(
        OPEN_1P,
        (
            'currencyID="EUR">477.95</cbc:TaxInclusiveAmount>',
            'currencyID="EUR">NaN</cbc:TaxInclusiveAmount>',
        ),
    )

    invoice = read_ubl(data)

    assert invoice.total_excl_vat == Decimal("395.00")
    assert codes(invoice) == [("invalid_amount", WARNING)]


def test_negative_amount_on_an_invoice_is_an_error():
    """An invoice (not a credit note) for a negative amount is refused."""
    data = variant(
        OPEN_1P,
        (
            OPEN_TOTAL,
            '<cbc:TaxExclusiveAmount currencyID="EUR">-395.00</cbc:TaxExclusiveAmount>',
        ),
    )

    invoice = read_ubl(data)

    assert invoice.total_excl_vat == Decimal("-395.00")
    assert codes(invoice) == [("negative_amount", ERROR)]
    assert "credit note" in problem(invoice, "negative_amount").message
    check(invoice)
    assert codes(invoice) == [("negative_amount", ERROR)]


def test_negative_amount_on_a_credit_note_is_fine():
    """A credit note may well carry a negative total: it only cancels."""
    data = variant(
        OPEN_1P,
        (
            OPEN_TOTAL,
            '<cbc:TaxExclusiveAmount currencyID="EUR">-395.00</cbc:TaxExclusiveAmount>',
        ),
        ("<cbc:InvoiceTypeCode>380<", "<cbc:InvoiceTypeCode>381<"),
    )

    invoice = read_ubl(data)

    assert invoice.document_type is DocumentType.CREDIT_NOTE
    assert "negative_amount" not in [p.code for p in invoice.problems]


@pytest.mark.parametrize("raw", ["NaN", "1e999999", "-395", "  "])
def test_form_amount_that_cannot_be_read_is_an_error(raw):
    """The PDF upload's total_excl_vat field follows the same rule as UBL."""
    invoice = invoice_from_fields({**FORM, "total_excl_vat": raw})

    assert invoice.total_excl_vat is None
    assert [p.field for p in invoice.errors] == ["total_excl_vat"]


def test_whitespace_around_values_is_tolerated():
    """Spaces and line breaks around values do not matter."""
    data = variant(
        OPEN_1P,
        ("<cbc:ID>LS-2026-0141</cbc:ID>", "<cbc:ID>\n   LS-2026-0141 \n </cbc:ID>"),
        ("<cbc:StartDate>2026-12-08<", "<cbc:StartDate>\t2026-12-08\n<"),
        (
            'currencyID="EUR">395.00</cbc:TaxExclusiveAmount>',
            'currencyID="EUR"> 395.00 </cbc:TaxExclusiveAmount>',
        ),
        ('unitCode="C62">1<', 'unitCode=" C62 "> 1 <'),
    )

    invoice = read_ubl(data)

    assert invoice.number == "LS-2026-0141"
    assert invoice.period_start == date(2026, 12, 8)
    assert invoice.total_excl_vat == Decimal("395.00")
    assert invoice.participant_count == 1
    assert invoice.problems == []


def test_comment_inside_a_value_is_skipped():
    """An XML comment inside the number is not part of it."""
    data = variant(
        OPEN_1P,
        ("<cbc:ID>LS-2026-0141</cbc:ID>", "<cbc:ID>LS-2026-<!--x-->0141</cbc:ID>"),
    )

    assert read_ubl(data).number == "LS-2026-0141"


# Participants


def test_participants_from_the_note_when_lines_are_not_in_persons():
    """'10 deelnemers' in a note counts when the line is in another unit."""
    data = variant(INCOMPANY_10P, ('unitCode="C62">10<', 'unitCode="DAY">12<'))

    invoice = read_ubl(data)

    assert invoice.participant_count == 10
    assert invoice.problems == []


def test_participants_from_the_lines_when_no_note_counts_them():
    """Without a count in the notes, the person lines are summed."""
    data = variant(
        INCOMPANY_10P,
        ("10 deelnemers, ", ""),
        (
            "</cac:InvoiceLine>",
            "</cac:InvoiceLine><cac:InvoiceLine><cbc:ID>2</cbc:ID>"
            '<cbc:InvoicedQuantity unitCode="C62">2</cbc:InvoicedQuantity>'
            "</cac:InvoiceLine>",
        ),
    )

    assert read_ubl(data).participant_count == 12


def test_note_and_lines_disagreeing_keep_the_note_with_a_warning():
    """When the note says 10 and the lines 12, 10 is kept and staff is told."""
    data = variant(INCOMPANY_10P, ('unitCode="C62">10<', 'unitCode="C62">12<'))

    invoice = read_ubl(data)

    assert invoice.participant_count == 10
    assert invoice.problems == [
        Problem(
            "participant_count_unclear",
            "participant_count",
            "invoice LS-2026-0157: the notes say 10 participants but the lines "
            "count 12; 10 was taken, check it",
            WARNING,
        )
    ]


def test_several_participant_names_in_one_note():
    """'Deelnemers: A, B' gives both names."""
    data = variant(
        OPEN_1P,
        ("Deelnemer: An Peeters", "Deelnemers: An Peeters, Jan Janssens ;Els Claes"),
    )

    assert read_ubl(data).participant_names == [
        "An Peeters",
        "Jan Janssens",
        "Els Claes",
    ]


def test_training_without_any_participant_count_is_a_warning():
    """A training that does not say how many follow it starts with a warning."""
    data = variant(
        INCOMPANY_10P,
        ("10 deelnemers, ", ""),
        ('unitCode="C62">10<', 'unitCode="DAY">12<'),
    )

    invoice = read_ubl(data)

    assert invoice.participant_count is None
    assert invoice.problems == [
        Problem(
            "missing_participant_count",
            "participant_count",
            "invoice LS-2026-0157 does not say how many participants follow the "
            "training; add it at upload",
            WARNING,
        )
    ]


# Credit notes

CREDIT_NOTE = """<?xml version="1.0" encoding="UTF-8"?>
<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
  xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
  xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:ID>LS-2026-CN-0003</cbc:ID>
  <cbc:IssueDate>2026-12-01</cbc:IssueDate>
  {reference}
  <cac:CreditNoteLine>
    <cbc:ID>1</cbc:ID>
    <cbc:CreditedQuantity unitCode="C62">1</cbc:CreditedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">395.00</cbc:LineExtensionAmount>
  </cac:CreditNoteLine>
</CreditNote>"""
REFERENCE = (
    "<cac:BillingReference><cac:InvoiceDocumentReference><cbc:ID>LS-2026-0141"
    "</cbc:ID></cac:InvoiceDocumentReference></cac:BillingReference>"
)


def test_credit_note_names_the_invoice_it_cancels():
    """A credit note with a billing reference has no problem, whatever else lacks."""
    invoice = read_ubl(CREDIT_NOTE.format(reference=REFERENCE).encode())

    assert invoice.document_type is DocumentType.CREDIT_NOTE
    assert invoice.number == "LS-2026-CN-0003"
    assert invoice.billing_reference == "LS-2026-0141"
    assert invoice.lines[0].quantity == Decimal("1")
    assert invoice.problems == []


def test_credit_note_without_billing_reference_is_an_error():
    """A credit note that does not name its invoice cannot cancel a dossier."""
    invoice = read_ubl(CREDIT_NOTE.format(reference="").encode())

    assert invoice.problems == [
        Problem(
            "missing_billing_reference",
            "billing_reference",
            "credit note LS-2026-CN-0003 does not say which invoice it cancels; ask "
            "the provider for a credit note that names the invoice number",
            ERROR,
        )
    ]


def test_invoice_with_credit_note_type_code_is_a_credit_note():
    """An Invoice root with type code 381 is read as a credit note."""
    data = variant(
        OPEN_1P,
        ("<cbc:InvoiceTypeCode>380<", "<cbc:InvoiceTypeCode>381<"),
        ("<cbc:BuyerReference>", REFERENCE + "<cbc:BuyerReference>"),
    )

    invoice = read_ubl(data)

    assert invoice.document_type is DocumentType.CREDIT_NOTE
    assert invoice.billing_reference == "LS-2026-0141"
    assert invoice.problems == []


# check() again after intake merges upload fields


def test_check_twice_gives_the_same_problems():
    """check() can run again without repeating problems."""
    data = variant(OPEN_1P, ("0511223355", "0511223356"), ("DV.O214567", "DV.O"))
    invoice = read_ubl(data)
    before = list(invoice.problems)

    check(invoice)

    assert invoice.problems == before
    assert codes(invoice) == [
        ("invalid_enterprise_number", ERROR),
        ("missing_dv_number", ERROR),
    ]


def test_check_after_merging_upload_fields_clears_what_they_fixed():
    """Filling the client number and DV number removes their problems."""
    data = variant(OPEN_1P, ("0511223355", "0511223356"), ("DV.O214567", "DV.O"))
    invoice = read_ubl(data)

    invoice.customer.enterprise_number = "BE 0511.223.355"
    invoice.dv_number = "dv o 214567"
    check(invoice)

    assert invoice.customer.enterprise_number == "0511.223.355"
    assert invoice.dv_number == "DV.O214567"
    assert invoice.kind is Kind.TRAINING
    assert invoice.problems == []


def test_check_refuses_an_invalid_merged_enterprise_number():
    """A merged number failing mod-97 is emptied, with the check's message."""
    invoice = read_ubl(ours(ADVICE_6M))

    invoice.supplier.enterprise_number = "0712345037"
    check(invoice)

    assert invoice.supplier.enterprise_number is None
    assert invoice.problems == [
        Problem(
            "invalid_enterprise_number",
            "supplier.enterprise_number",
            "invoice CVA/26/031, provider: '0712345037' is not a valid enterprise "
            "number: the check digits do not match; please check for a typing error",
            ERROR,
        )
    ]


# PDF invoices: the upload form's fields

FORM = {
    "number": "LS-2026-0141",
    "issue_date": "2026-11-20",
    "period_start": "08/12/2026",
    "period_end": "2026-12-08",
    "supplier_enterprise_number": "BE0412345614",
    "supplier_name": "Leerhuis Schelde BV",
    "customer_enterprise_number": "0511.223.355",
    "customer_name": "Bakkerij Peeters BV",
    "contact_name": "An Peeters",
    "contact_email": "an.peeters@bakkerij-peeters.example",
    "contact_phone": "+32 15 00 00 01",
    "dv_number": "DV O 214567",
    "participants": "1",
    "total_excl_vat": "395,00",
}


def test_form_fields_give_the_same_invoice():
    """The upload form's fields give the invoice, normalised, without problems."""
    invoice = invoice_from_fields(FORM)

    assert invoice.document_type is DocumentType.INVOICE
    assert invoice.number == "LS-2026-0141"
    assert invoice.issue_date == date(2026, 11, 20)
    assert invoice.period_start == date(2026, 12, 8)
    assert invoice.period_end == date(2026, 12, 8)
    assert invoice.supplier.enterprise_number == "0412.345.614"
    assert invoice.supplier.name == "Leerhuis Schelde BV"
    assert invoice.customer.enterprise_number == "0511.223.355"
    assert invoice.customer.name == "Bakkerij Peeters BV"
    assert invoice.customer_contact.name == "An Peeters"
    assert invoice.customer_contact.email == "an.peeters@bakkerij-peeters.example"
    assert invoice.customer_contact.phone == "+32 15 00 00 01"
    assert invoice.dv_number == "DV.O214567"
    assert invoice.kind is Kind.TRAINING
    assert invoice.participant_count == 1
    assert invoice.total_excl_vat == Decimal("395.00")
    assert invoice.currency == "EUR"
    assert invoice.problems == []


def test_form_without_client_email_gives_the_same_problem_as_ubl():
    """A PDF upload without client email gets the UBL reader's problem."""
    invoice = invoice_from_fields({**FORM, "contact_email": "  "})

    assert invoice.problems == [
        Problem(
            "missing_client_email",
            "customer_contact.email",
            "invoice LS-2026-0141 has no client email; add it at upload",
            ERROR,
        )
    ]


def test_form_with_bad_values_says_which():
    """Bad enterprise number, DV number, date, amount and count are each named."""
    invoice = invoice_from_fields(
        {
            **FORM,
            "customer_enterprise_number": "0511223356",
            "dv_number": "DV.X12",
            "period_end": "31/02/2026",
            "total_excl_vat": "1.234,56",
            "participants": "twee",
        }
    )

    assert codes(invoice) == [
        ("invalid_date", WARNING),
        ("invalid_participant_count", WARNING),
        ("invalid_amount", ERROR),
        ("invalid_enterprise_number", ERROR),
        ("invalid_dv_number", ERROR),
    ]
    assert problem(invoice, "invalid_dv_number").message == (
        "invoice LS-2026-0141: 'DV.X12' is not a KMO-portefeuille DV number like "
        "DV.O214567 or DV.A109876; correct it at upload"
    )


def test_empty_form_lists_what_to_fill_in():
    """An empty form gives the errors that stop a dossier."""
    invoice = invoice_from_fields({})

    assert [p.code for p in invoice.errors] == [
        "missing_number",
        "missing_period_start",
        "missing_provider_enterprise_number",
        "missing_client_enterprise_number",
        "missing_client_email",
        "missing_total",
        "missing_dv_number",
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(sorted(FORM)),
        st.text(max_size=40),
    )
)
def test_form_never_raises(fields):
    """Any text in the form's fields gives an invoice, never an exception."""
    assert isinstance(invoice_from_fields(fields), Invoice)


# Hostile and broken files


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Invoice [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
 xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
 <cbc:ID>&lol9;</cbc:ID>
</Invoice>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Invoice [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
 xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
 <cbc:ID>&secret;</cbc:ID>
</Invoice>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Invoice SYSTEM "http://attacker.invalid/invoice.dtd">
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
 xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
 <cbc:ID>X</cbc:ID>
</Invoice>"""

DOCTYPE_REFUSED = (
    "evil.xml contains a DOCTYPE; e-invoices never need one, and it can hide "
    "entities or references to other files, so the file was refused; send the "
    "e-invoice as your accounting software exports it"
)


@pytest.mark.parametrize(
    "data",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD],
    ids=["billion-laughs", "external-entity", "external-dtd"],
)
def test_documents_with_a_doctype_are_refused(data):
    """Entities and DTDs are refused before anything is read or fetched."""
    with pytest.raises(InvoiceRejected) as error:
        read_ubl(data, filename="evil.xml")

    assert str(error.value) == DOCTYPE_REFUSED
    assert "root:" not in str(error.value)


def test_doctype_in_utf16_is_refused_too():
    """The DOCTYPE check does not depend on the file's encoding."""
    data = (
        EXTERNAL_ENTITY.decode()
        .replace('version="1.0"?', 'version="1.0" encoding="UTF-16"?')
        .encode("utf-16")
    )

    with pytest.raises(InvoiceRejected, match="contains a DOCTYPE"):
        read_ubl(data, filename="evil.xml")


def test_attachments_of_a_doctype_document_are_refused():
    """extract_attachments is as hardened as read_ubl."""
    with pytest.raises(InvoiceRejected, match="contains a DOCTYPE"):
        extract_attachments(EXTERNAL_ENTITY)


@pytest.mark.parametrize("data", [b"", b"  \n\t "], ids=["empty", "blank"])
def test_empty_file_is_refused(data):
    """An empty file says it is empty."""
    with pytest.raises(InvoiceRejected) as error:
        read_ubl(data, filename="leeg.xml")

    assert str(error.value) == "leeg.xml is empty; upload the invoice file again"


def test_oversized_file_is_refused_before_parsing():
    """A file over 5 MB is refused by its size."""
    data = ours(OPEN_1P) + b"<!--" + b" " * MAX_INVOICE_BYTES + b"-->"

    with pytest.raises(InvoiceRejected) as error:
        read_ubl(data, filename="groot.xml")

    assert str(error.value) == (
        "groot.xml is 5.0 MB; an e-invoice is at most 5 MB, so this is not a "
        "single invoice"
    )


def test_file_of_exactly_the_maximum_size_is_read():
    """The cap is inclusive: 5 MB exactly is still read."""
    head = ours(OPEN_1P) + b"<!--"
    data = head + b" " * (MAX_INVOICE_BYTES - len(head) - 3) + b"-->"

    assert read_ubl(data).number == "LS-2026-0141"


def test_not_xml_is_refused():
    """Plain text is not an e-invoice."""
    with pytest.raises(InvoiceRejected) as error:
        read_ubl(b"Factuur LS-2026-0141, 395 EUR", filename="factuur.txt")

    assert str(error.value).startswith("factuur.txt is not a readable XML e-invoice (")
    assert str(error.value).endswith(
        "); send the UBL file again, or upload the invoice as a PDF"
    )


def test_pdf_is_refused_with_a_hint_to_upload_it_as_pdf():
    """A PDF sent as e-invoice is pointed to the PDF upload."""
    with pytest.raises(InvoiceRejected) as error:
        read_ubl(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", filename="factuur.xml")

    assert str(error.value) == (
        "factuur.xml is a PDF, not an XML e-invoice; upload it as a PDF invoice and "
        "fill in the invoice fields"
    )


def test_truncated_xml_is_refused():
    """An invoice cut off halfway is not read."""
    with pytest.raises(InvoiceRejected, match="^half.xml is not a readable XML"):
        read_ubl(ours(OPEN_1P)[:2000], filename="half.xml")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>',
            "order.xml is not a UBL invoice or credit note: its root element is "
            "'Order' in namespace 'urn:oasis:names:specification:ubl:schema:xsd:"
            "Order-2'",
        ),
        (
            b"<Invoice><ID>1</ID></Invoice>",
            "order.xml is not a UBL invoice or credit note: its root element is "
            "'Invoice' in namespace 'none'",
        ),
    ],
    ids=["ubl-order", "invoice-without-namespace"],
)
def test_wrong_root_is_refused(data, expected):
    """Only UBL Invoice and CreditNote roots are read."""
    with pytest.raises(InvoiceRejected) as error:
        read_ubl(data, filename="order.xml")

    assert str(error.value) == expected


def test_iso_8859_1_invoice_is_read():
    """A declared ISO-8859-1 encoding is honoured: é stays é."""
    text = ours(OPEN_1P).decode().replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    data = text.replace("Bakkerij Peeters BV", "Brasserie Hélène BV").encode("latin-1")

    invoice = read_ubl(data)

    assert invoice.customer.name == "Brasserie Hélène BV"
    assert invoice.problems == []


def test_utf16_invoice_is_read():
    """A UTF-16 invoice with its byte order mark is read."""
    text = ours(OPEN_1P).decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')

    assert read_ubl(text.encode("utf-16")).number == "LS-2026-0141"


def test_bytes_invalid_for_the_declared_encoding_are_refused():
    """Latin-1 bytes in a file that says UTF-8 are refused, not misread."""
    data = ours(OPEN_1P).replace(b"Bakkerij Peeters BV", b"Brasserie H\xe9l\xe8ne BV")

    with pytest.raises(InvoiceRejected) as error:
        read_ubl(data, filename="factuur.xml")

    assert str(error.value) == (
        "factuur.xml is not a readable XML e-invoice (its characters do not match "
        "the encoding it declares); send the UBL file again, or upload the invoice "
        "as a PDF"
    )


def test_html_in_names_is_kept_as_plain_text():
    """Markup in a name is text; escaping is the renderer's job."""
    data = variant(
        OPEN_1P,
        (
            "<cbc:Name>Bakkerij Peeters BV</cbc:Name>",
            "<cbc:Name>&lt;script&gt;alert('x')&lt;/script&gt; &amp; Co</cbc:Name>",
        ),
        (
            "<cbc:Name>An Peeters</cbc:Name>",
            "<cbc:Name><![CDATA[<b>An</b>]]></cbc:Name>",
        ),
    )

    invoice = read_ubl(data)

    assert invoice.customer.name == "<script>alert('x')</script> & Co"
    assert invoice.customer_contact.name == "<b>An</b>"


def test_processing_instructions_are_dropped():
    """A processing instruction inside a value is not part of it."""
    data = variant(
        OPEN_1P, ("<cbc:ID>LS-2026-0141<", "<cbc:ID>LS-2026-0141<?php echo 1; ?><")
    )

    assert read_ubl(data).number == "LS-2026-0141"


# Embedded documents


def with_attachments(*documents: str) -> bytes:
    return variant(
        OPEN_1P, ("<cac:InvoicePeriod>", "".join(documents) + "<cac:InvoicePeriod>")
    )


def document(content: bytes | str, *, filename=None, mime="application/pdf", ref="A1"):
    encoded = (
        content if isinstance(content, str) else base64.b64encode(content).decode()
    )
    name = f' filename="{html.escape(filename)}"' if filename is not None else ""
    return (
        f"<cac:AdditionalDocumentReference><cbc:ID>{ref}</cbc:ID><cac:Attachment>"
        f'<cbc:EmbeddedDocumentBinaryObject mimeCode="{html.escape(mime)}"{name}>'
        f"{encoded}"
        "</cbc:EmbeddedDocumentBinaryObject></cac:Attachment>"
        "</cac:AdditionalDocumentReference>"
    )


def test_path_traversal_in_attachment_name_is_cut_to_the_file_name():
    """'../../etc/passwd' is stored as 'passwd', nothing above it."""
    data = with_attachments(
        document(b"not a password", filename="../../etc/passwd", mime="text/plain")
    )

    assert extract_attachments(data) == [("passwd", "text/plain", b"not a password")]
    assert [a.filename for a in read_ubl(data).attachments] == ["passwd"]


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("..\\..\\windows\\win.ini", "win.ini"),
        (".htaccess", "htaccess"),
        ("..", "A1.pdf"),
        ("<script>alert(1)</script>.pdf", "script.pdf"),
        ("offerte\u202etxt.pdf", "offerte_txt.pdf"),
        ("Offerte Hélène.pdf", "Offerte Hélène.pdf"),
    ],
)
def test_attachment_names_are_made_safe(filename, expected):
    """Directories, hidden names and odd characters leave the file name."""
    data = with_attachments(document(b"%PDF-1.4", filename=filename))

    assert [name for name, _, _ in extract_attachments(data)] == [expected]


def test_duplicate_attachment_names_are_made_unique():
    """Two documents with the same name both survive under unique names."""
    data = with_attachments(
        document(b"one", filename="offerte.pdf"),
        document(b"two", filename="OFFERTE.pdf"),
        document(b"three", filename="offerte.pdf"),
    )

    assert extract_attachments(data) == [
        ("offerte.pdf", "application/pdf", b"one"),
        ("OFFERTE-2.pdf", "application/pdf", b"two"),
        ("offerte-3.pdf", "application/pdf", b"three"),
    ]


def test_attachment_without_file_name_is_named_after_its_reference():
    """Without a file name the reference id and the mime type name it."""
    data = with_attachments(document(b"%PDF-1.4", ref="offerte/2026-17"))

    assert extract_attachments(data) == [
        ("2026-17.pdf", "application/pdf", b"%PDF-1.4")
    ]


def test_attachment_without_any_name_gets_a_numbered_one():
    """Without file name or reference id the position names the document."""
    data = with_attachments(
        document(b"x", ref=""), document(b"y", filename="/", ref=" ")
    )

    assert [name for name, _, _ in extract_attachments(data)] == [
        "attachment-1.pdf",
        "attachment-2.pdf",
    ]


def test_odd_mime_type_becomes_octet_stream():
    """A mime type that is not one is replaced by application/octet-stream."""
    data = with_attachments(
        document(b"x", filename="a.bin", mime='text/html"><script>')
    )

    assert extract_attachments(data) == [("a.bin", "application/octet-stream", b"x")]


def test_damaged_attachment_is_left_out_with_a_warning():
    """A document that is not base64 is not kept, and staff is told."""
    data = with_attachments(
        document("@@@ not base64 @@@", filename="offerte.pdf"),
        document(b"%PDF-1.4", filename="ok.pdf"),
    )

    invoice = read_ubl(data)

    assert [a.filename for a in invoice.attachments] == ["ok.pdf"]
    assert invoice.attachments[0].size == 8
    assert invoice.problems == [
        Problem(
            "unreadable_attachment",
            "attachments",
            "the embedded document offerte.pdf is empty or damaged and was not kept; "
            "ask the provider to send it separately",
            WARNING,
        )
    ]


def test_attachment_with_line_broken_base64_is_decoded():
    """Base64 spread over lines with indentation decodes."""
    encoded = base64.b64encode(b"%PDF-1.4 " + b"x" * 100).decode()
    broken = "\n      ".join(encoded[i : i + 20] for i in range(0, len(encoded), 20))
    data = with_attachments(document(broken, filename="offerte.pdf"))

    assert extract_attachments(data)[0][2] == b"%PDF-1.4 " + b"x" * 100


# Public examples from other projects (not committed)

PUBLIC = [
    ("peppol", "Vat-category-S.xml"),
    ("peppol", "base-creditnote-correction.xml"),
    ("peppol", "base-example.xml"),
    ("peppol", "vat-category-E.xml"),
    ("peppol", "vat-category-Z.xml"),
    ("realworld", "ConnectingEurope__eInvoicing-EN16931__ubl-tc434-example1.xml"),
    ("realworld", "OCA__edi__efff_BE0505890632_160421_Inv_16117778.xml"),
    ("realworld", "OpenPEPPOL__peppol-bis-invoice-3__Allowance-example.xml"),
    ("realworld", "josemmo__einvoicing__peppol-base.xml"),
    ("realworld", "odoo__odoo__test_import_embedded_pdf.xml"),
    ("realworld", "odoo__odoo__testcase01_minimal_invoice.xml"),
    ("realworld", "odoo__odoo__testcase04_creditnote_consumer_empties.xml"),
]


@pytest.mark.parametrize(("folder", "name"), PUBLIC, ids=[n for _, n in PUBLIC])
def test_public_examples_give_fields_or_clear_problems(folder, name):
    """Every public example is read: a number, and problems with a message."""
    invoice = read_ubl(shared(folder, name), filename=name)

    assert invoice.number
    assert invoice.issue_date is not None
    for found in invoice.problems:
        assert found.code and found.field and found.message
        assert "None" not in found.message


def test_peppol_base_example_lacks_the_belgian_fields():
    """The OpenPEPPOL base example reads, and says what a KMO dossier lacks."""
    invoice = read_ubl(shared("peppol", "base-example.xml"))

    assert invoice.number == "Snippet1"
    assert invoice.issue_date == date(2017, 11, 13)
    assert invoice.due_date == date(2017, 12, 1)
    assert invoice.customer.name == "BuyerTradingName AS"
    assert invoice.customer_contact.email == "lj@buyer.se"
    assert invoice.total_excl_vat == Decimal("1325")
    assert invoice.total_incl_vat == Decimal("1656.25")
    assert codes(invoice) == [
        ("missing_period_start", ERROR),
        ("missing_period_end", WARNING),
        ("missing_provider_enterprise_number", ERROR),
        ("missing_client_enterprise_number", ERROR),
        ("missing_dv_number", ERROR),
    ]


def test_peppol_credit_note_correction():
    """The Peppol credit note is a credit note with its billing reference."""
    invoice = read_ubl(shared("peppol", "base-creditnote-correction.xml"))

    assert invoice.document_type is DocumentType.CREDIT_NOTE
    assert invoice.number == "Snippet1"
    assert invoice.billing_reference == "Snippet1"
    assert [line.quantity for line in invoice.lines] == [Decimal("7"), Decimal("-3")]
    assert invoice.problems == []


def test_peppol_gbp_invoice_warns_about_the_currency():
    """The zero-rated GBP example warns that it is not in euro."""
    invoice = read_ubl(shared("peppol", "vat-category-Z.xml"))

    assert invoice.currency == "GBP"
    assert ("currency_not_eur", WARNING) in codes(invoice)


def test_odoo_credit_note_has_its_billing_reference():
    """Odoo's Belgian credit note is a credit note naming invoice 2019000002."""
    name = "odoo__odoo__testcase04_creditnote_consumer_empties.xml"
    invoice = read_ubl(shared("realworld", name))

    assert invoice.document_type is DocumentType.CREDIT_NOTE
    assert invoice.number == "2019000004"
    assert invoice.billing_reference == "2019000002"
    assert invoice.problems == []


def test_odoo_minimal_invoice_old_scheme_and_bad_client_number():
    """9956 gives the provider's number; the client's fails mod-97: an error."""
    invoice = read_ubl(
        shared("realworld", "odoo__odoo__testcase01_minimal_invoice.xml")
    )

    assert invoice.supplier.enterprise_number == "0123.456.749"
    assert invoice.customer.enterprise_number is None
    assert problem(invoice, "invalid_enterprise_number").message == (
        "invoice 2019000001, client: '0214168947' is not a valid enterprise number: "
        "the check digits do not match; please check for a typing error"
    )


def test_odoo_embedded_pdfs_keep_all_three_with_unique_names():
    """Three embedded PDFs, two with the same name, all kept under unique names."""
    data = shared("realworld", "odoo__odoo__test_import_embedded_pdf.xml")

    documents = extract_attachments(data)

    assert [(name, mime) for name, mime, _ in documents] == [
        ("FAC_2023_00052.pdf", "application/pdf"),
        ("FAC_2023_00053.pdf", "application/pdf"),
        ("FAC_2023_00053-2.pdf", "application/pdf"),
    ]
    assert all(content.startswith(b"%PDF-1.3") for _, _, content in documents)
    assert [a.filename for a in read_ubl(data).attachments] == [
        "FAC_2023_00052.pdf",
        "FAC_2023_00053.pdf",
        "FAC_2023_00053-2.pdf",
    ]


def test_oca_ubl_20_invoice_is_not_peppol_bis3():
    """The Belgian e-FFF UBL 2.0 invoice reads, with a not-Peppol-BIS-3 warning."""
    name = "OCA__edi__efff_BE0505890632_160421_Inv_16117778.xml"
    invoice = read_ubl(shared("realworld", name))

    assert invoice.number == "16117778"
    assert invoice.customization_id == "1.0"
    assert invoice.supplier.enterprise_number == "0505.890.632"
    assert invoice.customer.enterprise_number == "0882.555.389"
    assert invoice.due_date == date(2016, 4, 28)
    assert problem(invoice, "not_peppol_bis3") == Problem(
        "not_peppol_bis3",
        "customization_id",
        "invoice 16117778 is not a Peppol BIS Billing 3.0 e-invoice "
        "(CustomizationID: 1.0); the fields found were read, check them against "
        "the invoice",
        WARNING,
    )
    assert [(a.filename, a.mime_type) for a in invoice.attachments] == [
        ("BE0505890632_160421_Inv_16117778.pdf", "application/pdf")
    ]


def test_en16931_example_without_peppol_customization_warns():
    """The CEN example claims EN 16931 only: read, with a warning."""
    name = "ConnectingEurope__eInvoicing-EN16931__ubl-tc434-example1.xml"
    invoice = read_ubl(shared("realworld", name))

    assert invoice.number == "12115118"
    assert len(invoice.lines) == 20
    assert ("not_peppol_bis3", WARNING) in codes(invoice)


# Fuzzing: only an Invoice or InvoiceRejected, never anything else

SEEDS = [ours(OPEN_1P), ours(INCOMPANY_10P), ours(ADVICE_6M)]
XML_CHARACTERS = st.characters(blacklist_categories=("Cs", "Cc"))
VALUES = [
    "",
    " ",
    "DV.O214567 DV.A109876",
    "dv a 1098765",
    "2026-02-30",
    "2026-12-08+01:00",
    "0511223356",
    "BE0511223355",
    "-1",
    "1e5",
    "NaN",
    "Infinity",
    "99999999999999999999999",
    "0.5",
    "10 deelnemers",
    "9999 deelnemers",
    "Deelnemers: ,;,",
    "../../etc/passwd",
]
TOKENS = [
    b"<!DOCTYPE x>",
    b"&lol;",
    b"<![CDATA[",
    b"]]>",
    b"\x00",
    b"\xff\xfe",
    b"<cbc:Note>DV.O214567</cbc:Note>",
    b'schemeID="0208"',
    b"<cbc:ID>",
    b"</cac:Party>",
    b"-->",
    b"<?",
]


@st.composite
def mutated_invoices(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        position = draw(st.integers(min_value=0, max_value=len(data) - 1))
        # Mostly values, so that many mutants stay well-formed and reach the fields.
        action = draw(st.sampled_from(["byte", "token", "delete"] + ["value"] * 5))
        if action == "byte":
            data[position] = draw(st.integers(min_value=0, max_value=255))
        elif action == "token":
            data[position:position] = draw(st.sampled_from(TOKENS))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 64))]
        else:
            data = bytearray(replace_a_value(bytes(data), draw))
    return bytes(data)


def replace_a_value(data: bytes, draw) -> bytes:
    """Replace one element's text by random text, kept well-formed."""
    values = list(re.finditer(rb">([^<>]+)</cbc:", data))
    if not values:
        return data
    match = draw(st.sampled_from(values))
    text = draw(
        st.one_of(st.sampled_from(VALUES), st.text(XML_CHARACTERS, max_size=30))
    )
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    new = escaped.encode("utf-8", "surrogatepass")
    return data[: match.start(1)] + new + data[match.end(1) :]


def read_or_reject(data: bytes) -> None:
    try:
        invoice = read_ubl(data)
    except InvoiceRejected as error:
        assert str(error)
        return
    assert isinstance(invoice, Invoice)
    assert isinstance(extract_attachments(data), list)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_give_an_invoice_or_a_rejection(data):
    """Random bytes never raise anything but InvoiceRejected."""
    read_or_reject(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_invoices())
def test_mutated_invoices_give_an_invoice_or_a_rejection(data):
    """Our invoices, mutated, never raise anything but InvoiceRejected."""
    read_or_reject(data)
