"""Inputs and outputs of the dossier workflow, its signals, queries and activities.

Each message is one small dataclass so that fields can be added later without
breaking dossiers that are already running, and so that staff can send a
signal from the Temporal UI as plain JSON. New fields always get a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from kmo.models import Fee, Kind, Warning
from kmo.subsidy import Subsidy, expected_subsidy, theme_of


class Step(StrEnum):
    """Where a dossier stands; the order is the order of the procedure."""

    ONBOARDING = "onboarding"
    APPLICATION = "application"
    TERMS = "terms"
    PAYMENT = "payment"
    ATTENDANCE = "attendance"
    SATISFACTION = "satisfaction"
    CERTIFICATE = "certificate"  # training
    FINAL_REPORT = "final_report"  # advice
    CLOSED = "closed"
    CANCELLED = "cancelled"
    LAPSED = "lapsed"


class Document(StrEnum):
    """Documents the client or a participant signs."""

    TERMS = "terms"
    ATTENDANCE = "attendance"
    SATISFACTION = "satisfaction"


@dataclass
class Participant:
    name: str
    email: str | None = None


@dataclass
class Provider:
    provider_id: str  # enterprise number digits, e.g. 0412345614
    name: str
    dv_number: str
    container_email: str


@dataclass
class Client:
    name: str
    enterprise_number: str
    contact_name: str | None = None
    email: str | None = None
    phone: str | None = None
    language: str = "nl"
    has_platform_account: bool = False


@dataclass
class FollowUpPolicy:
    """How often to remind and when to hand a wait to staff, in days.

    The payment cadences default to `reminder_every_days` when not set.
    """

    reminder_every_days: int = 7
    reminders_before_call: int = 2
    application_deadline_days: int = 14
    deposit_deadline_days: int = 30
    payment_order_days: int = 14
    signature_reminder_every_days: int = 5
    deposit_reminder_every_days: int | None = None
    payment_order_reminder_every_days: int | None = None


@dataclass
class DossierInput:
    dossier_id: str
    kind: Kind
    provider: Provider
    client: Client
    invoice_number: str
    invoice_date: date
    start_date: date
    end_date: date
    project_amount_excl_vat: Decimal
    fee: Fee
    participants: list[Participant] = field(default_factory=list)
    session_dates: list[date] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)
    invoice_archive_key: str | None = None
    policy: FollowUpPolicy = field(default_factory=FollowUpPolicy)
    title: str = ""  # the training or advice, as the invoice line names it
    company_size: str | None = None  # small, medium; None: unknown, small assumed
    theme: str = ""  # cybersecurity, energy or general; "" (older): from the title

    def subsidy(self) -> Subsidy | None:
        """The subsidy the programme's rules give this dossier; None before them."""
        return expected_subsidy(
            self.kind,
            self.project_amount_excl_vat,
            self.start_date,
            company_size=self.company_size,
            theme=self.theme or theme_of(self.kind, self.title),
        )


# --- signals -------------------------------------------------------------


@dataclass
class SignatureInput:
    document: Document
    signer_name: str
    participant: str | None = None  # attendance: whose signature
    day: date | None = None  # attendance: which training day
    link_id: str | None = None
    evidence_key: str | None = None  # archive key of the signed PDF


@dataclass
class AbsenceInput:
    """Staff marks a participant absent from the attendance list.

    `day` is one training day; without it the participant missed every day.
    The list is complete when each participant signed or is absent each day.
    """

    participant: str
    day: date | None = None
    reason: str = ""
    by: str = "staff"


@dataclass
class AttendanceLine:
    """One participant on one training day: signed, absent or still open."""

    participant: str
    day: date | None
    state: str  # "signed", "absent" or "open"


@dataclass
class ApplicationInput:
    project_number: str
    filed_on: date | None = None


@dataclass
class DepositInput:
    amount: Decimal | None = None
    received_on: date | None = None


@dataclass
class PaymentInput:
    amount: Decimal | None = None
    received_on: date | None = None


@dataclass
class CallInput:
    outcome: str  # reached, no_answer, voicemail, wrong_number, ...
    note: str = ""
    by: str = "staff"
    task_id: str | None = None


@dataclass
class DetailsInput:
    """Fields the invoice lacks; only the ones given are changed."""

    client_email: str | None = None
    client_phone: str | None = None
    client_contact_name: str | None = None
    language: str | None = None
    has_platform_account: bool | None = None
    participants: list[Participant] | None = None
    session_dates: list[date] | None = None
    by: str = "staff"
    company_size: str | None = None  # small or medium
    policy: FollowUpPolicy | None = None  # new reminder cadences from now on


@dataclass
class SkipInput:
    step: Step
    reason: str
    by: str = "staff"


@dataclass
class ResendInput:
    step: Step | None = None  # default: the current step's mail
    by: str = "staff"


@dataclass
class FinalReportInput:
    archive_key: str
    filename: str = "eindrapport.pdf"


@dataclass
class CancelInput:
    reason: str
    by: str = "staff"
    credit_note_number: str | None = None


@dataclass
class MailEventInput:
    """What SendGrid reported of one of our mails (its event webhook)."""

    event: str  # bounce, dropped, spamreport
    event_id: str  # SendGrid's sg_event_id: a retried post is recorded once
    message_id: str | None = None
    recipient: str | None = None
    status: str | None = None  # the SMTP status of a bounce, e.g. 5.1.1


# --- query ---------------------------------------------------------------


@dataclass
class Deadline:
    name: str
    due: date
    met: bool = False


@dataclass
class Task:
    task_id: str
    kind: str  # call, review
    step: Step
    due: date
    reason: str
    done: bool = False
    outcome: str | None = None


@dataclass
class TimelineEntry:
    at: datetime
    event: str
    detail: str = ""


@dataclass
class DossierStatus:
    dossier_id: str
    kind: Kind
    step: Step
    deadlines: list[Deadline]
    open_tasks: list[Task]
    warnings: list[Warning]
    timeline: list[TimelineEntry]
    project_number: str | None = None
    fee: Fee | None = None
    mails_sent: int = 0
    company_size: str | None = None
    expected_subsidy: Decimal | None = None
    own_share: Decimal | None = None
    attendance: list[AttendanceLine] = field(default_factory=list)  # trainings


@dataclass
class DossierResult:
    dossier_id: str
    outcome: Step  # closed, cancelled or lapsed
    fee: Fee | None
    closed_at: datetime


# --- activities ----------------------------------------------------------


@dataclass
class MailInput:
    """One mail of a dossier. `key` makes the send idempotent across retries."""

    key: str  # workflow id / template / sequence
    dossier: DossierInput
    template: str
    to: list[str]
    sequence: int = 0  # 0 for the first mail, n for the n-th reminder
    sign_links: dict[str, str] = field(default_factory=dict)  # signer -> url
    attachment_keys: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    # The dossier's step and next deadline as the mail goes out: the records
    # take them with the mail, so a deadline set by the mail's step shows at once.
    progress: ProgressInput | None = None


@dataclass
class MailResult:
    message_id: str
    archive_key: str
    already_sent: bool = False


@dataclass
class SignLinksInput:
    dossier: DossierInput
    document: Document
    signers: list[str]  # "client" or participant names


@dataclass
class SignLinksResult:
    links: dict[str, str]  # signer -> url


@dataclass
class TaskInput:
    dossier_id: str
    task: Task


@dataclass
class ProgressInput:
    """What the records keep of a dossier's progress."""

    dossier_id: str
    step: Step
    next_deadline: date | None = None
    event: str = ""
    detail: str = ""


@dataclass
class CertificateInput:
    dossier: DossierInput
    participant: Participant


@dataclass
class CertificateResult:
    archive_key: str
    sha256: str


@dataclass
class CloseInput:
    dossier_id: str
    outcome: Step
    fee: Fee | None
    retention_until: date
