"""DossierWorkflow: one KMO-portefeuille dossier, from invoice to closing.

The steps follow the brochure: onboarding mail (only without a platform
account), application, terms to sign, payment follow-up (deposit, then the
payment order), attendance list, satisfaction form, certificate (training) or
final report (advice), close. Every wait is a durable timer that reminds the
client by mail at office hours and opens a phone-call task for staff when the
wait drags on.

Activities are called by name so that this module imports no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from kmo.calendar import local_date, next_working_day, office_morning
    from kmo.models import Kind
    from kmo.rules import retention_until
    from kmo.subsidy import Subsidy
    from workflows import search
    from workflows.messages import (
        AbsenceInput,
        ApplicationInput,
        AttendanceLine,
        CallInput,
        CancelInput,
        CertificateInput,
        CertificateResult,
        CloseInput,
        Deadline,
        DepositInput,
        DetailsInput,
        Document,
        DossierInput,
        DossierResult,
        DossierStatus,
        FinalReportInput,
        MailEventInput,
        MailInput,
        MailResult,
        PaymentInput,
        ProgressInput,
        ResendInput,
        SignatureInput,
        SignLinksInput,
        SignLinksResult,
        SkipInput,
        Step,
        Task,
        TaskInput,
        TimelineEntry,
    )

ACTIVITY_TIMEOUT = timedelta(seconds=30)  # a dead worker is noticed this soon
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=["MissingRecipient", "InvalidInput"],
)
CALL_BEFORE_DEADLINE = timedelta(days=3)
CLIENT = "client"
# Dossiers started before this patch keep their recorded commands: no final
# date, no closing of call tasks when a wait ends, no syncing of logged calls.
FOLLOW_UP_PATCH = "follow-up-2026-12"
# Dossiers started before this patch remind with the links of the first mail,
# which expire after 30 days; later ones get fresh links in every reminder.
FRESH_LINKS_PATCH = "fresh-sign-links-2026-12"
# Dossiers started before this patch upsert their search attributes at every
# step and wait even when nothing changed, and record the onboarding step
# before its mail; later ones upsert only the attributes that changed and
# send the onboarding mail first (the client hears from us one activity
# sooner).
FEWER_COMMANDS_PATCH = "fewer-commands-2026-12"
# Dossiers started before this patch upsert their search attributes on
# entering every step; later ones when they begin to wait (and at the close),
# so a step that its early signals let the dossier pass through costs the
# server no visibility write. What staff filter on is the same once the
# dossier waits; while an activity retries, the attributes show the step
# before it (the records and the status query have the current one).
WAIT_TO_PUBLISH_PATCH = "publish-on-wait-2026-12"
MAIL_PROBLEMS = {
    "bounce": "bounced",
    "dropped": "was dropped by SendGrid",
    "spamreport": "was reported as spam",
}


class DossierStopped(Exception):
    """Raised inside the workflow when staff cancels or a deadline lapses."""

    def __init__(self, outcome: Step, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


@dataclass
class Chase:
    """How to follow up one wait: who gets which reminder, and the deadline.

    `every_days` is the cadence when the chase starts; a policy sent later
    with the details signal takes over from then on (see `_every_days`).
    """

    step: Step
    template: str
    every_days: int
    deadline: date | None = None
    lapse_at_deadline: bool = False
    to_provider: bool = False
    sign_links: dict[str, str] | None = None
    extra: dict[str, str] | None = None
    document: Document | None = None  # a signature wait: what is to be signed
    signers: list[str] | None = None


@workflow.defn
class DossierWorkflow:
    @workflow.init
    def __init__(self, dossier: DossierInput) -> None:
        self._dossier = dossier
        self._step = Step.ONBOARDING
        self._deadlines: dict[str, Deadline] = {}
        self._tasks: dict[str, Task] = {}
        self._timeline: list[TimelineEntry] = []
        self._sent: dict[str, int] = {}  # template -> mails sent so far
        self._skipped: dict[Step, str] = {}
        self._resend: Step | None = None
        self._details_version = 0
        self._stop: DossierStopped | None = None
        self._project_number: str | None = None
        self._application_filed_on: date | None = None
        self._deposit_on: date | None = None
        self._payment_on: date | None = None
        self._signatures: dict[Document, set[tuple[str, date | None]]] = {}
        # (participant, day), or (participant, None) for every day; the reason
        # is on the timeline
        self._absences: set[tuple[str, date | None]] = set()
        self._final_report: FinalReportInput | None = None
        self._mails_sent = 0
        self._follow_up_v2 = False  # set in `run`: see FOLLOW_UP_PATCH
        self._fresh_links = False  # set in `run`: see FRESH_LINKS_PATCH
        self._fewer_commands = False  # set in `run`: see FEWER_COMMANDS_PATCH
        self._publish_on_wait = False  # set in `run`: see WAIT_TO_PUBLISH_PATCH
        self._policy_version = 0
        self._tasks_to_record: list[str] = []  # task ids changed by a signal
        self._mail_events: set[str] = set()  # SendGrid event ids already seen

    # --- the procedure -----------------------------------------------------

    @workflow.run
    async def run(self, dossier: DossierInput) -> DossierResult:
        self._follow_up_v2 = workflow.patched(FOLLOW_UP_PATCH)
        self._fresh_links = workflow.patched(FRESH_LINKS_PATCH)
        self._fewer_commands = workflow.patched(FEWER_COMMANDS_PATCH)
        self._publish_on_wait = workflow.patched(WAIT_TO_PUBLISH_PATCH)
        self._note("dossier.started", self._dossier.invoice_number)
        try:
            await self._onboarding()
            await self._application()
            self._final_date_deadline()
            await self._terms()
            await self._payment()
            await self._attendance()
            await self._satisfaction()
            if self._dossier.kind == Kind.TRAINING:
                await self._certificates()
            else:
                await self._final_report_step()
        except DossierStopped as stop:
            return await self._close(stop.outcome, stop.reason)
        return await self._close(Step.CLOSED, "all steps done")

    async def _onboarding(self) -> None:
        if self._dossier.client.has_platform_account:
            self._note("step.not_needed", "client already has a platform account")
            return
        if not self._fewer_commands:
            if await self._enter(Step.ONBOARDING):
                await self._mail("onboarding")
            return
        if await self._enter(Step.ONBOARDING, record=False):
            await self._mail("onboarding")
            await self._record_entered(Step.ONBOARDING)

    async def _application(self) -> None:
        deadline = self._dossier.start_date + timedelta(
            days=self._dossier.policy.application_deadline_days
        )
        self._deadline("application", deadline)
        if not await self._enter(Step.APPLICATION):
            return
        await self._mail("application", extra={"deadline": deadline.isoformat()})
        already_late = self._today() > deadline
        chase = Chase(
            Step.APPLICATION,
            "application",
            self._dossier.policy.reminder_every_days,
            deadline=deadline,
            lapse_at_deadline=not already_late,
        )
        if already_late:
            await self._open_task(
                Step.APPLICATION,
                "the application deadline had passed when the invoice arrived: "
                "ask the client whether and when it filed",
            )
        await self._chase(chase, lambda: self._project_number is not None)
        self._met("application")

    async def _terms(self) -> None:
        if not await self._enter(Step.TERMS):
            return
        await self._sign_and_wait(Document.TERMS, "terms", [CLIENT])

    async def _payment(self) -> None:
        if not await self._enter(Step.PAYMENT):
            return
        policy = self._dossier.policy
        counted_from = self._application_filed_on or self._today()
        deposit_due = counted_from + timedelta(days=policy.deposit_deadline_days)
        self._deadline("deposit", deposit_due)
        extra = {"deadline": deposit_due.isoformat(), **self._amounts()}
        await self._mail("deposit", extra=extra)
        every = self._every_days("deposit")
        await self._chase(
            Chase(Step.PAYMENT, "deposit", every, deposit_due, extra=extra),
            lambda: self._deposit_on is not None or self._payment_on is not None,
        )
        self._met("deposit")
        if self._payment_on is not None:
            return
        order_due = self._today() + timedelta(days=policy.payment_order_days)
        self._deadline("payment order", order_due)
        extra = {"deadline": order_due.isoformat()}
        await self._mail("payment_order", extra=extra)
        every = self._every_days("payment_order")
        await self._chase(
            Chase(Step.PAYMENT, "payment_order", every, order_due, extra=extra),
            lambda: self._payment_on is not None,
        )
        self._met("payment order")

    async def _attendance(self) -> None:
        if self._dossier.kind != Kind.TRAINING:
            self._note("step.not_needed", "an advice has no attendance list")
            return
        if not await self._enter(Step.ATTENDANCE):
            return
        await self._until_training_ends()
        self._raise_if_stopped()
        if self._is_skipped(Step.ATTENDANCE):
            return
        signers = [p.name for p in self._dossier.participants if p.email]
        if len(signers) < len(self._dossier.participants) or not signers:
            signers.append(CLIENT)  # the client's link lists the others on site
        await self._sign_and_wait(Document.ATTENDANCE, "attendance", signers)

    async def _satisfaction(self) -> None:
        if not await self._enter(Step.SATISFACTION):
            return
        await self._sign_and_wait(Document.SATISFACTION, "satisfaction", [CLIENT])

    async def _certificates(self) -> None:
        if not await self._enter(Step.CERTIFICATE):
            return
        if not self._dossier.participants:
            await self._open_task(
                Step.CERTIFICATE,
                "participant names are missing: add them with the details "
                "signal so that certificates can be made",
            )
            await self._wait_for(
                lambda: (
                    bool(self._dossier.participants)
                    or self._is_skipped(Step.CERTIFICATE)
                )
            )
            if self._is_skipped(Step.CERTIFICATE):
                return
        for number, participant in enumerate(self._dossier.participants, 1):
            if self._absent_throughout(participant.name):
                self._note("certificate.not_made", f"{participant.name}: absent")
                continue
            certificate = await self._activity(
                "render_certificate",
                CertificateInput(self._dossier, participant),
                CertificateResult,
            )
            recipients = [self._client_email()]
            if participant.email:
                recipients.append(participant.email)
            await self._mail(
                "certificate",
                mail_id=f"certificate-{number}",
                to=recipients,
                attachments=[certificate.archive_key],
                extra={"participant": participant.name},
            )

    async def _final_report_step(self) -> None:
        if not await self._enter(Step.FINAL_REPORT):
            return
        await self._mail("final_report_request", to_provider=True)
        await self._chase(
            Chase(
                Step.FINAL_REPORT,
                "final_report_request",
                self._every_days("final_report_request"),
                to_provider=True,
            ),
            lambda: self._final_report is not None,
        )
        if self._final_report is not None:
            await self._mail(
                "final_report", attachments=[self._final_report.archive_key]
            )

    async def _close(self, outcome: Step, reason: str) -> DossierResult:
        self._step = outcome
        if outcome == Step.CLOSED:
            self._met("final date")
        self._note(f"dossier.{outcome.value}", reason)
        if outcome == Step.LAPSED:
            await self._mail("lapsed", best_effort=True)
        elif outcome == Step.CANCELLED:
            await self._mail("cancelled", best_effort=True)
        if self._follow_up_v2:
            self._close_open_tasks(f"dossier {outcome.value}")
            await self._record_tasks()
        fee = self._dossier.fee if outcome == Step.CLOSED else None
        retention = retention_until(self._dossier.start_date)
        await self._activity(
            "close_dossier",
            CloseInput(self._dossier.dossier_id, outcome, fee, retention),
        )
        self._publish_search_attributes()
        return DossierResult(self._dossier.dossier_id, outcome, fee, workflow.now())

    # --- waiting and chasing -----------------------------------------------

    async def _sign_and_wait(
        self, document: Document, template: str, signers: list[str]
    ) -> None:
        links = await self._activity(
            "create_sign_links",
            SignLinksInput(self._dossier, document, signers),
            SignLinksResult,
        )
        await self._mail(template, sign_links=links.links)
        every = self._every_days(template)
        chase = Chase(
            self._step,
            template,
            every,
            sign_links=links.links,
            document=document,
            signers=signers,
        )
        await self._chase(chase, lambda: self._is_signed(document))

    async def _chase(self, chase: Chase, done: Callable[[], bool]) -> None:
        """Remind until `done`, the step is skipped, or the dossier stops.

        Every `every_days` a reminder mail; after `reminders_before_call`
        reminders, and a few days before a deadline, a phone-call task. A
        deadline that passes either lapses the dossier or hands it to staff.
        """
        reminders = 0
        last_contact = self._today()
        call_opened = False
        policy_seen = self._policy_version
        while True:
            if self._policy_version != policy_seen:
                policy_seen = self._policy_version
                chase = replace(chase, every_days=self._every_days(chase.template))
            wake = self._next_wake(chase, last_contact, call_opened)
            if not self._publish_on_wait:
                self._publish_search_attributes()
            finished = await self._wait_for(
                lambda step=chase.step: done() or self._is_skipped(step),
                until=wake,
                wake_on_resend=True,
            )
            if finished:
                await self._close_calls(chase.step, "no longer needed")
                return
            if self._resend is not None:
                self._resend = None
                await self._remind(chase)
                continue
            today = self._today()
            if chase.deadline and today > chase.deadline:
                if chase.lapse_at_deadline:
                    raise DossierStopped(
                        Step.LAPSED, f"{chase.step.value} deadline passed"
                    )
                if not call_opened:
                    call_opened = await self._call(chase, "the deadline has passed")
                chase = replace(chase, deadline=None)
                continue
            near = chase.deadline and today >= chase.deadline - CALL_BEFORE_DEADLINE
            if near and not call_opened:
                call_opened = await self._call(chase, "the deadline is near")
            if today >= last_contact + timedelta(days=chase.every_days):
                await self._remind(chase)
                reminders += 1
                last_contact = today
                every_call = self._dossier.policy.reminders_before_call
                if reminders % every_call == 0:
                    call_opened = await self._call(
                        chase, f"{reminders} reminders without answer"
                    )

    def _next_wake(self, chase: Chase, last_contact: date, call_opened: bool) -> date:
        candidates = [last_contact + timedelta(days=chase.every_days)]
        if chase.deadline:
            candidates.append(chase.deadline + timedelta(days=1))
            if not call_opened:
                candidates.append(chase.deadline - CALL_BEFORE_DEADLINE)
        today = self._today()
        future = [day for day in candidates if day > today]
        return min(future) if future else today + timedelta(days=1)

    async def _wait_for(
        self,
        condition: Callable[[], bool],
        until: date | None = None,
        wake_on_resend: bool = False,
    ) -> bool:
        """Wait for `condition`; True when it holds, False when `until` came first.

        Raises DossierStopped when staff cancelled. A chase also wakes for a
        resend request, which it answers with a mail.
        """

        def woken() -> bool:
            resend = wake_on_resend and self._resend is not None
            return condition() or self._stop is not None or resend

        def tasks_changed() -> bool:
            return self._follow_up_v2 and bool(self._tasks_to_record)

        while True:
            if self._publish_on_wait and not (woken() or tasks_changed()):
                self._publish_search_attributes()  # it is going to wait
            timeout = None
            if until is not None:
                timeout = max(
                    office_morning(until) - workflow.now(), timedelta(seconds=1)
                )
            try:
                await workflow.wait_condition(
                    lambda: woken() or tasks_changed(), timeout=timeout
                )
            except TimeoutError:
                break
            if woken() or not tasks_changed():
                break
            await self._record_tasks()  # a logged call, then wait on
        self._raise_if_stopped()
        return condition()

    async def _until_training_ends(self) -> None:
        """Sleep until the morning after the last session; dates may change."""
        while True:
            last_day = max(self._dossier.session_dates or [self._dossier.end_date])
            self._deadline("last session", last_day)
            if self._today() > last_day:
                self._met("last session")
                return
            seen = self._details_version
            await self._wait_for(
                lambda seen=seen: (
                    self._details_version != seen or self._is_skipped(Step.ATTENDANCE)
                ),
                until=last_day + timedelta(days=1),
            )
            if self._is_skipped(Step.ATTENDANCE):
                return

    # --- side effects ------------------------------------------------------

    async def _mail(
        self,
        template: str,
        *,
        to: list[str] | None = None,
        to_provider: bool = False,
        sign_links: dict[str, str] | None = None,
        attachments: list[str] | None = None,
        extra: dict[str, str] | None = None,
        best_effort: bool = False,
        mail_id: str | None = None,
    ) -> None:
        """Send one mail; what staff must fix becomes a task, then a retry.

        `mail_id` tells apart mails of one template that are not reminders of
        each other (a certificate per participant); it defaults to the template.
        """
        mail_id = mail_id or template
        sequence = self._sent.get(mail_id, 0)
        while True:
            recipients = to or [
                self._dossier.provider.container_email
                if to_provider
                else self._client_email()
            ]
            mail = MailInput(
                key=f"{workflow.info().workflow_id}/{mail_id}/{sequence}",
                dossier=self._dossier,
                template=template,
                to=[r for r in recipients if r],
                sequence=sequence,
                sign_links=sign_links or {},
                attachment_keys=attachments or [],
                extra=extra or {},
                progress=ProgressInput(
                    self._dossier.dossier_id,
                    self._step,
                    next_deadline=self._next_deadline(),
                ),
            )
            try:
                await self._activity("send_mail", mail, MailResult)
                break
            except ActivityError as err:
                cause = err.cause
                if not (isinstance(cause, ApplicationError) and cause.non_retryable):
                    raise
                if best_effort:
                    self._note("mail.not_sent", f"{template}: {cause.type}")
                    return
                await self._needs_staff(cause.message)
        self._sent[mail_id] = sequence + 1
        self._mails_sent += 1
        self._note("mail.sent", f"{template} #{sequence}")

    async def _needs_staff(self, message: str) -> None:
        """A mail that cannot go out as it is: staff fixes the details or resends.

        Details that arrive while the task is being recorded count too.
        """
        seen = self._details_version
        await self._open_task(self._step, message, kind="review")
        await self._wait_for(lambda: self._details_version != seen, wake_on_resend=True)
        self._resend = None

    async def _remind(self, chase: Chase) -> None:
        sign_links = chase.sign_links
        if self._fresh_links and chase.document is not None and chase.signers:
            fresh = await self._activity(
                "create_sign_links",
                SignLinksInput(self._dossier, chase.document, chase.signers),
                SignLinksResult,
            )
            sign_links = fresh.links  # a new token, valid 30 days from now
        await self._mail(
            chase.template,
            to_provider=chase.to_provider,
            sign_links=sign_links,
            extra=chase.extra,
        )

    async def _close_calls(self, step: Step, outcome: str) -> None:
        """Close the open call tasks of a wait that ended, in the records too."""
        if not self._follow_up_v2:
            return
        self._close_open_tasks(outcome, kind="call", step=step)
        await self._record_tasks()

    def _close_open_tasks(
        self, outcome: str, kind: str | None = None, step: Step | None = None
    ) -> None:
        for task in self._tasks.values():
            if (
                task.done
                or kind not in (None, task.kind)
                or step not in (None, task.step)
            ):
                continue
            task.done = True
            task.outcome = outcome
            self._tasks_to_record.append(task.task_id)

    async def _record_tasks(self) -> None:
        """Write the tasks that signals closed to the records, once each."""
        while self._tasks_to_record:
            task_id = self._tasks_to_record.pop(0)
            if task_id in self._tasks_to_record:
                continue  # changed again; the later write carries both
            task = self._tasks[task_id]
            await self._activity("open_task", TaskInput(self._dossier.dossier_id, task))

    async def _call(self, chase: Chase, why: str) -> bool:
        whom = "the provider" if chase.to_provider else "the client"
        await self._open_task(chase.step, f"call {whom}: {why}")
        return True

    async def _open_task(self, step: Step, reason: str, kind: str = "call") -> None:
        task = self._new_task(step, reason, kind)
        await self._activity("open_task", TaskInput(self._dossier.dossier_id, task))

    def _new_task(self, step: Step, reason: str, kind: str) -> Task:
        task = Task(
            task_id=f"{self._dossier.dossier_id}-{len(self._tasks) + 1}",
            kind=kind,
            step=step,
            due=next_working_day(self._today() + timedelta(days=1)),
            reason=reason,
        )
        self._tasks[task.task_id] = task
        self._note("task.opened", f"{task.task_id}: {reason}")
        return task

    async def _enter(self, step: Step, record: bool = True) -> bool:
        """Make `step` current; False when staff skipped it beforehand.

        With `record=False` the caller records the step in the records later
        (`_record_entered`), e.g. after its first mail.
        """
        self._raise_if_stopped()
        self._step = step
        if self._is_skipped(step):
            return False
        self._note("step.entered", step.value)
        if not self._publish_on_wait:
            self._publish_search_attributes()
        if record:
            await self._record_entered(step)
        return True

    async def _record_entered(self, step: Step) -> None:
        await self._activity(
            "record_progress",
            ProgressInput(
                self._dossier.dossier_id,
                step,
                next_deadline=self._next_deadline(),
                event="step.entered",
                detail=step.value,
            ),
        )

    async def _activity(self, name: str, arg: object, result_type: type | None = None):
        return await workflow.execute_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )

    # --- signals -----------------------------------------------------------

    @workflow.signal(description="A client or participant signed a document.")
    def record_signature(self, signature: SignatureInput) -> None:
        signer = signature.participant or CLIENT
        self._signatures.setdefault(signature.document, set()).add(
            (signer, signature.day)
        )
        self._note("signature.recorded", f"{signature.document.value} by {signer}")

    @workflow.signal(
        description="A participant missed a training day (or every day, without "
        "a day): the attendance list is complete without that signature."
    )
    def mark_absent(self, absence: AbsenceInput) -> None:
        known = [p.name for p in self._dossier.participants]
        if absence.participant not in known:
            self._note("absence.ignored", f"{absence.participant!r} is no participant")
            return
        days = self._dossier.session_dates
        if absence.day is not None and days and absence.day not in days:
            self._note("absence.ignored", f"{absence.day} is no training day")
            return
        self._absences.add((absence.participant, absence.day))
        day = absence.day.isoformat() if absence.day else "every day"
        self._note(
            "attendance.absent",
            f"{absence.participant} on {day} by {absence.by}: {absence.reason}",
        )

    @workflow.signal(description="The client filed its application (project number).")
    def record_application(self, application: ApplicationInput) -> None:
        self._project_number = application.project_number
        self._application_filed_on = application.filed_on or self._today()
        self._note("application.filed", application.project_number)

    @workflow.signal(description="The client's own share reached the wallet.")
    def record_deposit(self, deposit: DepositInput) -> None:
        self._deposit_on = deposit.received_on or self._today()
        self._note("deposit.recorded", self._deposit_on.isoformat())

    @workflow.signal(description="The provider was paid (payment order given).")
    def record_payment(self, payment: PaymentInput) -> None:
        self._payment_on = payment.received_on or self._today()
        self._note("payment.recorded", self._payment_on.isoformat())

    @workflow.signal(description="Staff called the client; closes the call task.")
    def log_call(self, call: CallInput) -> None:
        open_calls = [
            t for t in self._tasks.values() if t.kind == "call" and not t.done
        ]
        target = self._tasks.get(call.task_id or "") or (
            open_calls[0] if open_calls else None
        )
        if target is not None:
            target.done = True
            target.outcome = call.outcome
            self._tasks_to_record.append(target.task_id)
        self._note("call.logged", f"{call.outcome} by {call.by}")

    @workflow.signal(
        description="Add what the invoice lacked: emails, participants, dates."
    )
    def update_details(self, details: DetailsInput) -> None:
        client = self._dossier.client
        size = details.company_size
        if size is not None and size not in ("small", "medium"):
            self._note("details.ignored", f"company size {size!r}: small or medium")
            size = None
        client = replace(
            client,
            email=details.client_email or client.email,
            phone=details.client_phone or client.phone,
            contact_name=details.client_contact_name or client.contact_name,
            language=details.language or client.language,
            has_platform_account=client.has_platform_account
            if details.has_platform_account is None
            else details.has_platform_account,
        )
        self._dossier = replace(
            self._dossier,
            client=client,
            participants=self._dossier.participants
            if details.participants is None
            else details.participants,
            session_dates=self._dossier.session_dates
            if details.session_dates is None
            else sorted(details.session_dates),
            company_size=size or self._dossier.company_size,
            policy=details.policy or self._dossier.policy,
        )
        if details.policy is not None:
            self._policy_version += 1
        self._details_version += 1
        for task in self._tasks.values():
            if task.kind == "review" and not task.done:
                task.done = True
                task.outcome = "details updated"
                self._tasks_to_record.append(task.task_id)
        self._note("details.updated", f"by {details.by}")

    @workflow.signal(description="Skip a step (now or ahead), with the reason.")
    def skip_step(self, skip: SkipInput) -> None:
        self._skipped[skip.step] = skip.reason
        self._note("step.skipped", f"{skip.step.value} by {skip.by}: {skip.reason}")

    @workflow.signal(description="Send the current step's mail again.")
    def resend_mail(self, resend: ResendInput) -> None:
        step = resend.step or self._step
        if step != self._step:
            self._note("mail.resend_ignored", f"{step.value} is not the current step")
            return
        self._resend = step
        self._note("mail.resend_requested", f"{step.value} by {resend.by}")

    @workflow.signal(description="The provider uploaded the final report (advice).")
    def upload_final_report(self, report: FinalReportInput) -> None:
        self._final_report = report
        self._note("final_report.uploaded", report.filename)

    @workflow.signal(
        description="SendGrid could not deliver a mail: opens a task for staff."
    )
    def record_mail_event(self, event: MailEventInput) -> None:
        """A bounce, drop or spam report: staff checks the address and resends.

        The task is a review task, so correcting the details closes it.
        """
        if event.event_id in self._mail_events:
            return  # SendGrid posted the same event again
        self._mail_events.add(event.event_id)
        what = MAIL_PROBLEMS.get(event.event)
        if what is None:
            return
        self._note(f"mail.{event.event}", event.message_id or "")
        whom = event.recipient or "the recipient"
        status = f" ({event.status})" if event.status else ""
        task = self._new_task(
            self._step,
            f"mail to {whom} {what}{status}: check the address, then resend",
            kind="review",
        )
        self._tasks_to_record.append(task.task_id)

    @workflow.signal(description="Cancel the dossier (e.g. a credit note arrived).")
    def cancel(self, cancel: CancelInput) -> None:
        reason = cancel.reason
        if cancel.credit_note_number:
            reason = f"credit note {cancel.credit_note_number}: {reason}"
        self._stop = DossierStopped(Step.CANCELLED, f"{reason} (by {cancel.by})")
        self._note("dossier.cancel_requested", reason)

    # --- query -------------------------------------------------------------

    @workflow.query(description="Step, deadlines, open tasks, warnings, timeline.")
    def status(self) -> DossierStatus:
        subsidy = self._subsidy()
        return DossierStatus(
            dossier_id=self._dossier.dossier_id,
            kind=self._dossier.kind,
            step=self._step,
            deadlines=sorted(self._deadlines.values(), key=lambda d: d.due),
            open_tasks=[t for t in self._tasks.values() if not t.done],
            warnings=self._dossier.warnings,
            timeline=self._timeline,
            project_number=self._project_number,
            fee=self._dossier.fee,
            mails_sent=self._mails_sent,
            company_size=self._dossier.company_size,
            expected_subsidy=subsidy.subsidy if subsidy else None,
            own_share=subsidy.own_share if subsidy else None,
            attendance=self._attendance_lines(),
        )

    # --- small helpers -----------------------------------------------------

    def _today(self) -> date:
        return local_date(workflow.now())

    def _every_days(self, template: str) -> int:
        """The reminder cadence for `template`'s wait under the current policy."""
        policy = self._dossier.policy
        if template in ("terms", "attendance", "satisfaction"):
            return policy.signature_reminder_every_days
        if template == "deposit" and policy.deposit_reminder_every_days:
            return policy.deposit_reminder_every_days
        if template == "payment_order" and policy.payment_order_reminder_every_days:
            return policy.payment_order_reminder_every_days
        return policy.reminder_every_days

    def _subsidy(self) -> Subsidy | None:
        return self._dossier.subsidy()

    def _amounts(self) -> dict[str, str]:
        """The deposit mail's figures, as plain decimal strings."""
        subsidy = self._subsidy()
        if subsidy is None:
            return {}
        return {
            "project_amount": str(subsidy.project_amount),
            "subsidy": str(subsidy.subsidy),
            "own_share": str(subsidy.own_share),
            "subsidy_rate": f"{subsidy.rate * 100:.0f}",
            "company_size": subsidy.company_size,
            "size_assumed": "yes" if subsidy.size_assumed else "",
        }

    def _final_date_deadline(self) -> None:
        """The project ends by 31 December of the year after the application."""
        if not self._follow_up_v2:
            return
        filed = self._application_filed_on or self._today()
        self._deadline("final date", date(filed.year + 1, 12, 31))

    def _client_email(self) -> str:
        return self._dossier.client.email or ""

    def _is_skipped(self, step: Step) -> bool:
        return step in self._skipped

    def _is_signed(self, document: Document) -> bool:
        signed = self._signatures.get(document, set())
        if document != Document.ATTENDANCE:
            return bool(signed)
        return all(line.state != "open" for line in self._attendance_lines())

    def _absent_throughout(self, name: str) -> bool:
        """Whether the attendance list shows `name` absent on every day.

        Such a participant gets no certificate.
        """
        lines = [line for line in self._attendance_lines() if line.participant == name]
        return bool(lines) and all(line.state == "absent" for line in lines)

    def _attendance_lines(self) -> list[AttendanceLine]:
        """Each participant on each training day, with what the list holds."""
        if self._dossier.kind != Kind.TRAINING:
            return []
        signed = self._signatures.get(Document.ATTENDANCE, set())
        days = self._dossier.session_dates or [None]
        names = [p.name for p in self._dossier.participants] or [CLIENT]
        lines = []
        for name in names:
            for day in days:
                if (name, day) in signed or (CLIENT, day) in signed:
                    state = "signed"
                elif (name, day) in self._absences or (name, None) in self._absences:
                    state = "absent"
                else:
                    state = "open"
                lines.append(AttendanceLine(name, day, state))
        return lines

    def _raise_if_stopped(self) -> None:
        if self._stop is not None:
            raise self._stop

    def _deadline(self, name: str, due: date) -> None:
        met = self._deadlines[name].met if name in self._deadlines else False
        self._deadlines[name] = Deadline(name, due, met)

    def _met(self, name: str) -> None:
        if name in self._deadlines:
            self._deadlines[name].met = True

    def _next_deadline(self) -> date | None:
        open_dates = [d.due for d in self._deadlines.values() if not d.met]
        return min(open_dates) if open_dates else None

    def _note(self, event: str, detail: str = "") -> None:
        self._timeline.append(TimelineEntry(workflow.now(), event, detail))

    def _publish_search_attributes(self) -> None:
        """Keep the UI's filters current; only where the dossier started with them.

        The time-skipping test server knows no custom search attributes, so a
        dossier started without them (as in tests) never upserts any.
        """
        current = workflow.info().typed_search_attributes
        if current.get(search.STEP) is None:
            return
        updates = [search.STEP.value_set(self._step.value)]
        next_deadline = self._next_deadline()
        if next_deadline is not None:
            updates.append(
                search.NEXT_DEADLINE.value_set(office_morning(next_deadline))
            )
        if self._fewer_commands:
            # Only what changed; nothing at all when nothing did.
            updates = [u for u in updates if current.get(u.key) != u.value]
            if not updates:
                return
        workflow.upsert_search_attributes(updates)
