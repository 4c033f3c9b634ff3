"""The Ingestor without HTTP, on every backend: journal, CDR fold, agent registry.

Events are built with `parse_event` from the string fields asterCC would post; the
expected CDRs are worked out by hand from the seed's and the contract's rules.
"""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import permutations
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from cdrlog.core.accepted import Outcome
from cdrlog.service.ingest import Ingestor
from cdrlog.store.tables import agent, call_event, cdr
from conftest import empty_tables
from support.legs import T0, TEAM, Fields, accepted, at, leg, outbound

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)


# What a closed call in the seed's shape holds in the columns the manual's fields fill.
SEED_SHAPE_EXTRAS = {"did": None, "agent_group": None, "hold_seconds": 0, "transferred_to": None}


def expected_outbound(sessionid: str) -> dict[str, Any]:
    return {
        "orgidentity": TEAM,
        "diallogid": sessionid,
        "calltype": "dialout",
        "target": "DialOut",
        "src": "8001",
        "dst": "13800138000",
        "agentno": "1001",
        "starttime": T0 + timedelta(seconds=5),
        "answertime": T0 + timedelta(seconds=12),
        "endtime": T0 + timedelta(seconds=100),
        "duration": 95,
        "billsec": 88,
        "disposition": "ANSWER",
        "status": "closed",
        **SEED_SHAPE_EXTRAS,
    }


def cdrs(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every CDR by diallogid, with the columns a fold determines."""
    columns = [c for c in cdr.c if c.name not in ("id", "created_at", "updated_at", "version")]
    with engine.connect() as connection:
        rows = connection.execute(select(*columns))
        return {row.diallogid: dict(row._mapping) for row in rows}


def journal_size(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(call_event)).scalar_one())


def registry(engine: Engine) -> dict[str, tuple[str | None, bool]]:
    with engine.connect() as connection:
        rows = connection.execute(select(agent).where(agent.c.orgidentity == TEAM))
        return {row.agentno: (row.phone, row.logged_in) for row in rows}


@pytest.fixture
def ingestor(engine: Engine) -> Ingestor:
    return Ingestor(engine, clock=lambda: NOW)


# --- one call ----------------------------------------------------------------------------


def test_events_in_any_order_give_the_same_cdr(ingestor: Ingestor, engine: Engine) -> None:
    orders = {
        "in-order": [0, 1, 2, 3, 4],
        "reversed": [4, 3, 2, 1, 0],
        "hangup-before-answer": [1, 3, 2, 0, 4],
        "answer-first": [2, 4, 0, 3, 1],
    }
    for name, order in orders.items():
        events = outbound(name)
        for index in order:
            assert ingestor.ingest(accepted(events[index])) == Outcome.STORED

    assert cdrs(engine) == {name: expected_outbound(name) for name in orders}


def test_exact_duplicate_is_reported_and_changes_nothing(
    ingestor: Ingestor, engine: Engine
) -> None:
    events = outbound("s1")
    for fields in events:
        ingestor.ingest(accepted(fields))
    with engine.connect() as connection:
        before = connection.execute(select(cdr)).one()

    outcomes = [ingestor.ingest(accepted(fields)) for fields in reversed(events)]

    assert outcomes == [Outcome.DUPLICATE] * len(events)
    assert journal_size(engine) == len(events)
    with engine.connect() as connection:
        assert connection.execute(select(cdr)).one() == before


def test_same_fields_in_another_team_are_not_a_duplicate(
    ingestor: Ingestor, engine: Engine
) -> None:
    ringing = outbound("s1")[1]

    assert ingestor.ingest(accepted(ringing, team="team1")) == Outcome.STORED
    assert ingestor.ingest(accepted(ringing, team="team2")) == Outcome.STORED

    with engine.connect() as connection:
        teams = connection.execute(select(cdr.c.orgidentity).order_by(cdr.c.orgidentity))
        assert teams.scalars().all() == ["team1", "team2"]


def test_open_call_has_no_end_duration_or_billsec(engine: Engine) -> None:
    ingestor = Ingestor(engine, clock=lambda: T0 + timedelta(minutes=5))
    for fields in outbound("s1")[:3]:
        ingestor.ingest(accepted(fields))

    row = cdrs(engine)["s1"]
    assert (row["status"], row["disposition"]) == ("open", "ANSWER")
    assert (row["endtime"], row["duration"], row["billsec"]) == (None, None, None)


def test_call_exists_only_once_the_customer_leg_is_dialled(
    ingestor: Ingestor, engine: Engine
) -> None:
    ingestor.ingest(accepted(outbound("s1")[0]))

    assert cdrs(engine) == {}


@pytest.mark.parametrize(
    ("cause", "disposition"),
    [
        ("17", "BUSY"),
        ("busy", "BUSY"),
        ("34", "CONGESTION"),
        ("38", "CONGESTION"),
        ("Congestion", "CONGESTION"),
        ("failed", "FAILED"),
        ("19", "NOANSWER"),
        ("16", "NOANSWER"),
    ],
)
def test_unanswered_call_takes_its_disposition_from_the_hangup_cause(
    ingestor: Ingestor, engine: Engine, cause: str, disposition: str
) -> None:
    events = outbound("s1")
    for fields in (events[1], events[3] | {"hangupcause": cause}):
        ingestor.ingest(accepted(fields))

    row = cdrs(engine)["s1"]
    assert (row["disposition"], row["answertime"], row["billsec"]) == (disposition, None, 0)
    assert row["duration"] == 95


def test_answered_call_stays_answer_whatever_the_cause(ingestor: Ingestor, engine: Engine) -> None:
    events = outbound("s1")
    for fields in (events[1], events[2], events[3] | {"hangupcause": "17"}):
        ingestor.ingest(accepted(fields))

    assert cdrs(engine)["s1"]["disposition"] == "ANSWER"


def test_earliest_hangup_by_event_time_ends_the_call(ingestor: Ingestor, engine: Engine) -> None:
    events = outbound("s1")
    late_callee = events[3] | {"eventTime": at(130)}
    early_caller = events[4] | {"eventTime": at(90)}
    for fields in (late_callee, events[1], early_caller, events[2]):
        ingestor.ingest(accepted(fields))

    row = cdrs(engine)["s1"]
    assert row["endtime"] == T0 + timedelta(seconds=90)
    assert (row["duration"], row["billsec"]) == (85, 78)


def test_inbound_call_ivr_answer_is_not_an_answer(ingestor: Ingestor, engine: Engine) -> None:
    customer = {"activenum": "13900139000"}
    events = [
        leg("in-1", "CALLER", "ringing", 0, "dialin", **customer),
        leg("in-1", "CALLER", "answer", 1, "dialin"),
        leg("in-1", "CALLEE", "ringing", 8, "dialin", activenum="8002", agentno="1002"),
        leg("in-1", "CALLER", "hangup", 20, "dialin"),
    ]
    for fields in reversed(events):
        ingestor.ingest(accepted(fields))

    row = cdrs(engine)["in-1"]
    assert (row["target"], row["src"], row["dst"], row["agentno"]) == (
        "DialIn",
        "13900139000",
        "8002",
        "1002",
    )
    assert (row["disposition"], row["answertime"], row["duration"], row["billsec"]) == (
        "NOANSWER",
        None,
        20,
        0,
    )


def test_events_that_change_no_cdr_are_journaled_only(ingestor: Ingestor, engine: Engine) -> None:
    others = [
        leg("s1", "CALLEE", "link", 6),
        leg("s1", "CALLEE", "hold", 7),
        leg("fax-1", "CALLEE", "ringing", 0, "fax", activenum="123"),
    ]

    outcomes = [ingestor.ingest(accepted(fields)) for fields in others]

    assert outcomes == [Outcome.STORED] * 3
    assert journal_size(engine) == 3
    assert cdrs(engine) == {}


# --- agent registry ----------------------------------------------------------------------


def login(agentno: str, phone: str, seconds: float, event: str = "login") -> Fields:
    return {"event": event, "agentno": agentno, "agentphone": phone, "eventTime": at(seconds)}


def logout(agentno: str, seconds: float) -> Fields:
    return {"event": "logout", "agentno": agentno, "eventTime": at(seconds)}


def test_newest_login_wins_whatever_the_arrival_order(ingestor: Ingestor, engine: Engine) -> None:
    for number, order in enumerate(permutations([(10, "8010"), (20, "8020"), (30, "8030")])):
        for seconds, phone in order:
            ingestor.ingest(accepted(login(f"agent-{number}", phone, seconds)))

    assert registry(engine) == {f"agent-{n}": ("8030", True) for n in range(6)}


def test_logout_keeps_the_phone_and_a_later_login_returns(
    ingestor: Ingestor, engine: Engine
) -> None:
    ingestor.ingest(accepted(login("1001", "8001", 10)))
    ingestor.ingest(accepted(logout("1001", 20)))
    assert registry(engine) == {"1001": ("8001", False)}

    ingestor.ingest(accepted(login("1001", "8005", 30)))
    assert registry(engine) == {"1001": ("8005", True)}


def test_late_arriving_older_events_change_nothing(ingestor: Ingestor, engine: Engine) -> None:
    ingestor.ingest(accepted(login("1001", "8001", 30)))

    ingestor.ingest(accepted(logout("1001", 20)))
    ingestor.ingest(accepted(login("1001", "8999", 10)))

    assert registry(engine) == {"1001": ("8001", True)}


def test_call_event_with_agentno_and_agentphone_registers_the_agent(
    ingestor: Ingestor, engine: Engine
) -> None:
    ingestor.ingest(accepted(outbound("s1")[1]))

    assert registry(engine) == {"1001": ("8001", True)}


def test_set_agent_binds_a_phone_used_by_later_calls(ingestor: Ingestor, engine: Engine) -> None:
    ingestor.set_agent(TEAM, "1001", "8077")
    for fields in outbound("s1")[1:4]:
        without_phone = {k: v for k, v in fields.items() if k != "agentphone"}
        ingestor.ingest(accepted(without_phone))

    assert cdrs(engine)["s1"]["src"] == "8077"
    assert registry(engine) == {"1001": ("8077", True)}


def test_login_after_set_agent_overrides_it(ingestor: Ingestor, engine: Engine) -> None:
    ingestor.set_agent(TEAM, "1001", "8077")
    after_set = (NOW - T0).total_seconds() + 60

    ingestor.ingest(accepted(login("1001", "8001", after_set)))

    assert registry(engine) == {"1001": ("8001", True)}


def test_newest_login_wins_even_after_a_repeated_login(ingestor: Ingestor, engine: Engine) -> None:
    for seconds, phone in [(10, "8001"), (50, "8001"), (30, "8002")]:
        ingestor.ingest(accepted(login("1001", phone, seconds)))

    assert registry(engine) == {"1001": ("8001", True)}


@given(order=st.permutations(range(8)), size=st.integers(1, 8))
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_registry_batches_hold_what_one_by_one_holds(
    engine: Engine, order: list[int], size: int
) -> None:
    """Logins, logouts and a call's phone for three agents, in batches of any size and
    any order, leave each agent where its newest fact puts it."""
    facts = [
        login("1001", "8001", 10),
        logout("1001", 20),
        login("1002", "8002", 15),
        leg("s9", "CALLER", "ringing", 25, activenum="8022", agentno="1002", agentphone="8022"),
        logout("1003", 5),
        login("1003", "8003", 40),
        login("1001", "8011", 30),
        login("1002", "8012", 12),
    ]
    empty_tables(engine)
    ingestor = Ingestor(engine, clock=lambda: NOW)
    shuffled = [facts[i] for i in order]
    for start in range(0, len(shuffled), size):
        ingestor.ingest_many([accepted(f) for f in shuffled[start : start + size]])
    assert registry(engine) == {
        "1001": ("8011", True),
        "1002": ("8022", True),
        "1003": ("8003", True),
    }


# --- many senders at once ----------------------------------------------------------------


def planned_call(n: int) -> tuple[list[Fields], dict[str, Any]]:
    """Outbound call n and its CDR, worked out by hand from the seed's rules.

    The agent's phone rings, then 3 s later the customer's (the CDR starts); two calls in
    three are answered; the customer's leg hangs up first, the agent's a second later.
    An unanswered call says busy (17) when n is even, no answer (19) when odd.
    """
    sessionid = f"call-{n:03d}"
    agentno, phone, customer = f"10{n % 10:02d}", f"80{n % 10:02d}", f"1380000{n:04d}"
    dialled = T0 + timedelta(minutes=n)
    start = dialled + timedelta(seconds=3)
    answer = start + timedelta(seconds=4 + n % 5) if n % 3 else None
    end = start + timedelta(seconds=30 + n)
    cause = "" if answer else ("17" if n % 2 == 0 else "19")
    # Every fifth call leaves agentphone out: src then comes from the registry or the
    # agent's own leg, which both say the same phone.
    agent_fields = {"agentno": agentno} | ({} if n % 5 == 0 else {"agentphone": phone})

    def event(source: str, name: str, moment: datetime, **extra: str) -> Fields:
        when = str(int(moment.timestamp())) if n % 4 == 0 else moment.strftime("%Y-%m-%d %H:%M:%S")
        return {
            "sessionid": sessionid,
            "calltype": "dialout",
            "source": source,
            "event": name,
            "eventTime": when,
            **agent_fields,
            **extra,
        }

    events = [
        event("CALLER", "ringing", dialled, activenum=phone),
        event("CALLEE", "ringing", start, activenum=customer),
        event("CALLEE", "hangup", end, **({"hangupcause": cause} if cause else {})),
        event("CALLER", "hangup", end + timedelta(seconds=1)),
    ]
    if answer is not None:
        events.append(event("CALLEE", "answer", answer))
    disposition = "ANSWER" if answer else ("BUSY" if cause == "17" else "NOANSWER")
    expected = {
        "orgidentity": TEAM,
        "diallogid": sessionid,
        "calltype": "dialout",
        "target": "DialOut",
        "src": phone,
        "dst": customer,
        "agentno": agentno,
        "starttime": start,
        "answertime": answer,
        "endtime": end,
        "duration": 30 + n,
        "billsec": int((end - answer).total_seconds()) if answer else 0,
        "disposition": disposition,
        "status": "closed",
        **SEED_SHAPE_EXTRAS,
    }
    return events, expected


def test_sixteen_threads_give_exactly_one_correct_cdr_per_call(
    ingestor: Ingestor, engine: Engine
) -> None:
    plans = [planned_call(n) for n in range(100)]
    unique = [accepted(fields) for events, _ in plans for fields in events]
    deliveries = unique * 2
    random.Random(20240305).shuffle(deliveries)

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = Counter(pool.map(ingestor.ingest, deliveries))

    assert outcomes == {Outcome.STORED: len(unique), Outcome.DUPLICATE: len(unique)}
    assert journal_size(engine) == len(unique)
    assert cdrs(engine) == {expected["diallogid"]: expected for _, expected in plans}
