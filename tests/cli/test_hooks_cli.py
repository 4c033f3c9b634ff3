"""`cdrlog hooks add|list|remove|test|failed|replay` on every backend, against a real
receiver: the secret shown once and never listed, a private target refused unless
allowed, a test message signed, failed deliveries listed and made due again."""

from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner, Result
from sqlalchemy import Engine, insert

from cdrlog.cli.main import cli
from cdrlog.service.clock import utc_now
from cdrlog.store import hooks
from cdrlog.store.tables import hook_delivery
from conftest import Backend
from support.receiver import receiving


def hooks_command(*arguments: str) -> Result:
    # Wide enough that no table cell wraps.
    return CliRunner().invoke(cli, ["hooks", *arguments], env={"COLUMNS": "240"})


def test_a_hook_is_added_listed_without_its_secret_tested_and_removed(
    backend: Backend, engine: Engine
) -> None:
    with receiving() as receiver:
        refused = hooks_command("add", "--db", backend.url, receiver.url)
        assert refused.exit_code == 2
        assert "127.0.0.1, a loopback, link-local or private address" in refused.output

        added = hooks_command(
            "add", "--db", backend.url, receiver.url, "--allow-private-targets",
            "--team", "team1", "--kind", "cdr.created", "--kind", "cdr.closed",
            "--note", "the CRM",
        )  # fmt: skip
        assert added.exit_code == 0, added.output
        secret = added.stdout.strip()
        assert secret.startswith("whsec_")
        assert "shown only now" in added.stderr
        (made,) = hooks.active(engine)
        assert (made.team, made.kinds, made.note) == (
            "team1",
            ("cdr.created", "cdr.closed"),
            "the CRM",
        )

        listed = hooks_command("list", "--db", backend.url)
        assert listed.exit_code == 0, listed.output
        assert receiver.url in listed.output
        assert secret not in listed.output
        assert secret.removeprefix("whsec_")[:12] not in listed.output

        receiver.secret = secret
        tested = hooks_command("test", "--db", backend.url, "--allow-private-targets", str(made.id))
        assert tested.exit_code == 0, tested.output
        (message,) = receiver.messages()
        assert message["type"] == "hook.test"
        assert message["data"]["hook"] == made.id
        assert receiver.bad_signatures == 0

        receiver.down = True
        failing = hooks_command(
            "test", "--db", backend.url, "--allow-private-targets", str(made.id)
        )
        assert failing.exit_code == 1
        assert "HTTP 503" in failing.output

        assert hooks_command("remove", "--db", backend.url, str(made.id)).exit_code == 0
        assert hooks.active(engine) == []
        gone = hooks_command("remove", "--db", backend.url, str(made.id))
        assert gone.exit_code == 1
        assert f"no hook {made.id}" in gone.output


def test_a_given_secret_must_be_a_standard_webhooks_one(backend: Backend, engine: Engine) -> None:
    target = "https://crm.example.com/hook"
    for secret, named in (
        ("hunter2", "starts with whsec_"),
        ("whsec_%%%", "not base64"),
        ("whsec_YQ==", "24 and 64 bytes"),
    ):
        result = hooks_command("add", "--db", backend.url, target, "--secret", secret)
        assert result.exit_code == 2
        assert named in result.output
    assert hooks.active(engine) == []


def test_failed_deliveries_are_listed_and_replayed(backend: Backend, engine: Engine) -> None:
    made = hooks.add(engine, None, "https://crm.example.com/hook", (), "whsec_x", utc_now())
    now = utc_now()
    rows = [
        {
            "hook_id": made.id, "orgidentity": "team1", "subject": f"s{n}", "cdr_id": n,
            "version": 2, "kind": "cdr.closed", "sent_version": 0, "state": "failed",
            "attempts": 9, "next_at": now, "last_error": "HTTP 500 from crm",
            "updated_at": now - timedelta(minutes=n),
        }
        for n in range(1, 4)
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(hook_delivery), rows)

    listed = hooks_command("failed", "--db", backend.url)
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("HTTP 500 from crm") == 3
    assert hooks_command("replay", "--db", backend.url).exit_code == 2
    one = hooks_command("replay", "--db", backend.url, str(hooks.failed(engine)[0].id))
    assert "1 deliveries due again" in one.output
    rest = hooks_command("replay", "--db", backend.url, "--hook", str(made.id))
    assert "2 deliveries due again" in rest.output
    assert "no failed deliveries" in hooks_command("failed", "--db", backend.url).output
    assert hooks.failed(engine) == []
