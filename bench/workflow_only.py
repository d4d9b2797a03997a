"""The dossier's activities with empty bodies: the workflow alone, measured.

`DossierWorkflow` runs unchanged on a worker that registers these instead of
`DossierActivities`: same names, same input and result types, but nothing is
rendered, stored or mailed. Its throughput against the baseline says what the
dossier's workflow itself costs Temporal (its search attributes, patch
markers, payloads and workflow code); against the full dossier, what our
activities' work costs. A mail's result carries no real archive key, which
the workflow only passes on to later activities, empty here too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from temporalio import activity

from workflows.messages import (
    CertificateInput,
    CertificateResult,
    CloseInput,
    MailInput,
    MailResult,
    ProgressInput,
    SignLinksInput,
    SignLinksResult,
    TaskInput,
)

EMPTY_SHA256 = "0" * 64


@activity.defn(name="send_mail")
async def send_mail(mail: MailInput) -> MailResult:
    return MailResult(message_id=f"<{mail.key}@bench>", archive_key="")


@activity.defn(name="create_sign_links")
async def create_sign_links(request: SignLinksInput) -> SignLinksResult:
    return SignLinksResult(links={signer: "" for signer in request.signers})


@activity.defn(name="open_task")
async def open_task(_: TaskInput) -> None:
    """Opens nothing."""


@activity.defn(name="record_progress")
async def record_progress(_: ProgressInput) -> None:
    """Records nothing."""


@activity.defn(name="render_certificate")
async def render_certificate(_: CertificateInput) -> CertificateResult:
    return CertificateResult(archive_key="", sha256=EMPTY_SHA256)


@activity.defn(name="close_dossier")
async def close_dossier(_: CloseInput) -> None:
    """Closes nothing."""


def all_activities() -> Sequence[Callable[..., Any]]:
    return [
        send_mail,
        create_sign_links,
        open_task,
        record_progress,
        render_certificate,
        close_dossier,
    ]
