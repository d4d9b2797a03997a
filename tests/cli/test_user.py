"""`dossier user add|list|disable` on a SQLite database in the test's folder."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from typer.testing import CliRunner

from adapters.records import Provider, User, WebSession
from starter.cli import PASSWORD_ENV, app
from tests.hostile import NUL, tables_intact
from web import auth

runner = CliRunner()

PASSWORD = "correct horse battery"
PROVIDER = "0412345614"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with small costs: the real ones take a second a hash here."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(auth, "PASSWORD_HASHER", cheap)


@pytest.fixture
def database(settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """DOSSIER_DATABASE_URL pointing at a database nothing has migrated yet."""
    monkeypatch.setenv("DOSSIER_DATABASE_URL", settings.database_url)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    return settings.database_url


@pytest.fixture
def with_provider(database, session_factory):
    """The database migrated, with provider 0412345614 in it."""
    with session_factory.begin() as session:
        session.add(
            Provider(
                provider_id=PROVIDER,
                name="Opleidingen A",
                dv_numbers=[],
                container_email=f"{PROVIDER}@containers.kmo-dossier.example",
                created_at=datetime(2026, 11, 1, tzinfo=UTC),
            )
        )
    return session_factory


def add(*args: str, password: str | None = PASSWORD, **kwargs):
    """`dossier user add ...`, typing the password twice at the hidden prompt."""
    typed = None if password is None else f"{password}\n{password}\n"
    return runner.invoke(app, ["user", "add", *args], input=typed, **kwargs)


def users(session_factory) -> list[User]:
    with session_factory() as session:
        return list(session.scalars(select(User).order_by(User.email)))


def test_add_a_provider_user_with_the_hidden_prompt(with_provider):
    """The password is asked twice and never echoed; the account can log in."""
    result = add(
        "An@Opleidingen-A.example", "--role", "provider", "--provider", PROVIDER
    )

    assert result.exit_code == 0, result.output
    assert (
        f"added provider account an@opleidingen-a.example of provider {PROVIDER}"
        in (result.stdout)
    )
    assert PASSWORD not in result.output
    [user] = users(with_provider)
    assert (user.email, user.role, user.provider_id) == (
        "an@opleidingen-a.example",
        "provider",
        PROVIDER,
    )
    with with_provider() as session:
        assert auth.authenticate(session, "an@opleidingen-a.example", PASSWORD)


def test_the_provider_may_be_written_with_dots(with_provider):
    """--provider 0412.345.614 is the same provider as 0412345614."""
    result = add("an@a.example", "--role", "provider", "--provider", "0412.345.614")

    assert result.exit_code == 0, result.output
    assert users(with_provider)[0].provider_id == PROVIDER


def test_prompt_refuses_two_different_passwords(with_provider):
    """A confirmation that differs is asked again; nothing is stored meanwhile."""
    typed = f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n"
    result = runner.invoke(
        app, ["user", "add", "els@kmo-dossier.example", "--role", "staff"], input=typed
    )

    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert [u.email for u in users(with_provider)] == ["els@kmo-dossier.example"]


def test_password_from_stdin_for_scripts(with_provider):
    """--password-stdin reads the first line of stdin, without a prompt."""
    result = runner.invoke(
        app,
        [
            "user",
            "add",
            "els@kmo-dossier.example",
            "--role",
            "staff",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
    )

    assert result.exit_code == 0, result.output
    assert "Password" not in result.output
    with with_provider() as session:
        assert auth.authenticate(session, "els@kmo-dossier.example", PASSWORD)


def test_password_from_the_environment(with_provider, monkeypatch):
    """$DOSSIER_USER_PASSWORD is used when set, without a prompt."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)

    result = add("els@kmo-dossier.example", "--role", "staff", password=None)

    assert result.exit_code == 0, result.output
    with with_provider() as session:
        assert auth.authenticate(session, "els@kmo-dossier.example", PASSWORD)


def test_there_is_no_password_option():
    """A password given as an argument would land in the shell's history."""
    result = runner.invoke(
        app, ["user", "add", "a@b.example", "--role", "staff", "--password", PASSWORD]
    )

    assert result.exit_code == 2
    assert "No such option: --password" in result.output


def test_add_runs_the_migrations_on_a_new_database(database):
    """On a database nobody migrated, `user add` makes the tables first."""
    result = add("els@kmo-dossier.example", "--role", "staff")

    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["user", "list", "--json"])
    assert [u["email"] for u in json.loads(listed.stdout)["users"]] == [
        "els@kmo-dossier.example"
    ]


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (
            ["an@a.example", "--role", "provider", "--provider", "0999999999"],
            PASSWORD,
            "there is no provider '0999999999'; give a known one",
        ),
        (
            ["an@a.example", "--role", "provider"],
            PASSWORD,
            "a provider account needs its provider's number; give it",
        ),
        (
            ["an@a.example", "--role", "staff"],
            "short",
            "the password is too short; use at least 12 characters",
        ),
        (
            ["an@a.example", "--role", "staff"],
            " " * 16,
            "the password is too short; use at least 12 characters",
        ),
        (
            ["els@kmo-dossier.example", "--role", "staff", "--provider", PROVIDER],
            PASSWORD,
            "a staff account belongs to no provider; leave it out",
        ),
        (
            ["not-an-email", "--role", "staff"],
            PASSWORD,
            "'not-an-email' is not an e-mail address",
        ),
    ],
    ids=[
        "unknown-provider",
        "no-provider",
        "short-password",
        "spaces-only-password",
        "staff-with-provider",
        "bad-email",
    ],
)
def test_accounts_that_cannot_be_made_exit_1_with_the_reason(
    with_provider, args, password, message
):
    """Each AccountError is a one-line message and exit 1; nothing is stored."""
    result = add(*args, password=password)

    assert result.exit_code == 1
    assert f"dossier: {message}" in result.stderr
    assert "Traceback" not in result.output
    assert users(with_provider) == []


def test_a_second_account_for_the_same_email_exits_1(with_provider):
    """Emails are one account each, whatever their case."""
    assert add("els@kmo-dossier.example", "--role", "staff").exit_code == 0

    result = add("ELS@kmo-dossier.example", "--role", "staff")

    assert result.exit_code == 1
    assert "there is already an account for 'els@kmo-dossier.example'" in result.stderr
    assert len(users(with_provider)) == 1


def test_an_unknown_role_is_refused_by_the_command_line(with_provider):
    """--role is provider or staff; anything else stops before the prompt."""
    result = add("a@b.example", "--role", "admin")

    assert result.exit_code == 2
    assert "admin" in result.output
    assert users(with_provider) == []


def test_list_shows_every_account(with_provider):
    """list prints each account's email, role, provider and state."""
    add("an@a.example", "--role", "provider", "--provider", PROVIDER)
    add("els@kmo-dossier.example", "--role", "staff")

    result = runner.invoke(app, ["user", "list"])
    answer = json.loads(runner.invoke(app, ["user", "list", "--json"]).stdout)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split()[:3] == ["els@kmo-dossier.example", "staff", "-"]
    assert lines[2].split()[:3] == ["an@a.example", "provider", PROVIDER]
    assert lines[2].split()[-1] == "enabled"
    assert [(u["email"], u["disabled"]) for u in answer["users"]] == [
        ("els@kmo-dossier.example", False),
        ("an@a.example", False),
    ]
    assert PASSWORD not in result.output
    assert "argon2" not in result.output + json.dumps(answer)


def test_list_of_a_new_database_says_there_are_none(database, session_factory):
    result = runner.invoke(app, ["user", "list"])

    assert result.exit_code == 0, result.output
    assert "No accounts yet" in result.stdout


def test_list_and_disable_refuse_a_database_that_is_not_there(database, settings):
    """Run from another folder: no new, empty database is made behind the back."""
    listed = runner.invoke(app, ["user", "list"])
    disabled = runner.invoke(app, ["user", "disable", "an@a.example"])

    for result in (listed, disabled):
        assert result.exit_code == 2
        assert "there is no database at" in result.output
    assert not (settings.data_dir / "dossier.db").exists()


def test_add_says_when_it_makes_a_new_database(database, settings):
    result = add("els@kmo-dossier.example", "--role", "staff")

    assert result.exit_code == 0, result.output
    assert "a new database is made at" in result.output


def test_disable_stops_logins_and_ends_sessions(with_provider):
    """A disabled account cannot log in, and its open sessions are gone."""
    add("an@a.example", "--role", "provider", "--provider", PROVIDER)
    with with_provider.begin() as session:
        user = session.scalar(select(User))
        auth.start_session(session, user)

    result = runner.invoke(app, ["user", "disable", "AN@a.example"])
    again = runner.invoke(app, ["user", "disable", "an@a.example"])

    assert result.exit_code == 0, result.output
    assert "an@a.example disabled" in result.stdout
    assert again.exit_code == 0
    assert "was already disabled" in again.stdout
    with with_provider() as session:
        assert auth.authenticate(session, "an@a.example", PASSWORD) is None
        assert session.scalars(select(WebSession)).all() == []
    listed = runner.invoke(app, ["user", "list"])
    assert listed.stdout.splitlines()[1].split()[-1] == "disabled"


def test_disable_of_an_unknown_account_exits_1(with_provider):
    result = runner.invoke(app, ["user", "disable", "nobody@a.example"])

    assert result.exit_code == 1
    assert "dossier: there is no account for 'nobody@a.example'" in result.stderr


def test_an_email_like_an_injection_is_stored_as_text(with_provider):
    """Quotes and comment markers in an address are kept; the tables stay."""
    email = "o'brien'; drop table users; --@x.example"

    result = add(email, "--role", "staff")

    assert result.exit_code == 0, result.output
    assert [u.email for u in users(with_provider)] == [email]
    assert tables_intact(with_provider.kw["bind"])


def test_an_email_with_a_nul_exits_1(with_provider):
    result = add(f"an{NUL}@a.example", "--role", "staff")

    assert result.exit_code == 1
    assert "is not an e-mail address" in result.stderr
    assert users(with_provider) == []
