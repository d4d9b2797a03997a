"""Test data: dossiers as intake would build them from the fixture invoices.

`training_dossier()` matches fixtures/invoices/training-open-1p.xml (fee 75)
and `advice_dossier()` matches fixtures/invoices/advice-cyber-6m.xml (fee 225).
Ids are as intake makes them (`starter.intake.dossier_id_for`); values are
written out, not computed by the code under test.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

from kmo.models import Fee, FeeLine, Kind
from workflows.messages import Client, DossierInput, Participant, Provider


def training_dossier(**changes: Any) -> DossierInput:
    """Open training LS-2026-0141: one participant, one day, fee 75 excl. VAT."""
    dossier = DossierInput(
        dossier_id="0412345614-ls-2026-0141",
        kind=Kind.TRAINING,
        provider=Provider(
            provider_id="0412345614",
            name="Leerhuis Schelde BV",
            dv_number="DV.O214567",
            container_email="0412345614@containers.kmo-dossier.example",
        ),
        client=Client(
            name="Bakkerij Peeters BV",
            enterprise_number="0511.223.355",
            contact_name="An Peeters",
            email="an.peeters@bakkerij-peeters.example",
            phone="+32 15 00 00 01",
        ),
        invoice_number="LS-2026-0141",
        invoice_date=date(2026, 11, 20),
        start_date=date(2026, 12, 8),
        end_date=date(2026, 12, 8),
        project_amount_excl_vat=Decimal("395.00"),
        fee=Fee(
            lines=[
                FeeLine("dossier", 1, Decimal("50"), Decimal("50")),
                FeeLine("participant", 1, Decimal("25"), Decimal("25")),
            ],
            total_excl_vat=Decimal("75.00"),
            vat_rate=Decimal("0.21"),
            vat=Decimal("15.75"),
            total_incl_vat=Decimal("90.75"),
            running_months=1,
        ),
        participants=[Participant(name="An Peeters")],
        session_dates=[date(2026, 12, 8)],
    )
    return replace(dossier, **changes)


def advice_dossier(**changes: Any) -> DossierInput:
    """Cybersecurity advice CVA/26/031 over six running months: fee 225 excl. VAT."""
    dossier = DossierInput(
        dossier_id="0712345036-cva-26-031-e38a00",
        kind=Kind.ADVICE,
        provider=Provider(
            provider_id="0712345036",
            name="Cyberveilig Advies CommV",
            dv_number="DV.A109876",
            container_email="0712345036@containers.kmo-dossier.example",
        ),
        client=Client(
            name="Drukkerij De Smet BV",
            enterprise_number="0433.221.103",
            contact_name="Sofie De Smet",
            email="sofie.desmet@drukkerij-desmet.example",
            phone="+32 56 00 00 03",
        ),
        invoice_number="CVA/26/031",
        invoice_date=date(2026, 11, 30),
        start_date=date(2026, 6, 1),
        end_date=date(2026, 11, 27),
        project_amount_excl_vat=Decimal("6800.00"),
        fee=Fee(
            lines=[
                FeeLine("dossier", 1, Decimal("50"), Decimal("50")),
                FeeLine("running month", 6, Decimal("25"), Decimal("150")),
                FeeLine("closing", 1, Decimal("25"), Decimal("25")),
            ],
            total_excl_vat=Decimal("225.00"),
            vat_rate=Decimal("0.21"),
            vat=Decimal("47.25"),
            total_incl_vat=Decimal("272.25"),
            running_months=6,
        ),
    )
    return replace(dossier, **changes)
