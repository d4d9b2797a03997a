"""Invoice intake: read a Peppol BIS 3.0 UBL invoice or credit note, or upload fields.

The file comes from outside, so the reader trusts nothing in it: no DTD, no
entities, no network, a size cap. A file that cannot be read at all raises
`InvoiceRejected`; everything else that is missing or wrong becomes a `Problem`
on the invoice, in the user's terms, and the reader never guesses a value.

`check()` holds the rules both readers share (UBL and the PDF upload form), so
intake can merge upload fields into an invoice and check it again.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from lxml import etree

from kmo.addresses import InvalidAddress, mail_address
from kmo.enterprise import InvalidEnterpriseNumber, digits, normalize
from kmo.models import (
    Attachment,
    Contact,
    DocumentType,
    Invoice,
    InvoiceLine,
    Kind,
    Party,
    Problem,
    Severity,
)

MAX_INVOICE_BYTES = 5 * 1024 * 1024

_UBL = "urn:oasis:names:specification:ubl:schema:xsd:"
_INVOICE_ROOT = f"{{{_UBL}Invoice-2}}Invoice"
_CREDIT_NOTE_ROOT = f"{{{_UBL}CreditNote-2}}CreditNote"
_NS = {
    "cac": f"{_UBL}CommonAggregateComponents-2",
    "cbc": f"{_UBL}CommonBasicComponents-2",
}
_PEPPOL_BIS3 = "urn:fdc:peppol.eu:2017:poacc:billing:3.0"
_CREDIT_NOTE_TYPE = "381"  # UNCL1001 "credit note", also sent on an Invoice root

# Peppol identifier schemes: 0208 is the Belgian enterprise number, 9956 its
# older code, 9925 the Belgian VAT number (BE + the same ten digits).
_BE_ENTERPRISE_SCHEMES = frozenset({"0208", "9956", "9925"})
# UN/ECE rec. 20 units a provider uses to count people: C62 "one", IE "person".
_PERSON_UNITS = frozenset({"C62", "IE"})

_DV_NUMBER = re.compile(r"\bDV\s?[.:-]?\s?([OA])\s?[.-]?\s?(\d{6})(?!\d)", re.I)
_PARTICIPANT_COUNT = re.compile(r"\b(\d{1,4}) (?:deelnemers?|participants?)\b", re.I)
_PARTICIPANT_NAMES = re.compile(r"^(?:deelnemers?|participants?) ?: ?(.+)$", re.I)
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:Z|[+-]\d{2}:\d{2})?")
_FORM_DATE = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})")  # Belgian d/m/yyyy
_DECIMAL = re.compile(r"[+-]?(?:\d{1,15}(?:\.\d{0,10})?|\.\d{1,10})")
_FORM_AMOUNT = re.compile(r"(\d{1,12})(?:[.,](\d{1,2}))?")
_EXCESSIVE_DEPTH = re.compile(r"Excessive depth in document: (\d+)")
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_EXTENSIONS = {
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/tiff": ".tif",
    "text/csv": ".csv",
    "text/plain": ".txt",
    "text/xml": ".xml",
    "application/xml": ".xml",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
}

_ERROR, _WARNING = Severity.ERROR, Severity.WARNING

# What `check()` asks of an invoice: field, code, what the user calls it, severity.
_REQUIRED = (
    ("number", "missing_number", "invoice number", _ERROR),
    ("issue_date", "missing_issue_date", "issue date", _WARNING),
    (
        "period_start",
        "missing_period_start",
        "start date of the training or advice (invoice period)",
        _ERROR,
    ),
    (
        "period_end",
        "missing_period_end",
        "end date of the training or advice (invoice period)",
        _WARNING,
    ),
    ("supplier.name", "missing_provider_name", "provider name", _WARNING),
    (
        "supplier.enterprise_number",
        "missing_provider_enterprise_number",
        "Belgian enterprise number for the provider",
        _ERROR,
    ),
    ("customer.name", "missing_client_name", "client name", _WARNING),
    (
        "customer.enterprise_number",
        "missing_client_enterprise_number",
        "Belgian enterprise number for the client",
        _ERROR,
    ),
    ("customer_contact.name", "missing_client_contact", "client contact", _WARNING),
    ("customer_contact.email", "missing_client_email", "client email", _ERROR),
    ("customer_contact.phone", "missing_client_phone", "client phone", _WARNING),
    (
        "total_excl_vat",
        "missing_total",
        "project amount excl. VAT (LegalMonetaryTotal/TaxExclusiveAmount)",
        _ERROR,
    ),
)

# Problems `check()` derives from the fields alone: it drops and recomputes them.
_CHECK_CODES = frozenset(
    {code for _, code, _, _ in _REQUIRED}
    | {
        "missing_dv_number",
        "missing_participant_count",
        "invalid_period",
        "invalid_client_email",
        "missing_currency",
        "currency_not_eur",
        "missing_billing_reference",
        "negative_amount",
    }
)
# Problems about a value that was there but unusable (the field is left empty):
# they stand until the field is filled, e.g. by upload fields merged by intake.
_UNUSABLE_CODES = frozenset(
    {
        "invalid_enterprise_number",
        "invalid_dv_number",
        "ambiguous_dv_number",
        "invalid_date",
        "invalid_amount",
        "invalid_participant_count",
    }
)
# A credit note only cancels a dossier: it needs to name the invoice, nothing else.
_CREDIT_NOTE_FIELDS = frozenset({"billing_reference", "attachments"})


class InvoiceRejected(ValueError):
    """The file cannot be read at all; the message says why, in the user's terms."""


def read_ubl(data: bytes, *, filename: str = "invoice.xml") -> Invoice:
    """Read a UBL invoice or credit note; what is missing or wrong is in `problems`.

    Raises InvoiceRejected only when the file cannot be read at all.
    """
    root = _parse(data, filename)
    invoice = Invoice(document_type=_document_type(root))
    found: list[Problem] = []

    _read_header(root, invoice, found)
    _read_parties(root, invoice, found)
    _read_lines(root, invoice)
    _read_dv_number(root, invoice, found)
    _read_participants(invoice, found)
    _read_totals(root, invoice, found)
    documents, attachment_problems = _embedded_documents(root)
    invoice.attachments = [
        Attachment(filename=name, mime_type=mime, size=len(content))
        for name, mime, content in documents
    ]

    found += attachment_problems
    if invoice.document_type is DocumentType.CREDIT_NOTE:
        found = [p for p in found if p.field in _CREDIT_NOTE_FIELDS]
    invoice.problems = found
    check(invoice)
    return invoice


def extract_attachments(data: bytes) -> list[tuple[str, str, bytes]]:
    """The embedded documents as (unique safe filename, mime type, content).

    A document that is not valid base64 is left out (read_ubl says so).
    Raises InvoiceRejected like read_ubl.
    """
    documents, _ = _embedded_documents(_parse(data, "invoice.xml"))
    return documents


# The fields of a PDF invoice's upload or mail, as `invoice_from_fields` reads them.
PDF_FIELD_KEYS = (
    "number",
    "issue_date",
    "period_start",
    "period_end",
    "supplier_enterprise_number",
    "supplier_name",
    "customer_enterprise_number",
    "customer_name",
    "contact_name",
    "contact_email",
    "contact_phone",
    "dv_number",
    "participants",
    "total_excl_vat",
)


def invoice_from_fields(fields: dict[str, str]) -> Invoice:
    """Build the invoice of a PDF upload from the form's fields, with its problems.

    Keys: number, issue_date, period_start, period_end, supplier_enterprise_number,
    supplier_name, customer_enterprise_number, customer_name, contact_name,
    contact_email, contact_phone, dv_number, participants, total_excl_vat.
    """

    def value(key: str) -> str | None:
        raw = fields.get(key)
        if raw is None:
            return None
        return _collapse(str(raw)) or None

    invoice = Invoice(
        document_type=DocumentType.INVOICE,
        number=value("number"),
        currency="EUR",  # the form asks for amounts in euro
        supplier=Party(
            name=value("supplier_name"),
            enterprise_number=value("supplier_enterprise_number"),
        ),
        customer=Party(
            name=value("customer_name"),
            enterprise_number=value("customer_enterprise_number"),
        ),
        customer_contact=Contact(
            name=value("contact_name"),
            email=value("contact_email"),
            phone=value("contact_phone"),
        ),
        dv_number=value("dv_number"),
    )
    found: list[Problem] = []
    label = _label(invoice)

    for key in ("issue_date", "period_start", "period_end"):
        setattr(invoice, key, _form_date(value(key), key, label, found))
    invoice.participant_count = _form_participants(value("participants"), label, found)
    invoice.total_excl_vat = _form_amount(value("total_excl_vat"), label, found)

    invoice.problems = found
    check(invoice)
    return invoice


def check(invoice: Invoice) -> None:
    """Append the problems of what is missing or invalid; safe to call again.

    Also brings the enterprise numbers and the DV number to their standard form
    (0123.456.789, DV.O214567) and sets the kind from the DV number; a value that
    fails its check is emptied and a problem says what it was.
    """
    kept = [
        p
        for p in invoice.problems
        if p.code not in _CHECK_CODES and not _resolved(invoice, p)
    ]
    if invoice.document_type is DocumentType.CREDIT_NOTE:
        found = _credit_note_problems(invoice)
    else:
        kept += _normalize_identifiers(invoice)
        found = _invoice_problems(invoice)

    taken = {p.field for p in kept}
    invoice.problems = kept + [p for p in found if p.field not in taken]


# Parsing


def _parse(data: bytes, filename: str) -> etree._Element:
    data = bytes(data)
    if len(data) > MAX_INVOICE_BYTES:
        raise InvoiceRejected(
            f"{filename} is {len(data) / 1024 / 1024:.1f} MB; an e-invoice is at "
            "most 5 MB, so this is not a single invoice"
        )
    if not data.strip():
        raise InvoiceRejected(f"{filename} is empty; upload the invoice file again")

    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except (etree.LxmlError, ValueError) as error:
        if _mentions_doctype(data):
            raise InvoiceRejected(_doctype_message(filename)) from None
        raise InvoiceRejected(_unreadable_message(data, filename, error)) from None

    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.system_url:
        raise InvoiceRejected(_doctype_message(filename))
    if root.tag not in (_INVOICE_ROOT, _CREDIT_NOTE_ROOT):
        name = etree.QName(root)
        raise InvoiceRejected(
            f"{filename} is not a UBL invoice or credit note: its root element is "
            f"'{_shown(name.localname)}' in namespace "
            f"'{_shown(name.namespace or 'none')}'"
        )
    return root


def _mentions_doctype(data: bytes) -> bool:
    """Whether the bytes hold a DOCTYPE in any encoding XML allows without a BOM."""
    needle = "<!DOCTYPE"
    encodings = ("ascii", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
    upper = data.upper()
    return any(needle.encode(encoding) in upper for encoding in encodings)


def _doctype_message(filename: str) -> str:
    return (
        f"{filename} contains a DOCTYPE; e-invoices never need one, and it can "
        "hide entities or references to other files, so the file was refused; "
        "send the e-invoice as your accounting software exports it"
    )


def _unreadable_message(data: bytes, filename: str, error: Exception) -> str:
    if data.lstrip().startswith(b"%PDF"):
        return (
            f"{filename} is a PDF, not an XML e-invoice; upload it as a PDF invoice "
            "and fill in the invoice fields"
        )
    detail = str(getattr(error, "msg", None) or error)
    depth = _EXCESSIVE_DEPTH.search(detail)
    if depth:
        return (
            f"{filename} is nested too deeply to be an e-invoice (more than "
            f"{depth[1]} levels of elements inside each other); send the UBL file "
            "as your accounting software exports it, or upload the invoice as a PDF"
        )
    if "encoding" in detail.lower() or "utf-" in detail.lower():
        detail = "its characters do not match the encoding it declares"
    return (
        f"{filename} is not a readable XML e-invoice ({_shown(detail, 120)}); "
        "send the UBL file again, or upload the invoice as a PDF"
    )


def _document_type(root: etree._Element) -> DocumentType:
    if root.tag == _CREDIT_NOTE_ROOT:
        return DocumentType.CREDIT_NOTE
    if _text(root, "cbc:InvoiceTypeCode") == _CREDIT_NOTE_TYPE:
        return DocumentType.CREDIT_NOTE
    return DocumentType.INVOICE


# Reading the fields


def _read_header(root: etree._Element, invoice: Invoice, found: list[Problem]) -> None:
    invoice.number = _text(root, "cbc:ID")
    invoice.customization_id = _text(root, "cbc:CustomizationID")
    currency = _text(root, "cbc:DocumentCurrencyCode")
    invoice.currency = currency.upper() if currency else None
    invoice.notes = _texts(root, "cbc:Note")
    label = _label(invoice)

    def read_date(path: str, field: str) -> date | None:
        return _ubl_date(_text(root, path), field, label, found)

    invoice.issue_date = read_date("cbc:IssueDate", "issue_date")
    invoice.due_date = read_date("cbc:DueDate", "due_date") or read_date(
        "cac:PaymentMeans/cbc:PaymentDueDate", "due_date"
    )
    invoice.period_start = read_date("cac:InvoicePeriod/cbc:StartDate", "period_start")
    invoice.period_end = read_date("cac:InvoicePeriod/cbc:EndDate", "period_end")
    _read_billing_reference(root, invoice, found)

    if _PEPPOL_BIS3 not in (invoice.customization_id or ""):
        shown = _shown(invoice.customization_id or "none")
        found.append(
            Problem(
                "not_peppol_bis3",
                "customization_id",
                f"{label} is not a Peppol BIS Billing 3.0 e-invoice "
                f"(CustomizationID: {shown}); the fields found were read, check "
                "them against the invoice",
                _WARNING,
            )
        )


def _read_billing_reference(
    root: etree._Element, invoice: Invoice, found: list[Problem]
) -> None:
    path = "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID"
    references = list(dict.fromkeys(_texts(root, path)))
    invoice.billing_reference = references[0] if references else None
    if len(references) > 1 and invoice.document_type is DocumentType.CREDIT_NOTE:
        found.append(
            Problem(
                "several_billing_references",
                "billing_reference",
                f"{_label(invoice)} names several invoices "
                f"({_shown(', '.join(references))}); {references[0]} was taken, "
                "check which dossier it cancels",
                _WARNING,
            )
        )


def _read_parties(root: etree._Element, invoice: Invoice, found: list[Problem]) -> None:
    label = _label(invoice)
    supplier = root.find("cac:AccountingSupplierParty/cac:Party", _NS)
    customer = root.find("cac:AccountingCustomerParty/cac:Party", _NS)
    invoice.supplier = _party(supplier, "supplier", "provider", label, found)
    invoice.customer = _party(customer, "customer", "client", label, found)
    invoice.customer_contact = Contact(
        name=_text(customer, "cac:Contact/cbc:Name"),
        email=_text(customer, "cac:Contact/cbc:ElectronicMail"),
        phone=_text(customer, "cac:Contact/cbc:Telephone"),
    )


def _party(
    element: etree._Element | None,
    role: str,
    who: str,
    label: str,
    found: list[Problem],
) -> Party:
    return Party(
        name=_text(element, "cac:PartyName/cbc:Name")
        or _text(element, "cac:PartyLegalEntity/cbc:RegistrationName"),
        enterprise_number=_enterprise_number(element, role, who, label, found),
        vat_number=_vat_number(element),
        street=_text(element, "cac:PostalAddress/cbc:StreetName"),
        postal_code=_text(element, "cac:PostalAddress/cbc:PostalZone"),
        city=_text(element, "cac:PostalAddress/cbc:CityName"),
        country=_text(element, "cac:PostalAddress/cac:Country/cbc:IdentificationCode"),
    )


def _enterprise_candidates(party: etree._Element | None) -> list[str]:
    """Belgian ids of a party, the legal registration first, the address last."""
    if party is None:
        return []
    found = []
    for path in (
        "cac:PartyLegalEntity/cbc:CompanyID",
        "cac:PartyIdentification/cbc:ID",
        "cbc:EndpointID",
    ):
        for element in party.iterfind(path, _NS):
            scheme = _collapse(element.get("schemeID") or "")
            text = _element_text(element)
            if text and scheme in _BE_ENTERPRISE_SCHEMES:
                found.append(text)
    for text in _texts(party, "cac:PartyTaxScheme/cbc:CompanyID"):
        if text.upper().startswith("BE"):
            found.append(text)
    return found


def _enterprise_number(
    party: etree._Element | None,
    role: str,
    who: str,
    label: str,
    found: list[Problem],
) -> str | None:
    valid: list[str] = []
    invalid: dict[str, str] = {}  # digits -> message, one per number however spelt
    for raw in _enterprise_candidates(party):
        try:
            number = normalize(raw)
        except InvalidEnterpriseNumber as error:
            invalid.setdefault(digits(raw).rjust(10, "0"), str(error))
            continue
        if number not in valid:
            valid.append(number)

    for number in valid:
        invalid.pop(digits(number), None)
    field = f"{role}.enterprise_number"
    if not valid and invalid:
        message = next(iter(invalid.values()))
        found.append(
            Problem(
                "invalid_enterprise_number",
                field,
                f"{label}, {who}: {_shown(message, 200)}",
            )
        )
    elif len(valid) + len(invalid) > 1:
        numbers = ", ".join(valid + list(invalid))
        found.append(
            Problem(
                "enterprise_numbers_differ",
                field,
                f"{label} gives the {who} several enterprise numbers "
                f"({_shown(numbers)}); {valid[0]} was taken, check it",
                _WARNING,
            )
        )
    return valid[0] if valid else None


def _vat_number(party: etree._Element | None) -> str | None:
    for text in _texts(party, "cac:PartyTaxScheme/cbc:CompanyID"):
        compact = re.sub(r"[\s.\-]", "", text).upper()
        if compact:
            return _shown(compact, 40)
    return None


def _read_lines(root: etree._Element, invoice: Invoice) -> None:
    credit = root.tag == _CREDIT_NOTE_ROOT
    line_path = "cac:CreditNoteLine" if credit else "cac:InvoiceLine"
    quantity_path = "cbc:CreditedQuantity" if credit else "cbc:InvoicedQuantity"
    for element in root.iterfind(line_path, _NS):
        quantity = element.find(quantity_path, _NS)
        unit = _collapse(quantity.get("unitCode") or "") if quantity is not None else ""
        invoice.lines.append(
            InvoiceLine(
                line_id=_text(element, "cbc:ID") or "",
                description=_text(element, "cac:Item/cbc:Name")
                or _text(element, "cac:Item/cbc:Description")
                or "",
                quantity=_decimal(_element_text(quantity)),
                unit_code=unit.upper() or None,
                amount_excl_vat=_decimal(_text(element, "cbc:LineExtensionAmount")),
                notes=_texts(element, "cbc:Note"),
            )
        )


def _read_dv_number(
    root: etree._Element, invoice: Invoice, found: list[Problem]
) -> None:
    """The provider's DV number, from any note; two different ones are not guessed."""
    notes = invoice.notes + _texts(root, ".//cbc:Note")
    numbers = list(dict.fromkeys(n for note in notes for n in _dv_numbers(note)))
    if len(numbers) == 1:
        invoice.dv_number = numbers[0]
        invoice.kind = _kind(numbers[0])
    elif numbers:
        found.append(
            Problem(
                "ambiguous_dv_number",
                "dv_number",
                f"{_label(invoice)} names several DV numbers "
                f"({_shown(', '.join(numbers))}); give the one of this dossier at "
                "upload",
            )
        )


def _read_participants(invoice: Invoice, found: list[Problem]) -> None:
    notes = invoice.notes + [note for line in invoice.lines for note in line.notes]
    invoice.participant_names = _participant_names(notes)
    kind = _kind(invoice.dv_number)
    if kind is Kind.ADVICE:
        return

    # Without a DV number the kind is unknown: only what names persons explicitly
    # counts then, so that a DV number added at upload finds the count ready.
    label = _label(invoice)
    said = (n for note in notes for n in _PARTICIPANT_COUNT.findall(note))
    counted = list(dict.fromkeys(int(n) for n in said))
    on_lines = _participants_on_lines(invoice.lines) if kind else None
    if len(counted) == 1:
        invoice.participant_count = counted[0] or None
        if on_lines is not None and on_lines != counted[0]:
            found.append(
                Problem(
                    "participant_count_unclear",
                    "participant_count",
                    f"{label}: the notes say {counted[0]} participants but the "
                    f"lines count {on_lines}; {counted[0]} was taken, check it",
                    _WARNING,
                )
            )
    elif counted:
        found.append(
            Problem(
                "participant_count_unclear",
                "participant_count",
                f"{label}: the notes give several participant counts "
                f"({', '.join(map(str, counted))}); give the number at upload",
                _WARNING,
            )
        )
    else:
        invoice.participant_count = on_lines or len(invoice.participant_names) or None


def _participants_on_lines(lines: list[InvoiceLine]) -> int | None:
    """The sum of the lines counted in persons, if each is a whole positive number."""
    quantities = [line.quantity for line in lines if line.unit_code in _PERSON_UNITS]
    if not quantities:
        return None
    total = 0
    for quantity in quantities:
        if quantity is None or quantity <= 0 or quantity != quantity.to_integral():
            return None
        total += int(quantity)
    return total


def _participant_names(notes: Iterable[str]) -> list[str]:
    names: list[str] = []
    for note in notes:
        match = _PARTICIPANT_NAMES.match(note)
        if match:
            names += [_shown(n.strip()) for n in re.split(r"[,;]", match[1])]
    return [name for name in dict.fromkeys(names) if name]


def _read_totals(root: etree._Element, invoice: Invoice, found: list[Problem]) -> None:
    label = _label(invoice)
    total = "cac:LegalMonetaryTotal/"

    def amount(path: str, field: str) -> Decimal | None:
        return _ubl_amount(_text(root, path), field, label, found, invoice)

    invoice.total_excl_vat = amount(total + "cbc:TaxExclusiveAmount", "total_excl_vat")
    invoice.total_incl_vat = amount(total + "cbc:TaxInclusiveAmount", "total_incl_vat")
    invoice.vat_amount = _ubl_amount(
        _vat_total(root, invoice.currency), "vat_amount", label, found, invoice
    )


def _vat_total(root: etree._Element, currency: str | None) -> str | None:
    """The VAT total in the invoice's currency (a second one may be in EUR for VAT)."""
    amounts = root.findall("cac:TaxTotal/cbc:TaxAmount", _NS)
    for element in amounts:
        if _collapse(element.get("currencyID") or "").upper() == currency:
            return _element_text(element)
    return _element_text(amounts[0]) if amounts else None


# Embedded documents


def _embedded_documents(
    root: etree._Element,
) -> tuple[list[tuple[str, str, bytes]], list[Problem]]:
    documents: list[tuple[str, str, bytes]] = []
    problems: list[Problem] = []
    taken: set[str] = set()
    path = "cac:Attachment/cbc:EmbeddedDocumentBinaryObject"
    references = root.iterfind(".//cac:AdditionalDocumentReference", _NS)
    for position, reference in enumerate(references, start=1):
        element = reference.find(path, _NS)
        if element is None:
            continue
        mime = _safe_mime(element.get("mimeCode"))
        name = _document_name(reference, element, mime, position)
        content = _base64(element)
        if not content:
            problems.append(
                Problem(
                    "unreadable_attachment",
                    "attachments",
                    f"the embedded document {name} is empty or damaged and was not "
                    "kept; ask the provider to send it separately",
                    _WARNING,
                )
            )
            continue
        documents.append((_unique(name, taken), mime, content))
    return documents, problems


def _document_name(
    reference: etree._Element, element: etree._Element, mime: str, position: int
) -> str:
    name = _safe_filename(element.get("filename"))
    if name:
        return name
    # Without a file name: named after its reference, typed by its mime type.
    name = _safe_filename(_text(reference, "cbc:ID")) or f"attachment-{position}"
    extension = _EXTENSIONS.get(mime, "")
    return name if name.lower().endswith(extension) else name + extension


def _base64(element: etree._Element) -> bytes | None:
    text = "".join(str(t) for t in element.xpath("text()"))
    try:
        return base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        return None


def _safe_mime(raw: str | None) -> str:
    mime = (raw or "").strip().lower()
    return mime if _MIME.fullmatch(mime) else "application/octet-stream"


def _safe_filename(raw: str | None) -> str:
    """A plain file name, or "": no directories, no hidden files, no odd characters."""
    name = re.split(r"[\\/]", raw or "")[-1]
    name = unicodedata.normalize("NFC", name)
    name = re.sub(r"[^\w.() -]+", "_", name)  # \w keeps letters of any script
    name = re.sub(r"\.{2,}", ".", re.sub(r"\s+", " ", name)).strip(" ._-")
    stem, suffix = _split_suffix(name)
    stem = stem[:100].strip(" ._-")
    return stem + suffix[:10] if stem else ""


def _split_suffix(name: str) -> tuple[str, str]:
    stem, dot, suffix = name.rpartition(".")
    return (stem, dot + suffix) if dot and stem else (name, "")


def _unique(name: str, taken: set[str]) -> str:
    stem, suffix = _split_suffix(name)
    candidate, number = name, 1
    while candidate.casefold() in taken:
        number += 1
        candidate = f"{stem}-{number}{suffix}"
    taken.add(candidate.casefold())
    return candidate


# Checking


def _invoice_problems(invoice: Invoice) -> list[Problem]:
    label = _label(invoice)
    problems = [
        Problem(code, field, f"{label} has no {what}; add it at upload", severity)
        for field, code, what, severity in _REQUIRED
        if _field(invoice, field) in (None, "")
    ]
    add = problems.append

    if invoice.dv_number is None:
        add(
            Problem(
                "missing_dv_number",
                "dv_number",
                f"{label} has no KMO-portefeuille DV number (DV.O… or DV.A…) in the "
                "invoice notes; add it at upload",
            )
        )
    if invoice.kind is Kind.TRAINING and not invoice.participant_count:
        add(
            Problem(
                "missing_participant_count",
                "participant_count",
                f"{label} does not say how many participants follow the training; "
                "add it at upload",
                _WARNING,
            )
        )
    start, end = invoice.period_start, invoice.period_end
    if start and end and end < start:
        add(
            Problem(
                "invalid_period",
                "period_end",
                f"{label}: the invoice period ends on {end} before it starts on "
                f"{start}; correct it at upload",
            )
        )
    total = invoice.total_excl_vat
    if total is not None and total < 0:
        add(
            Problem(
                "negative_amount",
                "total_excl_vat",
                f"{label}: the project amount excl. VAT is {total}, below zero; "
                "an invoice that takes money back is a credit note, send it as one",
            )
        )
    email = invoice.customer_contact.email
    if email is not None:
        try:
            mail_address(email)
        except InvalidAddress as error:
            add(
                Problem(
                    "invalid_client_email",
                    "customer_contact.email",
                    f"{label}: the client email '{_shown(email)}' is not an email "
                    f"address we can mail to ({error}); correct it at upload",
                )
            )
    add_currency = _currency_problem(invoice, label)
    if add_currency:
        add(add_currency)
    return problems


def _currency_problem(invoice: Invoice, label: str) -> Problem | None:
    if invoice.currency is None:
        return Problem(
            "missing_currency",
            "currency",
            f"{label} does not say its currency; check that the amounts are in euro",
            _WARNING,
        )
    if invoice.currency != "EUR":
        return Problem(
            "currency_not_eur",
            "currency",
            f"{label} is in {_shown(invoice.currency, 10)}, not in euro; the "
            "KMO-portefeuille works in euro, check the amounts",
            _WARNING,
        )
    return None


def _credit_note_problems(invoice: Invoice) -> list[Problem]:
    if invoice.billing_reference:
        return []
    return [
        Problem(
            "missing_billing_reference",
            "billing_reference",
            f"{_label(invoice)} does not say which invoice it cancels; ask the "
            "provider for a credit note that names the invoice number",
        )
    ]


def _normalize_identifiers(invoice: Invoice) -> list[Problem]:
    """Standard form for the enterprise and DV numbers; an invalid one is emptied."""
    label = _label(invoice)
    problems = []
    for role, who in (("supplier", "provider"), ("customer", "client")):
        party: Party = getattr(invoice, role)
        if party.enterprise_number is None:
            continue
        try:
            party.enterprise_number = normalize(party.enterprise_number)
        except InvalidEnterpriseNumber as error:
            party.enterprise_number = None
            message = f"{label}, {who}: {_shown(str(error), 200)}"
            field = f"{role}.enterprise_number"
            problems.append(Problem("invalid_enterprise_number", field, message))

    if invoice.dv_number is not None:
        numbers = list(dict.fromkeys(_dv_numbers(invoice.dv_number)))
        if len(numbers) == 1:
            invoice.dv_number = numbers[0]
        else:
            shown = _shown(invoice.dv_number)
            invoice.dv_number = None
            problems.append(
                Problem(
                    "invalid_dv_number",
                    "dv_number",
                    f"{label}: '{shown}' is not a KMO-portefeuille DV number like "
                    "DV.O214567 or DV.A109876; correct it at upload",
                )
            )
    invoice.kind = _kind(invoice.dv_number) or invoice.kind
    return problems


def _resolved(invoice: Invoice, problem: Problem) -> bool:
    """An unusable value's problem is over once the field has been filled."""
    return (
        problem.code in _UNUSABLE_CODES and _field(invoice, problem.field) is not None
    )


def _field(invoice: Invoice, path: str) -> object:
    value: object = invoice
    for name in path.split("."):
        value = getattr(value, name, None)
    return value


# Values


def _dv_numbers(text: str) -> list[str]:
    return [f"DV.{kind.upper()}{number}" for kind, number in _DV_NUMBER.findall(text)]


def _kind(dv_number: str | None) -> Kind | None:
    if not dv_number:
        return None
    return Kind.TRAINING if dv_number.startswith("DV.O") else Kind.ADVICE


def _ubl_date(
    raw: str | None, field: str, label: str, found: list[Problem]
) -> date | None:
    return _checked_date(raw, _ISO_DATE, (1, 2, 3), field, label, found)


def _form_date(
    raw: str | None, field: str, label: str, found: list[Problem]
) -> date | None:
    if raw and _FORM_DATE.fullmatch(raw):
        return _checked_date(raw, _FORM_DATE, (3, 2, 1), field, label, found)
    return _ubl_date(raw, field, label, found)


def _checked_date(
    raw: str | None,
    pattern: re.Pattern[str],
    order: tuple[int, int, int],
    field: str,
    label: str,
    found: list[Problem],
) -> date | None:
    if raw is None:
        return None
    match = pattern.fullmatch(raw)
    try:
        if match:
            return date(*(int(match[group]) for group in order))
    except ValueError:
        pass
    found.append(
        Problem(
            "invalid_date",
            field,
            f"{label}: '{_shown(raw)}' is not a date like 2026-12-31 "
            f"({field.replace('_', ' ')}); add it at upload",
            _severity(field),
        )
    )
    return None


def _decimal(raw: str | None) -> Decimal | None:
    return Decimal(raw) if raw and _DECIMAL.fullmatch(raw) else None


def _ubl_amount(
    raw: str | None, field: str, label: str, found: list[Problem], invoice: Invoice
) -> Decimal | None:
    amount = _decimal(raw)
    if raw is not None and amount is None:
        found.append(_invalid_amount(raw, field, label, invoice.document_type))
    return amount


def _form_amount(raw: str | None, label: str, found: list[Problem]) -> Decimal | None:
    if raw is None:
        return None
    compact = re.sub(r"\s|€|EUR", "", raw, flags=re.I)
    match = _FORM_AMOUNT.fullmatch(compact)
    if not match:
        found.append(
            _invalid_amount(
                raw,
                "total_excl_vat",
                label,
                DocumentType.INVOICE,
                "the total_excl_vat field",
            )
        )
        return None
    return Decimal(f"{match[1]}.{match[2] or '0'}")


def _invalid_amount(
    raw: str,
    field: str,
    label: str,
    document_type: DocumentType,
    where: str = "LegalMonetaryTotal/TaxExclusiveAmount",
) -> Problem:
    """An unreadable amount; the project amount of an invoice stops the dossier."""
    if field == "total_excl_vat" and document_type is DocumentType.INVOICE:
        return Problem(
            "invalid_amount",
            field,
            f"{label}: the project amount excl. VAT ({where}) '{_shown(raw)}' is "
            "not an amount like 1234.50, so no dossier can start from it",
            _ERROR,
        )
    return Problem(
        "invalid_amount",
        field,
        f"{label}: '{_shown(raw)}' is not an amount like 1234.50 "
        f"({field.replace('_', ' ')}); add it at upload",
        _WARNING,
    )


def _form_participants(raw: str | None, label: str, found: list[Problem]) -> int | None:
    if raw is None:
        return None
    if not re.fullmatch(r"\d{1,4}", raw):
        found.append(
            Problem(
                "invalid_participant_count",
                "participant_count",
                f"{label}: '{_shown(raw)}' is not a number of participants; "
                "give a whole number",
                _WARNING,
            )
        )
        return None
    return int(raw) or None


def _severity(field: str) -> Severity:
    return next((s for f, _, _, s in _REQUIRED if f == field), _WARNING)


def _label(invoice: Invoice) -> str:
    noun = (
        "credit note"
        if invoice.document_type is DocumentType.CREDIT_NOTE
        else "invoice"
    )
    return f"{noun} {_shown(invoice.number)}" if invoice.number else f"the {noun}"


def _text(parent: etree._Element | None, path: str) -> str | None:
    if parent is None:
        return None
    return _element_text(parent.find(path, _NS))


def _texts(parent: etree._Element | None, path: str) -> list[str]:
    if parent is None:
        return []
    texts = (_element_text(element) for element in parent.iterfind(path, _NS))
    return [text for text in texts if text]


def _element_text(element: etree._Element | None) -> str | None:
    """The element's own text, whitespace collapsed; comments inside are skipped."""
    if element is None:
        return None
    return _collapse("".join(str(t) for t in element.xpath("text()"))) or None


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _shown(text: str | None, limit: int = 80) -> str:
    """A value quoted in a message, cut short: the file may hold anything."""
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"
