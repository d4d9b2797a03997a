"""The `dossier` command, run in-process with typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from starter.cli import app

runner = CliRunner()

CLIENT_EMAIL = (
    "<cbc:ElectronicMail>an.peeters@bakkerij-peeters.example</cbc:ElectronicMail>"
)


def inspect_json(path: Path, *options: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["inspect", str(path), "--json", *options])
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def without_client_email(invoices: Path, tmp_path: Path) -> Path:
    """The open training invoice with the client's email taken out."""
    text = (invoices / "training-open-1p.xml").read_text(encoding="utf-8")
    assert CLIENT_EMAIL in text
    path = tmp_path / "no-email.xml"
    path.write_text(text.replace(CLIENT_EMAIL, ""), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("fixture", "fee"),
    [
        ("training-open-1p.xml", "75.00"),
        ("training-incompany-10p-12m.xml", "600.00"),
        ("advice-cyber-6m.xml", "225.00"),
    ],
)
def test_inspect_prices_each_example_invoice(invoices: Path, fixture: str, fee: str):
    """inspect --json gives the brochure's fee for each example and exits 0."""
    code, answer = inspect_json(invoices / fixture)

    assert code == 0
    assert answer["fee"]["total_excl_vat"] == fee
    assert answer["problems"] == []


def test_inspect_human_output_shows_fee_lines_and_total(invoices: Path):
    """Without --json, inspect prints the fee lines and the total excl. VAT."""
    result = runner.invoke(app, ["inspect", str(invoices / "training-open-1p.xml")])

    assert result.exit_code == 0
    assert "participant       1 x  25.00 =    25.00" in result.stdout
    assert "total excl. VAT                   75.00" in result.stdout
    assert "A dossier can start: 0412345614-ls-2026-0141" in result.stdout


def test_inspect_exits_1_and_names_the_missing_client_email(without_client_email):
    """An invoice without client email cannot start a dossier: exit 1, problem shown."""
    code, answer = inspect_json(without_client_email)

    assert code == 1
    assert answer["can_start"] is False
    assert "customer_contact.email" in [p["field"] for p in answer["problems"]]


def test_inspect_accepts_the_missing_email_given_as_option(without_client_email):
    """--client-email fills what the invoice lacks, so the dossier can start."""
    code, answer = inspect_json(
        without_client_email, "--client-email", "an@bakkerij-peeters.example"
    )

    assert code == 0
    assert answer["fee"]["total_excl_vat"] == "75.00"


def test_inspect_exits_2_for_a_file_that_is_no_invoice(tmp_path: Path):
    """A file that is not XML exits 2 with a message, never a traceback."""
    path = tmp_path / "notes.xml"
    path.write_text("just some notes", encoding="utf-8")

    result = runner.invoke(app, ["inspect", str(path)])

    assert result.exit_code == 2
    assert "notes.xml is not a readable XML e-invoice" in result.stderr
    assert "Traceback" not in result.output


def test_inspect_exits_2_for_a_missing_file(tmp_path: Path):
    """A path that does not exist exits 2 and says it cannot be read."""
    result = runner.invoke(app, ["inspect", str(tmp_path / "gone.xml")])

    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_inspect_json_error_is_json(tmp_path: Path):
    """With --json even an unreadable file answers JSON with an error message."""
    path = tmp_path / "empty.xml"
    path.write_bytes(b"")

    result = runner.invoke(app, ["inspect", str(path), "--json"])

    assert result.exit_code == 2
    assert (
        json.loads(result.stdout)["error"]
        == "empty.xml is empty: upload the invoice file"
    )


def test_upload_says_when_the_web_app_is_not_running(invoices: Path, free_port: int):
    """upload against a port where nothing listens exits 2 and names `dossier dev`."""
    result = runner.invoke(
        app,
        [
            "upload",
            str(invoices / "training-open-1p.xml"),
            "--url",
            f"http://127.0.0.1:{free_port}",
        ],
    )

    assert result.exit_code == 2
    assert "is `dossier dev` running?" in result.stderr


def test_upload_rejects_a_field_without_equals_sign(invoices: Path):
    """--field must be key=value; anything else stops before any request."""
    result = runner.invoke(
        app, ["upload", str(invoices / "training-open-1p.xml"), "--field", "number"]
    )

    assert result.exit_code == 2
    assert "'number' is not a field; write it as key=value" in result.stderr


@pytest.mark.parametrize("raw", ["NaN", "1e999999", "-395.00"])
def test_inspect_refuses_an_invoice_whose_amount_cannot_be_used(
    invoices: Path, tmp_path: Path, raw: str
):
    """A project amount that is unreadable, infinite or negative: exit 1, named."""
    text = (invoices / "training-open-1p.xml").read_text(encoding="utf-8")
    total = '<cbc:TaxExclusiveAmount currencyID="EUR">395.00<'
    assert total in text
    path = tmp_path / "amount.xml"
    path.write_text(text.replace(total, total.replace("395.00", raw)), "utf-8")

    code, answer = inspect_json(path)
    human = runner.invoke(app, ["inspect", str(path)])

    assert code == 1
    assert answer["can_start"] is False
    assert [p["field"] for p in answer["problems"]] == ["total_excl_vat"]
    assert human.exit_code == 1
    assert "A dossier can start" not in human.stdout
    assert "project amount excl. VAT" in human.stdout


@pytest.mark.parametrize(
    "options",
    [
        ["--contact-name", "Jan\r\nBcc: evil@x.example"],
        ["--phone", "+32 15\n00"],
        ["--participant", "Jan\r\nBcc: evil@x.example <jan@x.example>"],
        ["--field", "contact_name=Jan\r\nBcc: evil@x.example"],
    ],
    ids=["contact-name", "phone", "participant", "pdf-field"],
)
def test_upload_refuses_control_characters_before_any_request(
    invoices: Path, free_port: int, options: list[str]
):
    """A line break in a name or phone stops the upload here, like the server."""
    result = runner.invoke(
        app,
        [
            "upload",
            str(invoices / "training-open-1p.xml"),
            "--url",
            f"http://127.0.0.1:{free_port}",
            *options,
        ],
    )

    assert result.exit_code == 2
    assert "contains a control character" in result.stderr
    assert "dossier dev" not in result.stderr


def test_inspect_refuses_a_participant_with_a_line_break(invoices: Path):
    """inspect checks the participant the same way."""
    result = runner.invoke(
        app,
        ["inspect", str(invoices / "training-open-1p.xml"), "-p", "An\r\nPeeters"],
    )

    assert result.exit_code == 2
    assert "contains a control character (carriage return)" in result.stderr


@pytest.mark.parametrize("dossier_id", ["", " ", "a/b", "../x", "x?y=1"])
def test_status_refuses_an_id_that_is_no_dossier_id(free_port: int, dossier_id):
    """An empty or odd id is refused here, not answered "307 Temporary Redirect"."""
    result = runner.invoke(
        app, ["status", dossier_id, "--url", f"http://127.0.0.1:{free_port}"]
    )

    assert result.exit_code == 2
    assert f"'{dossier_id}' is not a dossier id" in result.stderr
    assert "dossier dev" not in result.stderr


def test_inspect_labels_a_credit_note_as_such(invoices: Path, tmp_path: Path):
    """A credit note is shown as "Credit note <number>", not as an invoice."""
    text = (invoices / "training-open-1p.xml").read_text(encoding="utf-8")
    path = tmp_path / "credit-note.xml"
    path.write_text(
        text.replace("<cbc:InvoiceTypeCode>380<", "<cbc:InvoiceTypeCode>381<").replace(
            "LS-2026-0141", "CN-2026-0001"
        ),
        encoding="utf-8",
    )

    result = runner.invoke(app, ["inspect", str(path)])

    first = result.stdout.splitlines()[0]
    assert first == "Credit note CN-2026-0001"
    assert "Invoice" not in first and "credit_note" not in first


def test_upload_output_says_when_a_known_invoice_changed():
    """The answer's invoice_changed warning is in the first line, not "same invoice"."""
    from starter.cli import render_upload

    answer = {
        "dossier_id": "0412345614-ls-2026-0141",
        "workflow_id": "dossier-0412345614-ls-2026-0141",
        "created": False,
        "fee": None,
        "warnings": [
            {"code": "invoice_changed", "message": "this file differs", "rule": "r"}
        ],
        "links": {"status": "s", "temporal_ui": "t"},
    }

    shown = render_upload(answer)
    repeat = render_upload({**answer, "warnings": []})

    assert "differs from the first upload" in shown.splitlines()[0]
    assert "same invoice" not in shown
    assert "(invoice_changed)" in shown
    assert repeat.splitlines()[0].endswith("already known (same invoice)")


def test_web_trusts_the_proxies_it_is_told(monkeypatch):
    """`dossier web --forwarded-allow-ips '*'` hands uvicorn the trusted proxies."""
    import uvicorn

    import adapters.logging

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    monkeypatch.setattr(adapters.logging, "configure_logging", lambda json: None)

    result = runner.invoke(app, ["web", "--port", "8123", "--forwarded-allow-ips", "*"])

    assert result.exit_code == 0, result.output
    assert seen["port"] == 8123
    assert (seen["proxy_headers"], seen["forwarded_allow_ips"]) == (True, "*")
