"""The domain's value objects, shared by intake, workflows and activities.

Plain dataclasses so that Temporal (through the pydantic data converter) and
staff in the Temporal UI can exchange them as JSON. Amounts are `Decimal`,
dates are `date`; both travel as ISO strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum


class Kind(StrEnum):
    """What was sold: a training (opleiding, DV.O) or an advice (advies, DV.A)."""

    TRAINING = "training"
    ADVICE = "advice"


class DocumentType(StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class Severity(StrEnum):
    ERROR = "error"  # the dossier cannot start without it
    WARNING = "warning"  # the dossier starts; staff must look


@dataclass
class Problem:
    """Something wrong or missing in an invoice, in the user's terms."""

    code: str
    field: str
    message: str
    severity: Severity = Severity.ERROR


@dataclass
class Party:
    name: str | None = None
    enterprise_number: str | None = None  # formatted 0123.456.789, mod-97 checked
    vat_number: str | None = None  # BE0123456789
    street: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str | None = None


@dataclass
class Contact:
    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass
class InvoiceLine:
    line_id: str
    description: str
    quantity: Decimal | None = None
    unit_code: str | None = None
    amount_excl_vat: Decimal | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Attachment:
    """A document embedded in the invoice (cac:AdditionalDocumentReference)."""

    filename: str
    mime_type: str
    size: int


@dataclass
class Invoice:
    """What intake read from a UBL invoice or credit note, or from upload fields."""

    document_type: DocumentType
    number: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    period_start: date | None = None
    period_end: date | None = None
    currency: str | None = None
    supplier: Party = field(default_factory=Party)
    customer: Party = field(default_factory=Party)
    customer_contact: Contact = field(default_factory=Contact)
    dv_number: str | None = None  # DV.O214567 or DV.A109876
    kind: Kind | None = None
    notes: list[str] = field(default_factory=list)
    lines: list[InvoiceLine] = field(default_factory=list)
    participant_count: int | None = None
    participant_names: list[str] = field(default_factory=list)
    total_excl_vat: Decimal | None = None
    vat_amount: Decimal | None = None
    total_incl_vat: Decimal | None = None
    billing_reference: str | None = None  # the invoice a credit note cancels
    customization_id: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == Severity.ERROR]


@dataclass
class FeeLine:
    label: str
    quantity: int
    unit_price: Decimal
    amount: Decimal


@dataclass
class Fee:
    """Our fee for one dossier, charged to the provider."""

    lines: list[FeeLine]
    total_excl_vat: Decimal
    vat_rate: Decimal
    vat: Decimal
    total_incl_vat: Decimal
    running_months: int


@dataclass
class Warning:
    """A programme rule the dossier may break, with the rule it comes from."""

    code: str
    message: str
    rule: str
