"""One configuration: a TOML file (`cdrlog --config FILE`, CDRLOG_CONFIG), CDRLOG_*
variables and options, read through the one `Settings` by every command, so that
`serve`, `rebuild`, `replay` and `rejected retry` agree; `config show` says which won."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cdrlog.cli.main import cli
from cdrlog.cli.options import ALL_SETTINGS, envvar_of
from cdrlog.service.ingest import Ingestor
from cdrlog.store.database import make_engine, upgrade
from cdrlog.store.deadletters import DeadLetter

# Rung at 16:00 in Shanghai, 08:00 UTC: a PBX zone read as UTC shifts it by 8 hours.
RANG = "2026-11-20 16:00:00"
BODY = (
    "sessionid=s1&calltype=dialin&source=CALLER&event=ringing"
    "&activenum=13800138000&eventTime=2026-11-20+16:00:00"
)


@pytest.fixture(autouse=True)
def no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALL_SETTINGS:
        monkeypatch.delenv(envvar_of(name), raising=False)
    monkeypatch.delenv("CDRLOG_CONFIG", raising=False)


def written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def shanghai(tmp_path: Path) -> Path:
    return written(tmp_path / "cdrlog.toml", 'pbx_timezone = "Asia/Shanghai"\n')


def run(*arguments: str, env: dict[str, str] | None = None, status: int = 0) -> Result:
    result = CliRunner(env=env).invoke(cli, list(arguments))
    assert result.exit_code == status, result.output
    return result


def events_file(tmp_path: Path) -> str:
    event = {"sessionid": "s1", "calltype": "dialin", "source": "CALLER"}
    event |= {"event": "ringing", "activenum": "13800138000", "eventTime": RANG}
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(event) + "\n")
    return str(path)


def starttimes(url: str) -> list[str]:
    out = run("export", "--db", url, "--format", "jsonl", "--tz", "UTC").output
    return [json.loads(line)["starttime"] for line in out.splitlines()]


def test_replay_reads_the_pbx_zone_from_the_file(tmp_path: Path, shanghai: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cdrlog.db'}"
    run("--config", str(shanghai), "replay", "--db", url, "--team", "t1", events_file(tmp_path))
    assert starttimes(url) == ["2026-11-20T08:00:00+00:00"]


def test_rebuild_reads_the_pbx_zone_from_the_file(tmp_path: Path, shanghai: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cdrlog.db'}"
    run("replay", "--db", url, "--team", "t1", events_file(tmp_path))
    assert starttimes(url) == ["2026-11-20T16:00:00+00:00"]
    dry = run("--config", str(shanghai), "rebuild", "--db", url, "--dry-run").output
    assert "would change 1 CDRs" in dry
    assert "starttime 2026-11-20 16:00:00+00:00 -> 2026-11-20 08:00:00+00:00" in dry
    # CDRLOG_CONFIG names the file as well as --config does.
    run("rebuild", "--db", url, env={"CDRLOG_CONFIG": str(shanghai)})
    assert starttimes(url) == ["2026-11-20T08:00:00+00:00"]


def test_rejected_retry_reads_the_pbx_zone_from_the_file(tmp_path: Path, shanghai: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cdrlog.db'}"
    engine = make_engine(url)
    upgrade(engine)
    kept = DeadLetter("/astercc/t1/events", "t1", None, None, BODY.encode(), False, {"a": "b"})
    letter = Ingestor(engine).dead_letter(kept)
    engine.dispose()
    retried = run("--config", str(shanghai), "rejected", "retry", "--db", url, str(letter))
    assert retried.output.strip() == f"{letter}: resolved: 1 stored, 0 duplicate"
    assert starttimes(url) == ["2026-11-20T08:00:00+00:00"]


def shown(*arguments: str, env: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    described: dict[str, dict[str, str]] = json.loads(run(*arguments, env=env).output)
    return described


def test_the_environment_wins_over_the_file_and_an_option_over_both(shanghai: Path) -> None:
    config = ["--config", str(shanghai), "config", "show", "--json"]
    from_file = shown(*config)["pbx_timezone"]
    assert from_file == {"value": "Asia/Shanghai", "source": "file", "from": str(shanghai)}
    berlin = {"CDRLOG_PBX_TIMEZONE": "Europe/Berlin"}
    assert shown(*config, env=berlin)["pbx_timezone"] == {
        "value": "Europe/Berlin",
        "source": "environment",
        "from": "CDRLOG_PBX_TIMEZONE",
    }
    assert shown(*config, "--pbx-timezone", "UTC", env=berlin)["pbx_timezone"] == {
        "value": "UTC",
        "source": "option",
        "from": "--pbx-timezone",
    }
    assert shown(*config)["port"] == {"value": 8080, "source": "default", "from": None}


def test_config_show_hides_a_database_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://cdr:s3cret@db.example/cdrlog"
    config = written(tmp_path / "c.toml", f'database_url = "{url}"\nport = 9090\n')
    table = run("--config", str(config), "config", "show", env={"COLUMNS": "200"}).output
    assert "s3cret" not in table
    assert "postgresql+psycopg://cdr:***@db.example/cdrlog" in table
    assert f"file {config}" in table


def test_a_key_that_is_no_setting_names_the_key_and_the_file(tmp_path: Path) -> None:
    config = written(tmp_path / "c.toml", 'pbx-timezone = "Asia/Shanghai"\n')
    failed = run("--config", str(config), "config", "show", status=2)
    assert f"'pbx-timezone' in {config} is no setting (did you mean pbx_timezone?)" in (
        failed.output
    )


def test_an_invalid_value_in_the_file_names_its_key_and_the_file(tmp_path: Path) -> None:
    config = written(tmp_path / "c.toml", 'pbx_timezone = "Mars/Base"\n')
    failed = run("--config", str(config), "rebuild", status=2)
    assert f"pbx_timezone in {config}" in failed.output
    assert "IANA" in failed.output
    assert len(failed.output.splitlines()) <= 2


def test_a_file_that_is_not_toml_is_an_error_naming_it(tmp_path: Path) -> None:
    config = written(tmp_path / "c.toml", "pbx_timezone = \n")
    failed = run("--config", str(config), "config", "show", status=2)
    assert f"cannot read {config}" in failed.output


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path, how: str) -> None:
    missing = str(tmp_path / "missing.toml")
    if how == "option":
        failed = run("--config", missing, "config", "show", status=2)
    else:
        failed = run("config", "show", env={"CDRLOG_CONFIG": missing}, status=2)
    assert "missing.toml" in failed.output
    assert "does not exist" in failed.output
