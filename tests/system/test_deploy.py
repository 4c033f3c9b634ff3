"""The files in deploy/: the systemd units pass `systemd-analyze verify`, the environment
file names every variable `cdrlog serve` reads with its default, and the service as the
unit runs it (its command, that environment) serves, then stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from sqlalchemy import func, select

from cdrlog.cli.main import cli
from cdrlog.cli.options import envvar_of
from cdrlog.service.settings import Settings
from cdrlog.store.database import make_engine
from cdrlog.store.tables import call_event
from support.servers import free_port, wait_until_healthy

DEPLOY = Path(__file__).parents[2] / "deploy"
UNITS = ("cdrlog.service", "cdrlog-purge.service", "cdrlog-purge.timer")
# Where the units expect cdrlog: a virtualenv of its own.
INSTALLED = "/opt/cdrlog/bin/cdrlog"
# `NAME=value`, or `#NAME=value` for a default left as it is.
LINE = re.compile(r"^(#?)(CDRLOG_[A-Z_]+)=(.*)$")
FORM = {"content-type": "application/x-www-form-urlencoded"}


def entries() -> dict[str, tuple[bool, str]]:
    """Each variable of the environment file: whether it is set, and its value."""
    found: dict[str, tuple[bool, str]] = {}
    for line in (DEPLOY / "cdrlog.env").read_text().splitlines():
        if match := LINE.match(line):
            commented, name, value = match.groups()
            assert name not in found, f"{name} appears twice"
            found[name] = (not commented, value)
    return found


def serve_variables() -> dict[str, Any]:
    """Every CDRLOG_* variable `cdrlog serve` reads, with its default."""
    defaults = {
        envvar_of(name): field.get_default(call_default_factory=True)
        for name, field in Settings.model_fields.items()
    }
    serve = cli.get_command(click.Context(cli), "serve")
    assert serve is not None
    for parameter in serve.params:
        if isinstance(parameter.envvar, str):
            defaults.setdefault(parameter.envvar, parameter.default)
    return defaults


def shown(value: Any) -> str:
    """A default as the environment gives it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return json.dumps(list(value))
    return str(value)


def test_the_environment_file_names_every_variable_with_its_default() -> None:
    found = entries()
    wanted = serve_variables()
    assert sorted(set(wanted) - set(found)) == [], "variables the file does not name"
    assert sorted(set(found) - set(wanted)) == [], "variables cdrlog does not read"
    for name, (is_set, value) in found.items():
        default = wanted[name]
        if not is_set and default is not None:
            # A line left commented out must say what applies: the default.
            assert value == shown(default), f"{name}: the file says {value}, cdrlog {default}"


def test_every_line_of_the_environment_file_is_a_valid_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Uncommented one and all, the lines still give settings the service accepts."""
    fields = {envvar_of(name) for name in Settings.model_fields}
    for name, (_, value) in entries().items():
        if name in fields:
            monkeypatch.setenv(name, value)
    Settings()


@pytest.mark.parametrize("unit", UNITS)
def test_the_unit_passes_systemd_analyze_verify(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # verify checks that the program exists: point it at this checkout's cdrlog.
    for name in UNITS:
        text = (DEPLOY / name).read_text()
        (tmp_path / name).write_text(text.replace(INSTALLED, str(installed_cdrlog())))
    if unit.endswith(".service"):
        assert f"ExecStart={INSTALLED} " in (DEPLOY / unit).read_text()
    checked = subprocess.run(
        [analyze, "verify", str(tmp_path / unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    # A misspelt key is only a warning (status 0): any output at all fails the test.
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def installed_cdrlog() -> Path:
    program = Path(sys.executable).parent / "cdrlog"
    assert program.is_file(), f"no cdrlog beside {sys.executable}"
    return program


def unit_setting(name: str) -> str:
    """The value of `name=` in deploy/cdrlog.service (the last, as systemd takes it)."""
    values = [
        line.split("=", 1)[1]
        for line in (DEPLOY / "cdrlog.service").read_text().splitlines()
        if line.startswith(f"{name}=")
    ]
    assert values, f"cdrlog.service sets no {name}"
    return values[-1]


@pytest.mark.slow
def test_the_service_as_the_unit_runs_it_serves_and_stops_cleanly(tmp_path: Path) -> None:
    """The unit's command with the file's environment (its own paths moved here, as
    StateDirectory would give them), one push, then the SIGTERM of `systemctl stop`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CDRLOG_")}
    environment |= {name: value for name, (is_set, value) in entries().items() if is_set}
    port = free_port()
    database = tmp_path / "cdrlog.db"
    environment |= {
        "CDRLOG_DATABASE_URL": f"sqlite:///{database}",
        "CDRLOG_SPOOL_DIR": str(tmp_path / "spool"),
        "CDRLOG_PORT": str(port),
    }
    program, *arguments = unit_setting("ExecStart").split()
    assert program == INSTALLED
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "cdrlog", *arguments],
            cwd=tmp_path,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, server, log.read_text)
        body = "sessionid=s1&source=CALLER&event=incoming&calltype=dialin&eventTime=1764147600"
        answer = httpx.post(f"{base}/astercc/team1/events", content=body, headers=FORM)
        assert answer.status_code == 200, answer.text
        server.send_signal(signal.SIGTERM)
        stop_timeout = float(unit_setting("TimeoutStopSec").removesuffix("s"))
        assert server.wait(timeout=stop_timeout) == 0, log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    engine = make_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            stored = connection.execute(select(func.count()).select_from(call_event))
            assert stored.scalar_one() == 1
    finally:
        engine.dispose()
