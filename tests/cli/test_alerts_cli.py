"""`cdrlog alerts add|list|remove` on every backend: a rule added with its terms, listed
with its alert, a wrong one refused naming what is wrong, and removed (a raised alert of
it cleared, and that announced to the hooks that take it)."""

from __future__ import annotations

from click.testing import CliRunner, Result
from sqlalchemy import Engine, delete

from cdrlog.cli.main import cli
from cdrlog.core.alerts import Decision, Metric
from cdrlog.store import alerts, hooks
from cdrlog.store.tables import alert_rule, alert_state, outbox
from conftest import Backend
from support.alerting import ALERT_KINDS, AT, announced


def alerts_command(*arguments: str) -> Result:
    # Wide enough that no table cell wraps.
    return CliRunner().invoke(cli, ["alerts", *arguments], env={"COLUMNS": "240"})


def test_a_rule_is_added_listed_and_removed(backend: Backend, engine: Engine) -> None:
    try:
        added = alerts_command(
            "add", "--db", backend.url, "service_level_below", "0.8", "--team", "team1",
            "--queue", "100", "--window-minutes", "15", "--note", "front desk",
        )  # fmt: skip
        assert added.exit_code == 0, added.output
        (made,) = alerts.watched(engine)
        rule = made.rule
        assert (rule.team, rule.queue, rule.metric, rule.threshold) == (
            "team1",
            "100",
            Metric.SERVICE_LEVEL_BELOW,
            0.8,
        )
        assert (rule.window_minutes, rule.service_level_seconds, rule.note) == (
            15,
            20,
            "front desk",
        )
        assert added.output.startswith(f"rule {rule.id}: service_level_below 0.8")

        listed = alerts_command("list", "--db", backend.url)
        assert listed.exit_code == 0, listed.output
        assert "service_level_below" in listed.output
        assert "front desk" in listed.output
        assert "clear" in listed.output

        hooks.add(engine, "team1", "https://crm.example/a", ALERT_KINDS, "whsec_x", AT)
        raised = alerts.change(engine, rule, made.state, Decision.RAISE, 0.5, AT, False)
        assert raised is not None
        assert "RAISED" in alerts_command("list", "--db", backend.url).output

        removed = alerts_command("remove", "--db", backend.url, str(rule.id))
        assert removed.exit_code == 0, removed.output
        assert alerts.watched(engine) == []
        ((_, subject, version, kind, payload),) = announced(engine)
        assert (subject, version, kind) == (f"alert:{rule.id}", 2, "alert.cleared")
        assert payload["reason"] == "rule removed"

        again = alerts_command("remove", "--db", backend.url, str(rule.id))
        assert again.exit_code == 1
        assert f"no alert rule {rule.id}" in again.output
        assert "no alert rules" in alerts_command("list", "--db", backend.url).output
    finally:
        with engine.begin() as connection:
            for table in (outbox, alert_state, alert_rule):
                connection.execute(delete(table))


def test_a_wrong_rule_is_refused_naming_what_is_wrong(backend: Backend, engine: Engine) -> None:
    cases = [
        (("service_level_below", "80", "--team", "t"), "threshold of service_level_below"),
        (("waiting_above", "2.5", "--team", "t"), "calls, a whole number"),
        (("silence", "5", "--team", "t"), "'silence' is not one of"),
        (("wait_above", "60"), "Missing option '--team'"),
        (("wait_above", "60", "--team", "t", "--window-minutes", "0"), "--window-minutes"),
    ]
    for arguments, named in cases:
        refused = alerts_command("add", "--db", backend.url, *arguments)
        assert refused.exit_code == 2, (arguments, refused.output)
        assert named in refused.output, (arguments, refused.output)
    assert alerts.watched(engine) == []


def test_help_names_every_metric() -> None:
    shown = alerts_command("add", "--help")
    assert shown.exit_code == 0, shown.output
    for metric in Metric:
        assert metric.value in shown.output
