"""Invoice intake, shared by every way in: upload page, API, CLI and mail.

`prepare` reads, checks and prices an invoice without side effects (this is
what `dossier inspect` shows). `IntakeService.submit` then archives the file,
records the dossier and starts its workflow; the workflow id comes from the
provider and the invoice number, so a second upload finds the running dossier.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.common import WorkflowIDConflictPolicy as ConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from adapters.archive import ArchivedItem
from adapters.records import (
    ArchiveItem,
    Dossier,
    SignLink,
    TimelineEvent,
    column_length,
    dossier_retention,
    record_archived,
    save_dossier,
    utcnow,
)
from adapters.records import Provider as ProviderRow
from kmo import enterprise
from kmo import invoice as ubl
from kmo.calendar import local_date
from kmo.models import DocumentType, Fee, Invoice, Kind, Problem, Severity, Warning
from kmo.pricing import compute_fee
from kmo.rules import (
    annual_cap_warning,
    intake_warnings,
    invoice_text,
    retention_until,
)
from kmo.subsidy import theme_of
from starter.client import workflow_id
from workflows import search
from workflows.dossier import DossierWorkflow
from workflows.messages import (
    CancelInput,
    DossierInput,
    FollowUpPolicy,
    Participant,
    Provider,
    Step,
)
from workflows.messages import Client as ClientInfo

log = structlog.get_logger(__name__)

PDF_MAGIC = b"%PDF-"


class IntakeError(Exception):
    """The file cannot start a dossier; `message` says why in the user's terms."""

    def __init__(
        self,
        message: str,
        problems: list[Problem] | None = None,
        status_code: int = 422,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []
        self.status_code = status_code


@dataclass
class UploadDetails:
    """What the provider adds at upload: all the invoice cannot say."""

    provider_id: str | None = None
    participants: list[Participant] = field(default_factory=list)
    client_email: str | None = None
    client_phone: str | None = None
    client_contact_name: str | None = None
    language: str | None = None
    has_platform_account: bool | None = None
    session_dates: list[date] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)  # PDF invoices


@dataclass
class Prepared:
    invoice: Invoice
    dossier: DossierInput | None
    fee: Fee | None
    warnings: list[Warning]
    problems: list[Problem]
    cancels: str | None = None  # a credit note: the dossier it cancels

    @property
    def can_start(self) -> bool:
        return self.dossier is not None


@dataclass
class IntakeResult:
    dossier_id: str
    workflow_id: str
    created: bool
    fee: Fee | None
    warnings: list[Warning]
    cancelled: bool = False


# --- reading, checking, pricing (no I/O) -------------------------------------


def prepare(
    data: bytes, filename: str, details: UploadDetails, today: date | None = None
) -> Prepared:
    """Read an invoice (UBL, or PDF with its fields given) and build its dossier."""
    today = today or local_date(datetime.now(UTC))
    invoice = _read(data, filename, details)
    if invoice.document_type == DocumentType.CREDIT_NOTE:
        if not invoice.supplier.enterprise_number:
            invoice.problems.append(
                Problem(
                    code="credit_note_without_provider",
                    field="supplier.enterprise_number",
                    message=f"credit note {invoice.number} has no Belgian enterprise "
                    "number for the provider, so it cannot name a dossier to cancel",
                )
            )
        return Prepared(invoice, None, None, [], invoice.problems, _cancels(invoice))
    _apply_details(invoice, details)
    _check_provider(invoice, details)
    errors = invoice.errors
    if errors:
        return Prepared(invoice, None, None, [], invoice.problems)
    dossier = _dossier(invoice, details, today)
    too_long = _too_long_to_record(dossier)
    if too_long:
        invoice.problems.extend(too_long)
        return Prepared(invoice, None, None, [], invoice.problems)
    return Prepared(invoice, dossier, dossier.fee, dossier.warnings, invoice.problems)


def _too_long_to_record(dossier: DossierInput) -> list[Problem]:
    """Values longer than the records keep them, refused before anything is kept.

    The limits are the records' column lengths. Past them PostgreSQL refuses
    the row, after the invoice was archived for ten years, or in an activity
    that Temporal would retry for ever.
    """
    values = [
        (
            "supplier.name",
            "the provider's name",
            dossier.provider.name,
            ProviderRow.name,
        ),
        (
            "customer.name",
            "the client's name",
            dossier.client.name,
            Dossier.client_name,
        ),
        *(
            (
                "participants",
                f"participant {index}'s name",
                person.name,
                SignLink.signer,
            )
            for index, person in enumerate(dossier.participants, start=1)
        ),
    ]
    problems = [
        Problem(
            "too_long",
            field,
            f"{what} is {len(value)} characters long; the records keep at most "
            f"{limit}: shorten it on the invoice or at upload",
        )
        for field, what, value, column in values
        if len(value) > (limit := column_length(column))
    ]
    limit = column_length(Dossier.dossier_id)
    if len(dossier.dossier_id) > limit:
        problems.append(
            Problem(
                "too_long",
                "number",
                f"invoice number {dossier.invoice_number[:40]!r}... makes a dossier "
                f"id of {len(dossier.dossier_id)} characters; the records keep at "
                f"most {limit}: use a shorter invoice number",
            )
        )
    return problems


def _cancels(note: Invoice) -> str | None:
    supplier = note.supplier.enterprise_number
    if not supplier or not note.billing_reference or note.errors:
        return None
    return dossier_id_for(enterprise.digits(supplier), note.billing_reference)


def _read(data: bytes, filename: str, details: UploadDetails) -> Invoice:
    if not data:
        raise IntakeError(f"{filename} is empty: upload the invoice file", [], 400)
    if len(data) > ubl.MAX_INVOICE_BYTES:
        limit = ubl.MAX_INVOICE_BYTES // (1024 * 1024)
        raise IntakeError(f"{filename} is larger than {limit} MB", [], 413)
    if data.startswith(PDF_MAGIC):
        if not details.fields:
            raise IntakeError(
                f"{filename} is a PDF invoice: give its fields at upload "
                "(number, dates, enterprise numbers, DV number, client email)",
                ubl.invoice_from_fields({}).errors,  # each field still to give
                422,
            )
        return ubl.invoice_from_fields(details.fields)
    try:
        return ubl.read_ubl(data, filename=filename)
    except ubl.InvoiceRejected as err:
        raise IntakeError(str(err), [], 400) from err


def _apply_details(invoice: Invoice, details: UploadDetails) -> None:
    """Fill what the upload adds, then re-run the checks that depend on it."""
    contact = invoice.customer_contact
    contact.email = details.client_email or contact.email
    contact.phone = details.client_phone or contact.phone
    contact.name = details.client_contact_name or contact.name
    if details.participants:
        invoice.participant_names = [p.name for p in details.participants]
        invoice.participant_count = max(
            len(details.participants), invoice.participant_count or 0
        )
    ubl.check(invoice)  # drops and recomputes its own problems


def _check_provider(invoice: Invoice, details: UploadDetails) -> None:
    if not details.provider_id:
        return
    stated = _stated_provider(details.provider_id)
    supplier = invoice.supplier.enterprise_number
    if supplier and supplier != stated:
        invoice.problems.append(
            Problem(
                code="provider_mismatch",
                field="supplier.enterprise_number",
                message=f"invoice {invoice.number} was issued by {supplier}, "
                f"not by provider {stated}; upload it to the right container",
            )
        )


def _stated_provider(provider_id: str) -> str:
    """The upload's provider number in standard form; a 422 naming `provider`."""
    try:
        return enterprise.normalize(provider_id)
    except enterprise.InvalidEnterpriseNumber as err:
        problem = Problem(
            code="invalid_provider",
            field="provider",
            message=f"provider: {err}",
        )
        raise IntakeError(problem.message, [problem], 422) from err


def _dossier(invoice: Invoice, details: UploadDetails, today: date) -> DossierInput:
    kind = invoice.kind or Kind.TRAINING
    start = invoice.period_start or invoice.issue_date or today
    end = invoice.period_end or start
    participants = details.participants or [
        Participant(name) for name in invoice.participant_names
    ]
    count = max(len(participants), invoice.participant_count or 0)
    if kind == Kind.TRAINING and count < 1:
        count = 1  # at least the client's own person; staff adds names later
    provider_id = enterprise.digits(invoice.supplier.enterprise_number or "")
    dossier_id = dossier_id_for(provider_id, invoice.number or "")
    warnings = intake_warnings(invoice, kind, today)
    contact = invoice.customer_contact
    return DossierInput(
        dossier_id=dossier_id,
        kind=kind,
        provider=Provider(
            provider_id=provider_id,
            name=invoice.supplier.name or provider_id,
            dv_number=invoice.dv_number or "",
            container_email=f"{provider_id}@containers.kmo-dossier.example",
        ),
        client=ClientInfo(
            name=invoice.customer.name or "",
            enterprise_number=invoice.customer.enterprise_number or "",
            contact_name=contact.name,
            email=contact.email,
            phone=contact.phone,
            language=details.language or "nl",
            has_platform_account=bool(details.has_platform_account),
        ),
        invoice_number=invoice.number or "",
        invoice_date=invoice.issue_date or today,
        start_date=start,
        end_date=end,
        project_amount_excl_vat=invoice.total_excl_vat or Decimal("0"),
        fee=compute_fee(kind, start, end, count if kind == Kind.TRAINING else 0),
        participants=participants,
        session_dates=sorted(details.session_dates),
        warnings=warnings,
        title=invoice.lines[0].description if invoice.lines else "",
        theme=theme_of(kind, invoice_text(invoice)),
    )


def dossier_id_for(provider_id: str, invoice_number: str) -> str:
    """A readable, URL-safe id, unique per provider and invoice number.

    Invoice numbers like `CVA/26/031` are slugged; when the slug had to drop
    characters, a short hash of the original keeps two numbers apart.
    """
    slug = re.sub(r"[^A-Za-z0-9]+", "-", invoice_number).strip("-").lower()
    if not re.fullmatch(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*", invoice_number):
        slug += "-" + hashlib.sha256(invoice_number.encode()).hexdigest()[:6]
    return f"{provider_id}-{slug}"


def prepared_to_json(prepared: Prepared) -> dict[str, Any]:
    """JSON-ready view of a prepared invoice, for `inspect --json` and the API."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, date):
            return value.isoformat()
        return value

    return plain(
        {
            "can_start": prepared.can_start,
            "dossier_id": prepared.dossier.dossier_id if prepared.dossier else None,
            "cancels": prepared.cancels,
            "invoice": asdict(prepared.invoice),
            "fee": asdict(prepared.fee) if prepared.fee else None,
            "warnings": [asdict(w) for w in prepared.warnings],
            "problems": [asdict(p) for p in prepared.problems],
        }
    )


# --- archive, records, workflow ----------------------------------------------


class FollowUpDefaults(BaseSettings):
    """Staff's reminder cadences for new dossiers, from `DOSSIER_FOLLOW_UP_*`.

    A running dossier keeps the policy it started with; staff change one
    dossier's cadences with the details signal (`policy`).
    """

    model_config = SettingsConfigDict(env_prefix="DOSSIER_FOLLOW_UP_", extra="ignore")

    reminder_every_days: int = Field(7, gt=0)
    reminders_before_call: int = Field(2, gt=0)
    signature_reminder_every_days: int = Field(5, gt=0)
    deposit_reminder_every_days: int | None = Field(None, gt=0)
    payment_order_reminder_every_days: int | None = Field(None, gt=0)
    payment_order_days: int = Field(14, gt=0)

    def policy(self) -> FollowUpPolicy:
        return FollowUpPolicy(**self.model_dump())


def client_subsidies(
    session: Any, archive: Any, client_enterprise_number: str, *, leave_out: str
) -> list[tuple[int, Decimal]]:
    """(start year, expected subsidy) of the client's other live dossiers.

    As the records keep them (`save_dossier`), in one query; cancelled and
    lapsed dossiers get no subsidy. A dossier recorded before the records
    kept them (start date NULL) is read from its archived UBL invoice, a
    small enterprise assumed; a PDF one of those is left out.
    """
    rows = session.execute(
        select(Dossier.dossier_id, Dossier.start_date, Dossier.expected_subsidy).where(
            Dossier.client_enterprise_number == client_enterprise_number,
            Dossier.dossier_id != leave_out,
            Dossier.outcome.is_distinct_from(Step.CANCELLED.value),
            Dossier.outcome.is_distinct_from(Step.LAPSED.value),
        )
    ).all()
    found: list[tuple[int, Decimal]] = []
    for dossier_id, start_date, subsidy in rows:
        if start_date is None:
            other = _archived_dossier(session, archive, dossier_id)
            if other is None:
                continue
            start_date, subsidy = other.start_date, _expected_subsidy(other)
        if subsidy is not None:
            found.append((start_date.year, subsidy))
    return found


def _archived_dossier(
    session: Any, archive: Any, dossier_id: str
) -> DossierInput | None:
    items = session.scalars(
        select(ArchiveItem)
        .where(ArchiveItem.dossier_id == dossier_id)
        .order_by(ArchiveItem.created_at)
    ).all()
    for item in items:
        if "xml" not in item.content_type and not item.name.endswith(".xml"):
            continue
        prepared = prepare(archive.get(item.key), item.name, UploadDetails())
        if prepared.dossier is not None:
            return prepared.dossier
    return None


def _expected_subsidy(dossier: DossierInput) -> Decimal | None:
    subsidy = dossier.subsidy()
    return subsidy.subsidy if subsidy else None


class IntakeService:
    def __init__(
        self,
        settings: Any,
        client: Client,
        session_factory: Any,
        archive: Any,
        *,
        search_attributes: bool = True,
        policy: FollowUpPolicy | None = None,
    ) -> None:
        self._settings = settings
        self._client = client
        self._sessions = session_factory
        self._archive = archive
        self._search_attributes = search_attributes
        self._policy = policy or FollowUpDefaults().policy()

    async def submit(
        self, data: bytes, filename: str, content_type: str, details: UploadDetails
    ) -> IntakeResult:
        prepared = prepare(data, filename, details)
        invoice = prepared.invoice
        if invoice.document_type == DocumentType.CREDIT_NOTE:
            return await self._cancel_by_credit_note(prepared, data, filename, details)
        if prepared.dossier is None:
            raise IntakeError(_summary(invoice), prepared.problems, 422)

        dossier = self._with_container(prepared.dossier)
        dossier = replace(dossier, policy=self._policy)
        cap = self._annual_cap_warning(dossier)
        if cap is not None:
            dossier = replace(dossier, warnings=[*dossier.warnings, cap])
        stored = self._archive.put(
            dossier.provider.provider_id,
            dossier.dossier_id,
            filename,
            data,
            retain_until=retention_until(dossier.start_date),
            content_type=content_type,
        )
        dossier = replace(dossier, invoice_archive_key=stored.key)
        first = self._first_invoice(dossier.dossier_id)
        if first is not None and first.sha256 != stored.sha256:
            changed = _changed_invoice_warning(invoice)
            dossier = replace(dossier, warnings=[*dossier.warnings, changed])
            self._record_changed(dossier, stored, filename, first)
            created = False
        else:
            created = self._record(dossier, stored, filename)
        await self._start(dossier)
        log.info(
            "dossier.intake",
            dossier_id=dossier.dossier_id,
            created=created,
            warnings=len(dossier.warnings),
        )
        return IntakeResult(
            dossier.dossier_id,
            workflow_id(dossier.dossier_id),
            created,
            dossier.fee,
            dossier.warnings,
        )

    def _annual_cap_warning(self, dossier: DossierInput) -> Warning | None:
        """Warn when this dossier takes the client's yearly subsidy over the cap."""
        this = _expected_subsidy(dossier)
        if this is None or not dossier.client.enterprise_number:
            return None
        with self._sessions() as session:
            others = client_subsidies(
                session,
                self._archive,
                dossier.client.enterprise_number,
                leave_out=dossier.dossier_id,
            )
        year = dossier.start_date.year
        return annual_cap_warning([*others, (year, this)], year)

    def _with_container(self, dossier: DossierInput) -> DossierInput:
        domain = getattr(self._settings, "mail_domain", "kmo-dossier.example")
        address = f"{dossier.provider.provider_id}@containers.{domain}"
        return replace(
            dossier, provider=replace(dossier.provider, container_email=address)
        )

    def _record(self, dossier: DossierInput, invoice: ArchivedItem, name: str) -> bool:
        """Record provider, dossier and archived invoice; False when known."""
        with self._sessions() as session, session.begin():
            created = session.get(Dossier, dossier.dossier_id) is None
            save_dossier(session, dossier, workflow_id(dossier.dossier_id))
            record_archived(
                session,
                invoice,
                container=dossier.provider.provider_id,
                dossier_id=dossier.dossier_id,
                name=name,
                content_type=invoice.content_type,
            )
        return created

    def _first_invoice(self, dossier_id: str) -> ArchiveItem | None:
        """The invoice a known dossier started from: its first archived item."""
        with self._sessions() as session:
            if session.get(Dossier, dossier_id) is None:
                return None
            return session.scalars(
                select(ArchiveItem)
                .where(ArchiveItem.dossier_id == dossier_id)
                .order_by(ArchiveItem.created_at, ArchiveItem.key)
                .limit(1)
            ).first()

    def _record_changed(
        self,
        dossier: DossierInput,
        invoice: ArchivedItem,
        name: str,
        first: ArchiveItem,
    ) -> None:
        """Keep a changed invoice beside the first and tell staff on the timeline.

        The dossier's record stays as its workflow runs it, from the first
        invoice. The line names no person: the invoice number and the files'
        checksums only, once per changed file however often it comes.
        """
        source = f"intake.invoice_changed:{invoice.key}"
        with self._sessions() as session, session.begin():
            record_archived(
                session,
                invoice,
                container=dossier.provider.provider_id,
                dossier_id=dossier.dossier_id,
                name=name,
                content_type=invoice.content_type,
            )
            seen = select(TimelineEvent.id).where(TimelineEvent.source == source)
            if session.scalar(seen) is None:
                row = session.get(Dossier, dossier.dossier_id)
                session.add(
                    TimelineEvent(
                        dossier_id=dossier.dossier_id,
                        at=utcnow(),
                        event="invoice.changed",
                        detail=(
                            f"invoice {dossier.invoice_number} uploaded again with "
                            f"other content (sha256 {invoice.sha256[:12]}, first "
                            f"upload {first.sha256[:12]}); the dossier keeps the "
                            "first, check with the provider"
                        ),
                        step=row.step if row is not None else None,
                        source=source,
                    )
                )
        log.warning(
            "dossier.invoice_changed",
            dossier_id=dossier.dossier_id,
            sha256=invoice.sha256,
            first_sha256=first.sha256,
        )

    async def _start(self, dossier: DossierInput) -> None:
        attributes = TypedSearchAttributes.empty
        if self._search_attributes:
            attributes = TypedSearchAttributes(
                [
                    SearchAttributePair(search.STEP, "received"),
                    SearchAttributePair(search.KIND, dossier.kind.value),
                    SearchAttributePair(search.PROVIDER, dossier.provider.provider_id),
                    SearchAttributePair(
                        search.CLIENT, dossier.client.enterprise_number
                    ),
                ]
            )
        try:
            await self._client.start_workflow(
                DossierWorkflow.run,
                dossier,
                id=workflow_id(dossier.dossier_id),
                task_queue=self._settings.task_queue,
                id_conflict_policy=ConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=attributes,
            )
        except WorkflowAlreadyStartedError:
            pass  # closed already: the same invoice again changes nothing

    async def _cancel_by_credit_note(
        self, prepared: Prepared, data: bytes, filename: str, details: UploadDetails
    ) -> IntakeResult:
        note = prepared.invoice
        dossier_id = prepared.cancels
        if dossier_id is None:
            raise IntakeError(_summary(note), prepared.problems, 422)
        provider_id = enterprise.digits(note.supplier.enterprise_number or "")
        _check_credit_note_provider(note, provider_id, details)
        handle = self._client.get_workflow_handle(workflow_id(dossier_id))
        no_dossier = IntakeError(
            f"credit note {note.number} cancels invoice "
            f"{note.billing_reference}, but no running dossier has that invoice",
            [],
            422,
        )
        try:
            described = await handle.describe()
        except RPCError as err:
            raise no_dossier from err
        digest = hashlib.sha256(data).hexdigest()
        if described.status != WorkflowExecutionStatus.RUNNING:
            if await asyncio.to_thread(self._holds, dossier_id, digest):
                log.info("dossier.credit_note_repeated", dossier_id=dossier_id)
                return IntakeResult(dossier_id, handle.id, False, None, [], True)
            raise no_dossier
        # Kept before the cancel is sent: should the signal fail, the upload
        # can be repeated, and the note is never missing from a cancelled
        # dossier's evidence.
        await asyncio.to_thread(
            self._keep_credit_note, provider_id, dossier_id, filename, data, note
        )
        try:
            await handle.signal(
                DossierWorkflow.cancel,
                CancelInput(
                    reason="cancelled by credit note",
                    by="intake",
                    credit_note_number=note.number,
                ),
            )
        except RPCError as err:
            raise no_dossier from err
        log.info("dossier.credit_note", dossier_id=dossier_id)
        return IntakeResult(dossier_id, handle.id, False, None, [], cancelled=True)

    def _holds(self, dossier_id: str, digest: str) -> bool:
        """Whether the dossier's records hold an archived file with this hash."""
        with self._sessions() as session:
            found = session.scalar(
                select(ArchiveItem.key).where(
                    ArchiveItem.dossier_id == dossier_id, ArchiveItem.sha256 == digest
                )
            )
        return found is not None

    def _keep_credit_note(
        self,
        provider_id: str,
        dossier_id: str,
        filename: str,
        data: bytes,
        note: Invoice,
    ) -> None:
        """Archive and record the note as long as the dossier it cancels is kept.

        It sits in the dossier's records, so the evidence shows what ended it.
        """
        with self._sessions() as session, session.begin():
            kept_until = dossier_retention(session, dossier_id) or retention_until(
                note.issue_date or date.today()
            )
            stored = self._archive.put(
                provider_id,
                dossier_id,
                filename,
                data,
                retain_until=kept_until,
                content_type="application/xml",
            )
            record_archived(
                session,
                stored,
                container=provider_id,
                dossier_id=dossier_id,
                name=filename,
                content_type="application/xml",
            )


def _changed_invoice_warning(invoice: Invoice) -> Warning:
    return Warning(
        code="invoice_changed",
        message=f"invoice {invoice.number} is known, but this file differs from "
        "the first upload; no second dossier was started and the dossier keeps "
        "the first invoice: if the invoice was corrected, send a credit note for "
        "it and a new invoice with its own number",
        rule="one dossier per invoice: a provider's invoice number starts one dossier",
    )


def _check_credit_note_provider(
    note: Invoice, provider_id: str, details: UploadDetails
) -> None:
    """A credit note uploaded for a provider cancels only that provider's dossier."""
    if not details.provider_id:
        return
    stated = enterprise.digits(_stated_provider(details.provider_id))
    if stated != provider_id:
        problem = Problem(
            code="provider_mismatch",
            field="supplier.enterprise_number",
            message=f"credit note {note.number} was issued by {provider_id}, "
            f"not by provider {stated}; it cannot cancel another provider's dossier",
        )
        raise IntakeError(problem.message, [problem], 422)


def _summary(invoice: Invoice) -> str:
    errors = [p.message for p in invoice.problems if p.severity == Severity.ERROR]
    name = invoice.number or "the invoice"
    if not errors:
        return f"{name} cannot start a dossier"
    return f"{name} cannot start a dossier: " + "; ".join(errors)
