"""Settings as `cdrlog` options: every setting is a flag and an environment variable of
`cdrlog serve`, each declared once (from `Settings`), and the older spellings still
parse. Nothing here listens: options are parsed, or a command that only reads runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from cdrlog.cli.agents import agents_list
from cdrlog.cli.main import cli
from cdrlog.cli.ops import replay
from cdrlog.cli.options import ALL_SETTINGS, envvar_of, flag_of, settings_of
from cdrlog.cli.rebuild import rebuild_command
from cdrlog.cli.rejected import rejected_retry
from cdrlog.cli.serve import serve
from cdrlog.service.settings import Settings

# For every setting, a value other than its default: as the command line (and, unless
# IN_ENVIRONMENT says otherwise, the environment) spells it, and as `Settings` holds it.
CHANGED: dict[str, tuple[str, Any]] = {
    "database_url": ("sqlite:///elsewhere.db", "sqlite:///elsewhere.db"),
    "host": ("0.0.0.0", "0.0.0.0"),
    "port": ("9090", 9090),
    "pbx_timezone": ("Asia/Shanghai", "Asia/Shanghai"),
    "display_timezone": ("Europe/Berlin", "Europe/Berlin"),
    "max_body_bytes": ("2048", 2048),
    "max_request_bytes": ("4096", 4096),
    "allowed_hosts": ("cdr.example.com", ("cdr.example.com",)),
    "max_call_minutes": ("5", 5),
    "timeout_check_seconds": ("1.5", 1.5),
    "spool_dir": ("/var/spool/cdrlog", Path("/var/spool/cdrlog")),
    "max_batch_events": ("10", 10),
    "body_timeout_seconds": ("7.5", 7.5),
    "header_timeout_seconds": ("3", 3.0),
    "keep_alive_seconds": ("9", 9),
    "max_connections_per_address": ("500", 500),
    "rate_per_second": ("10", 10.0),
    "rate_burst": ("20", 20.0),
    "allow_open": ("1", True),
    "token_cache_seconds": ("0", 0.0),
    "writers": ("4", 4),
    "max_batch": ("64", 64),
    "call_cache": ("0", 0),
    "retain_days": ("30", 30),
    "hook_retry_hours": ("2.5", 2.5),
    "hook_timeout_seconds": ("3", 3.0),
    "allow_private_targets": ("true", True),
    "alert_check_seconds": ("2.5", 2.5),
}
# A list travels in the environment as JSON, the one form `Settings` reads it in.
IN_ENVIRONMENT = {"allowed_hosts": '["cdr.example.com"]'}


@pytest.fixture(autouse=True)
def no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: the runner's own CDRLOG_* variables must not decide."""
    for name in ALL_SETTINGS:
        monkeypatch.delenv(envvar_of(name), raising=False)
    monkeypatch.delenv("CDRLOG_WORKERS", raising=False)


def parsed(command: click.Command, *arguments: str) -> dict[str, Any]:
    """The values `command` would be called with, parsed as from a shell."""
    with command.make_context(command.name or "cdrlog", list(arguments)) as context:
        return dict(context.params)


def serve_settings(*arguments: str) -> Settings:
    """The settings `cdrlog serve ARGUMENTS` would serve with (it is not started)."""
    with serve.make_context("serve", list(arguments)) as context:
        return settings_of(**{name: context.params[name] for name in ALL_SETTINGS})


def on_command_line(name: str) -> list[str]:
    text, _ = CHANGED[name]
    return (
        [flag_of(name)] if Settings.model_fields[name].annotation is bool else [flag_of(name), text]
    )


def test_every_setting_has_a_changed_value_here() -> None:
    assert set(CHANGED) == set(ALL_SETTINGS)
    defaults = Settings()
    assert all(getattr(defaults, name) != value for name, (_, value) in CHANGED.items())


def test_every_setting_is_an_option_of_serve_as_settings_declares_it() -> None:
    options = {param.name: param for param in serve.params if isinstance(param, click.Option)}
    for name, field in Settings.model_fields.items():
        option = options[name]
        assert flag_of(name) in option.opts
        assert option.envvar == f"CDRLOG_{name.upper()}"
        assert option.default == field.default
        assert field.description, f"{name} has no description to show as help"
        assert option.help == field.description


def test_serve_help_lists_every_setting_and_its_environment_variable() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ALL_SETTINGS:
        assert flag_of(name) in result.output
        assert envvar_of(name) in result.output
    for kept in ("--workers", "--log-format", "--access-log / --no-access-log"):
        assert kept in result.output


def test_serve_defaults_are_the_settings_defaults() -> None:
    assert serve_settings() == Settings()


@pytest.mark.parametrize("name", ALL_SETTINGS)
def test_each_setting_given_as_a_flag_reaches_settings(name: str) -> None:
    _, value = CHANGED[name]
    settings = serve_settings(*on_command_line(name))
    assert getattr(settings, name) == value
    assert settings.model_dump(exclude={name}) == Settings().model_dump(exclude={name})


@pytest.mark.parametrize("name", ALL_SETTINGS)
def test_each_setting_is_read_from_its_environment_variable(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, value = CHANGED[name]
    monkeypatch.setenv(envvar_of(name), IN_ENVIRONMENT.get(name, text))
    assert getattr(serve_settings(), name) == value


def test_the_command_line_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDRLOG_PORT", "9090")
    monkeypatch.setenv("CDRLOG_ALLOWED_HOSTS", '["a.example"]')
    settings = serve_settings("--port", "9191", "--allowed-host", "b.example")
    assert (settings.port, settings.allowed_hosts) == (9191, ("b.example",))


def test_allowed_hosts_from_the_environment_as_serve_hands_them_to_its_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDRLOG_ALLOWED_HOSTS", json.dumps(["a.example", "b.example"]))
    assert serve_settings().allowed_hosts == ("a.example", "b.example")


@pytest.mark.parametrize("text", ['["a.example", 1]', "[not json", "a.example"])
def test_a_malformed_list_in_the_environment_is_a_usage_error(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDRLOG_ALLOWED_HOSTS", text)
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert "CDRLOG_ALLOWED_HOSTS" in result.output


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--db", "sqlite:///old.db"], {"database_url": "sqlite:///old.db"}),
        (["--database-url", "sqlite:///new.db"], {"database_url": "sqlite:///new.db"}),
        (
            ["--allowed-host", "a.example", "--allowed-host", "b.example"],
            {"allowed_hosts": ("a.example", "b.example")},
        ),
        (["--allow-open"], {"allow_open": True}),
        (["--spool-dir", "spool"], {"spool_dir": Path("spool")}),
        (["--max-call-minutes", "30"], {"max_call_minutes": 30}),
        (["--pbx-timezone", "Asia/Shanghai"], {"pbx_timezone": "Asia/Shanghai"}),
        (
            ["--workers", "2", "--log-format", "json", "--access-log"],
            {"workers": 2, "log_format": "json", "access_log": True},
        ),
    ],
)
def test_serve_keeps_its_spellings(arguments: list[str], expected: dict[str, Any]) -> None:
    values = parsed(serve, *arguments)
    assert {name: values[name] for name in expected} == expected


@pytest.mark.parametrize(
    ("command", "extra"),
    [(rebuild_command, []), (replay, ["-"]), (rejected_retry, ["1"])],
    ids=["rebuild", "replay", "rejected retry"],
)
def test_commands_taking_settings_keep_their_spellings(
    command: click.Command, extra: list[str]
) -> None:
    arguments = ["--db", "sqlite:///x.db", "--pbx-timezone", "Asia/Shanghai"]
    values = parsed(command, *arguments, "--max-call-minutes", "30", *extra)
    assert values["database_url"] == "sqlite:///x.db"
    assert (values["pbx_timezone"], values["max_call_minutes"]) == ("Asia/Shanghai", 30)


def test_agents_list_takes_the_maximum_call_length() -> None:
    assert parsed(agents_list, "--max-call-minutes", "30")["max_call_minutes"] == 30


def every_command(group: click.Group) -> Iterator[click.Command]:
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        yield command
        if isinstance(command, click.Group):
            yield from every_command(command)


def test_every_command_takes_a_setting_through_its_one_generated_option() -> None:
    """No command declares a setting of its own: flag, variable, default and help are
    those of `serve`, so a setting reads the same wherever it is taken."""
    options = {param.name: param for param in serve.params if isinstance(param, click.Option)}
    taken = 0
    for command in every_command(cli):
        for param in command.params:
            if param.name in Settings.model_fields:
                generated = options[param.name]
                assert isinstance(param, click.Option), (command.name, param.name)
                assert param.opts == generated.opts, (command.name, param.name)
                assert param.envvar == generated.envvar, (command.name, param.name)
                assert param.default == generated.default, (command.name, param.name)
                assert param.help == generated.help, (command.name, param.name)
                taken += 1
    assert taken >= 15  # --db alone is taken by more than a dozen commands


def test_an_out_of_range_setting_is_a_usage_error_naming_its_flag() -> None:
    result = CliRunner().invoke(cli, ["serve", "--port", "70000"])
    assert result.exit_code == 2
    assert "'--port'" in result.output
    assert "push URL" not in result.output


def test_an_invalid_zone_is_a_usage_error_naming_its_flag(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cdrlog.db'}"
    result = CliRunner().invoke(cli, ["rebuild", "--db", url, "--pbx-timezone", "Mars/Base"])
    assert result.exit_code == 2
    assert "--pbx-timezone" in result.output
    assert "IANA" in result.output


def open_call(tmp_path: Path) -> str:
    """A SQLite database holding one call that rang 10 minutes ago and is still open."""
    url = f"sqlite:///{tmp_path / 'cdrlog.db'}"
    rang = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M:%S")
    event = {"sessionid": "s1", "calltype": "dialin", "source": "CALLER"}
    event |= {"event": "ringing", "activenum": "13800138000", "eventTime": rang}
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(event) + "\n")
    stored = run_ok(["replay", "--db", url, "--team", "team1", str(events)])
    assert "1 stored" in stored.output
    return url


def run_ok(arguments: list[str], env: dict[str, str] | None = None) -> Result:
    result = CliRunner(env=env).invoke(cli, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_max_call_minutes_given_to_rebuild_reaches_its_settings(tmp_path: Path) -> None:
    url = open_call(tmp_path)
    dry_run = ["rebuild", "--db", url, "--dry-run"]
    # 240 minutes by default: the call is still open.
    assert "would change 0 CDRs" in run_ok(dry_run).output
    for shorter in (
        run_ok([*dry_run, "--max-call-minutes", "5"]),
        run_ok(dry_run, env={"CDRLOG_MAX_CALL_MINUTES": "5"}),
    ):
        assert "would change 1 CDRs" in shorter.output
        assert "status open -> timeout" in shorter.output
