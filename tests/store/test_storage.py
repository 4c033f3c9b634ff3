"""The schema on each backend: migrations equal the metadata, keys, times, case of ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from cdrlog.core.accepted import Accepted
from cdrlog.core.events import CallEvent, fingerprint, parse_event
from cdrlog.service.ingest import Ingestor
from cdrlog.store.tables import cdr, metadata

MOMENT = datetime(2024, 3, 5, 17, 0, 5, 123456, tzinfo=ZoneInfo("Asia/Shanghai"))


def cdr_row(team: str = "team1", diallogid: str = "call-1", **changes: Any) -> dict[str, Any]:
    return {
        "orgidentity": team,
        "diallogid": diallogid,
        "calltype": "dialout",
        "target": "DialOut",
        "starttime": MOMENT,
        "disposition": "NOANSWER",
        "status": "open",
        "created_at": MOMENT,
        "updated_at": MOMENT,
        **changes,
    }


def test_migrations_match_the_metadata(engine: Engine) -> None:
    dialect = engine.dialect.name

    def made_here(item: Any, name: Any, kind: str, reflected: bool, compare_to: Any) -> bool:
        # An index made on one database only (`Index.ddl_if`) is not missing elsewhere.
        only = getattr(item, "_ddl_if", None) if kind == "index" and not reflected else None
        return only is None or only.dialect in (None, dialect)

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_object": made_here,
            },
        )
        differences = compare_metadata(context, metadata)

    assert differences == []


def test_migrations_create_every_table(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())

    assert set(metadata.tables) | {"alembic_version"} <= tables


def test_cdr_is_unique_per_team_and_call(engine: Engine) -> None:
    unique = inspect(engine).get_unique_constraints("cdr")

    assert {"name": "uq_cdr_call", "column_names": ["orgidentity", "diallogid"]} in [
        {"name": key["name"], "column_names": key["column_names"]} for key in unique
    ]


def test_second_cdr_of_the_same_call_is_refused(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(cdr.insert(), [cdr_row()])
        connection.execute(cdr.insert(), [cdr_row(team="team2")])

    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(cdr.insert(), [cdr_row(src="other")])


@pytest.mark.parametrize(
    "moment",
    [
        MOMENT,
        datetime(2024, 3, 5, 9, 0, 5, 1, tzinfo=UTC),
        datetime(1970, 1, 1, 0, 0, 0, 999999, tzinfo=UTC),
        datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-14))),
    ],
    ids=["shanghai", "one-microsecond", "epoch", "late-west"],
)
def test_utc_datetime_round_trips_aware_times_with_microseconds(
    engine: Engine, moment: datetime
) -> None:
    with engine.begin() as connection:
        connection.execute(cdr.insert(), [cdr_row(starttime=moment, answertime=None)])

    with engine.connect() as connection:
        stored = connection.execute(select(cdr.c.starttime, cdr.c.answertime)).one()
    assert stored.starttime == moment
    assert stored.starttime.tzinfo == UTC
    assert stored.starttime.microsecond == moment.astimezone(UTC).microsecond
    assert stored.answertime is None


def test_times_are_stored_as_naive_utc(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(cdr.insert(), [cdr_row()])

    with engine.connect() as connection:
        raw = connection.execute(text("SELECT starttime FROM cdr")).scalar_one()

    # SQLite hands the text back; the servers a naive datetime. Both read as UTC wall time.
    assert str(raw) == "2024-03-05 09:00:05.123456"


def test_session_ids_differing_in_case_are_distinct_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(cdr.insert(), [cdr_row(diallogid="abc"), cdr_row(diallogid="ABC")])

    with engine.connect() as connection:
        found = connection.execute(select(cdr.c.diallogid).where(cdr.c.diallogid == "abc"))
        assert found.scalars().all() == ["abc"]


def _ringing(sessionid: str, customer: str) -> Accepted:
    fields = {
        "sessionid": sessionid,
        "calltype": "dialout",
        "source": "CALLEE",
        "event": "ringing",
        "eventTime": "2024-03-05 09:00:05",
        "activenum": customer,
        "agentno": "1001",
        "agentphone": "8001",
    }
    event = parse_event(fields, url_team="team1", pbx_timezone=ZoneInfo("UTC"))
    assert isinstance(event, CallEvent)
    return Accepted(event=event, fields=fields, fingerprint=fingerprint("team1", fields))


def test_session_ids_differing_in_case_are_distinct_calls(engine: Engine) -> None:
    ingestor = Ingestor(engine)

    ingestor.ingest(_ringing("abc", "111"))
    ingestor.ingest(_ringing("ABC", "222"))

    with engine.connect() as connection:
        calls = connection.execute(select(cdr.c.diallogid, cdr.c.dst).order_by(cdr.c.dst)).all()
    assert [tuple(call) for call in calls] == [("abc", "111"), ("ABC", "222")]


def test_ids_differing_by_trailing_space_are_distinct_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(cdr.insert(), [cdr_row(team="t"), cdr_row(team="t ")])

    with engine.connect() as connection:
        teams = connection.execute(select(cdr.c.orgidentity).where(cdr.c.orgidentity == "t"))
        assert teams.scalars().all() == ["t"]


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_mariadb_text_columns_are_utf8mb4_binary_without_padding(engine: Engine) -> None:
    query = text(
        "SELECT table_name, column_name, character_set_name, collation_name"
        " FROM information_schema.columns"
        " WHERE table_schema = DATABASE() AND character_set_name IS NOT NULL"
        " AND table_name <> 'alembic_version'"
    )
    with engine.connect() as connection:
        columns = connection.execute(query).all()

    assert len(columns) > 20
    assert {(row[2], row[3]) for row in columns} == {("utf8mb4", "utf8mb4_nopad_bin")}
