"""Upgrading an install that refused the manual's events: after `cdrlog db upgrade`,
`cdrlog rejected retry --all` and `cdrlog rebuild`, the database holds exactly what a
fresh install given the same events holds, and no dead letter is left.

The old install is made as the previous version left it: the schema of revision 0004,
the events it accepted in the journal (without the columns it did not parse), the
events it refused as dead letters, and the CDRs it folded, some of them wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from alembic import command
from click.testing import CliRunner
from sqlalchemy import Engine, select, text

from cdrlog.cli.main import cli
from cdrlog.core.accepted import Accepted
from cdrlog.core.events import Rejection, fingerprint, parse_event
from cdrlog.service.ingest import Ingestor
from cdrlog.store import agents
from cdrlog.store.database import alembic_config
from cdrlog.store.tables import agent, call_event, call_session, cdr, dead_letter, metadata
from conftest import Backend, reset_schema
from support.scenarios import FILES, load, wire_fields

TEAM = "acme"
RECEIVED = datetime(2026, 1, 6, 0, 0, tzinfo=UTC)
MAX_CALL = timedelta(hours=4)
# What the previous version parsed from an event, and what it accepted.
OLD_COLUMNS = ("calltype", "source", "activenum", "agentno", "agentphone", "hangupcause")
OLD_LEGS = {"CALLER", "CALLEE"}


def pushes() -> Iterator[dict[str, str]]:
    """Every distinct event of the scenarios whose PBX writes UTC, and agent events."""
    seen: set[str] = set()
    for path in FILES:
        scenario = load(path)
        if scenario.header.get("timezone", "UTC") == "UTC" and scenario.team == TEAM:
            for row in scenario.rows:
                fields = wire_fields(scenario, row)
                if (key := fingerprint(TEAM, fields)) not in seen:
                    seen.add(key)
                    yield fields
    for name, agentno, at in [
        ("login", "1003", "2026-01-05 08:00:00"),
        ("paused", "1003", "2026-01-05 12:00:00"),
        ("nopaused", "1003", "2026-01-05 12:10:00"),
        ("hangupacw", "1002", "2026-01-05 15:10:41"),
        ("logoff", "1002", "2026-01-05 18:00:00"),
    ]:
        yield {"event": name, "agentno": agentno, "eventTime": at, "AgentGroupId": "201"}


def old_version_refused(fields: dict[str, str]) -> bool:
    """The previous version's rules: a login with its phone or a logout, or a call event
    of a CALLER or CALLEE leg with its calltype (a ringing with its activenum)."""
    event = fields["event"].lower()
    if event in ("login", "logout"):
        return event == "login" and not fields.get("agentphone")
    if fields.get("source", "").upper() not in OLD_LEGS or not fields.get("calltype"):
        return True
    return event == "ringing" and not fields.get("activenum")


def make_old_install(engine: Engine, calls: set[str]) -> int:
    """The database as the previous version left it, with a wrong CDR for each of
    `calls`; returns how many dead letters it kept."""
    with engine.begin() as connection:
        metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0004")
    letters = 0
    phones: dict[str, tuple[datetime, str]] = {}
    with engine.begin() as connection:
        for fields in pushes():
            body = urlencode(fields).encode()
            if old_version_refused(fields):
                connection.execute(dead_letter.insert(), _letter(body))
                letters += 1
                continue
            event = parse_event(fields, url_team=TEAM, pbx_timezone=ZoneInfo("UTC"))
            assert not isinstance(event, Rejection)
            row: dict[str, Any] = {
                "orgidentity": TEAM,
                "fingerprint": fingerprint(TEAM, fields),
                "sessionid": fields.get("sessionid"),
                "event": event.event,
                "event_time": event.event_time,
                "fields": json.dumps(fields, ensure_ascii=True, sort_keys=True),
                "received_at": RECEIVED,
            }
            row |= {name: _old_value(fields, name) for name in OLD_COLUMNS}
            connection.execute(call_event.insert().values(row))
            if row["agentno"] and row["agentphone"]:
                known = phones.get(row["agentno"])
                if known is None or known[0] < event.event_time:
                    phones[row["agentno"]] = (event.event_time, row["agentphone"])
        for agentno, (moment, phone) in phones.items():
            connection.execute(agent.insert().values(_old_agent(agentno, moment, phone)))
        sessions = connection.execute(select(call_event.c.sessionid).distinct()).scalars()
        for sessionid in [s for s in sessions if s is not None]:
            values = {"orgidentity": TEAM, "sessionid": sessionid, "created_at": RECEIVED}
            connection.execute(call_session.insert().values(values))
            if sessionid in calls:
                # The old fold's CDR, wrong in what the manual's legs tell.
                connection.execute(cdr.insert().values(_old_cdr(sessionid)))
    return letters


def _letter(body: bytes) -> dict[str, Any]:
    return {
        "received_at": RECEIVED,
        "orgidentity": TEAM,
        "path": f"/astercc/{TEAM}/events",
        "content_type": "application/x-www-form-urlencoded",
        "remote_addr": "127.0.0.1",
        "body": body,
        "truncated": False,
        "reason": json.dumps({"source": "must be CALLER or CALLEE"}),
    }


def _old_agent(agentno: str, moment: datetime, phone: str) -> dict[str, Any]:
    return {
        "orgidentity": TEAM,
        "agentno": agentno,
        "phone": phone,
        "logged_in": True,
        "event_time": moment,
        "updated_at": RECEIVED,
    }


def _old_value(fields: dict[str, str], name: str) -> str | None:
    value = fields.get(name, "").strip() or None
    if value is not None and name == "source":
        return value.upper()
    return value.lower() if value is not None and name == "calltype" else value


def _old_cdr(sessionid: str) -> dict[str, Any]:
    return {
        "orgidentity": TEAM,
        "diallogid": sessionid,
        "calltype": "dialin",
        "target": "DialIn",
        "starttime": RECEIVED,
        "disposition": "NOANSWER",
        "status": "closed",
        "duration": 0,
        "billsec": 0,
        "endtime": RECEIVED,
        "created_at": RECEIVED,
        "updated_at": RECEIVED,
    }


def fresh_install(engine: Engine) -> None:
    reset_schema(engine)
    ingestor = Ingestor(engine)
    for fields in pushes():
        event = parse_event(fields, url_team=TEAM, pbx_timezone=ZoneInfo("UTC"))
        assert not isinstance(event, Rejection)
        ingestor.ingest(Accepted(event, fields, fingerprint(TEAM, fields)))


def contents(engine: Engine) -> tuple[dict[str, Any], list[Any], int]:
    """The CDRs by call (what a fold determines), the agents, the open dead letters."""
    columns = [c for c in cdr.c if c.name not in ("id", "created_at", "updated_at", "version")]
    with engine.connect() as connection:
        rows = {r.diallogid: dict(r._mapping) for r in connection.execute(select(*columns))}
        open_letters = connection.execute(
            select(dead_letter.c.id).where(dead_letter.c.resolved_at.is_(None))
        ).all()
    listed = agents.listing(engine, [TEAM], RECEIVED, MAX_CALL)
    return rows, listed, len(open_letters)


def test_an_upgraded_install_ends_as_a_fresh_one(backend: Backend, engine: Engine) -> None:
    try:
        fresh_install(engine)
        fresh = contents(engine)
        assert fresh[2] == 0
        assert fresh[0], "the scenarios make CDRs"

        kept = make_old_install(engine, set(fresh[0]))
        assert kept > 0, "the old version refused some of these events"
        runner = CliRunner()
        for arguments in (
            ["db", "upgrade", "--db", backend.url],
            ["rejected", "retry", "--all", "--db", backend.url],
            ["rebuild", "--db", backend.url],
        ):
            result = runner.invoke(cli, arguments, catch_exceptions=False)
            assert result.exit_code == 0, (arguments, result.output)
            if arguments[0] == "rejected":
                assert f"{kept:,} dead letters retried: {kept:,} resolved" in result.output

        cdrs, listed, open_letters = contents(engine)
        assert open_letters == 0
        assert listed == fresh[1]
        assert cdrs == fresh[0]
    finally:
        reset_schema(engine)
