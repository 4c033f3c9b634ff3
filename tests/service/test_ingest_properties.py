"""Ingest is the fold: Hypothesis traffic through `Ingestor.ingest_many`, on every backend.

A few calls are drawn as the fold's properties draw them (`support.calls`: outbound and
inbound, the seed's and the manual's legs, queues hunting among agents, holds, consults,
transfers, junk, or arbitrary events of one session), in two teams, with events lost
(calls left open, some past the maximum call length), `eventid`s on some, and agent
logins, logouts and state events beside them. Their pushes are checked as the intake
checks them, then sent in any order, some several times, in batches of any size (one
`ingest_many` each). Every CDR stored must then be the pure fold of its call's events,
with the registry as the batches so far left it; each re-send is reported a duplicate
and journaled once; and the sweep of stale calls closes exactly the open ones it should.

The writers' memory of calls (`callcache`) is drawn too: warm (one writer that keeps
what it wrote), cold (one that keeps nothing, reading every call back) or stale (two
writers on one database taking batches in turn, as two processes do, each finding calls
the other changed since it last saw them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from cdrlog.core.accepted import Accepted, Outcome
from cdrlog.core.cdr import affects_cdr, fold_call
from cdrlog.core.events import AGENT, CONSULT, CallEvent, Event
from cdrlog.core.record import Cdr
from cdrlog.core.rules import CALL_TYPES, Status
from cdrlog.service.callcache import CallCache
from cdrlog.service.ingest import Ingestor
from cdrlog.service.intake import Intake
from cdrlog.service.settings import Settings
from cdrlog.store.tables import call_event, cdr, cdr_from_row
from conftest import Backend, empty_tables
from support.calls import BASE, calls_with_junk, wild_events

TEAMS = ("acme", "zenith")
PBX_ZONE = "Asia/Shanghai"
MAX_CALL_LENGTH = timedelta(hours=1)
# Calls start within four hours of BASE; the receiver stores them three hours in (those
# that started more than an hour before are stale then), and sweeps at four hours (those
# that started in the third hour are stale then; the fourth hour's stay open).
STARTS = st.sampled_from([0, 2, 2, 3]).flatmap(
    lambda hour: st.integers(hour * 3600, (hour + 1) * 3600 - 1 if hour else 2 * 3600 - 1)
)
INGESTED_AT = BASE + timedelta(hours=3)
SWEPT_AT = BASE + timedelta(hours=4)
AGENTS = ("1001", "1002", "1003", "1004")
PHONES = ("8001", "8002", "8005", "8011")
EXTRAS: tuple[dict[str, str], ...] = (
    {},
    {"AgentTeamId": "20", "modeltype": "Campaign"},
    {"channel": "Local/015967121144@hosted-dialout-408a;1", "from": "dialout"},
)
CallKey = tuple[str, str]
Registry = dict[str, dict[str, str]]


@dataclass(frozen=True)
class Push:
    """One event as asterCC posts it: the team of its URL and its fields; for a call's
    event, the event they say."""

    team: str
    fields: dict[str, str]
    meant: CallEvent | None = None


# --- Drawing traffic ----------------------------------------------------------------------


def event_time(moment: datetime, form: int) -> str:
    """`eventTime` in one of the forms asterCC may send: the PBX's local time, epoch
    seconds, or ISO-8601 with an offset."""
    if form == 0 and moment.microsecond == 0:
        return moment.astimezone(ZoneInfo(PBX_ZONE)).strftime("%Y-%m-%d %H:%M:%S")
    if form == 1:
        return f"{moment.timestamp():.6f}".rstrip("0").rstrip(".")
    return moment.astimezone(ZoneInfo("America/New_York")).isoformat()


def call_fields(event: CallEvent, form: int, extra: Mapping[str, str]) -> dict[str, str]:
    optional = {
        "activenum": event.activenum,
        "agentno": event.agentno,
        "agentphone": event.agentphone,
        "hangupcause": event.hangupcause,
        "calleridnum": event.calleridnum,
        "didnumber": event.didnumber,
        "uniqueid": event.uniqueid,
        "AgentGroupId": event.agent_group,
        "eventid": None if event.eventid is None else str(event.eventid),
    }
    return {
        "sessionid": event.sessionid,
        "calltype": event.calltype,
        "source": event.source,
        "event": event.event,
        "eventTime": event_time(event.event_time, form),
        **{name: value for name, value in optional.items() if value is not None},
        **extra,
    }


@st.composite
def call_pushes(draw: st.DrawFn, sessionid: str) -> list[Push]:
    """One call's pushes: a realistic call (or arbitrary events of one session) moved to
    its start time and team, some events lost, `eventid`s maybe numbered in order."""
    if draw(st.integers(0, 4)):
        call = draw(calls_with_junk())
        events, start = call.events, call.expected.starttime
    else:
        # One call type per session: an earlier event of the other type would make the
        # fold give no CDR, and the ingestor keeps a CDR it wrote before (a known gap).
        kind = draw(st.sampled_from(sorted(CALL_TYPES)))
        events = [
            replace(e, calltype=kind) if e.calltype in CALL_TYPES else e for e in draw(wild_events)
        ]
        start = min((e.event_time for e in events), default=BASE)
    if not events:
        return []
    team = draw(st.sampled_from(TEAMS))
    shift = BASE + timedelta(seconds=draw(STARTS)) - start
    events = [
        replace(e, team=team, sessionid=sessionid, event_time=e.event_time + shift) for e in events
    ]
    if draw(st.booleans()):
        # asterCC numbers every event it sends: a lower eventid is an older event.
        ordered = sorted(events, key=lambda e: e.event_time)
        events = [replace(e, eventid=100 + n) for n, e in enumerate(ordered)]
    lost = draw(st.sampled_from(["none", "none", "some", "hangups"]))
    if lost == "some":
        kept = draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
        events = [e for e, keep in zip(events, kept, strict=True) if keep]
    elif lost == "hangups":  # the call never ends: open, until it is stale
        events = [e for e in events if e.event != "hangup"]
    forms = st.integers(0, 2)
    extra = draw(st.sampled_from(EXTRAS))
    return [Push(team, call_fields(e, draw(forms), extra), e) for e in events]


@st.composite
def agent_pushes(draw: st.DrawFn) -> Push:
    """A login, logout or state change of an agent, maybe telling its phone."""
    name = draw(st.sampled_from(["login", "login", "logout", "logoff", "paused", "hangupacw"]))
    moment = BASE + timedelta(seconds=draw(st.integers(-3600, 4 * 3600)))
    fields = {
        "event": name,
        "agentno": draw(st.sampled_from(AGENTS)),
        "eventTime": event_time(moment, draw(st.integers(0, 2))),
    }
    if name == "login" or draw(st.booleans()):
        fields["agentphone"] = draw(st.sampled_from(PHONES))
    if draw(st.booleans()):
        fields["AgentGroupId"] = draw(st.sampled_from(["q2", "q3"]))
    return Push(draw(st.sampled_from(TEAMS)), fields)


@st.composite
def traffic(draw: st.DrawFn) -> list[Push]:
    """Up to four calls and up to four agent events."""
    calls = draw(st.integers(1, 4))
    pushes = [push for n in range(calls) for push in draw(call_pushes(f"s{n}"))]
    return pushes + draw(st.lists(agent_pushes(), max_size=4))


@st.composite
def deliveries(draw: st.DrawFn, items: Sequence[int]) -> list[list[tuple[int, bool]]]:
    """The items (by index) delivered at least once each, some again (the re-send with
    its fields in another order), in any order, cut into batches of any size."""
    again = draw(st.lists(st.sampled_from(items), max_size=6)) if items else []
    sent = [(i, False) for i in items] + [(i, True) for i in again]
    sent = draw(st.permutations(sent))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(sent) - 1)), max_size=5)))
    bounds = [0, *(c for c in cuts if c < len(sent)), len(sent)]
    return [sent[low:high] for low, high in pairwise(bounds) if high > low]


# --- What the receiver must hold ---------------------------------------------------------------


def phones_known(events: Iterable[Event]) -> Registry:
    """The registry's phones (team -> agent -> phone) that these events leave: of each
    agent, the phone its newest event tells (an `agentphone`, or the number the agent's
    own `AGENT` leg rang; never a consulted party's leg), ties to the greater."""
    newest: dict[tuple[str, str], tuple[datetime, str]] = {}
    for item in events:
        if item.agentno is None:
            continue
        phone = item.agentphone
        if isinstance(item, CallEvent):
            if item.source == CONSULT:
                continue
            if item.source == AGENT:
                phone = phone or item.activenum
        if phone is None:
            continue
        key = (item.team, item.agentno)
        if key not in newest or (item.event_time, phone) > newest[key]:
            newest[key] = (item.event_time, phone)
    known: Registry = {}
    for (team, agentno), (_, phone) in newest.items():
        known.setdefault(team, {})[agentno] = phone
    return known


def call_of(event: Event) -> CallKey | None:
    if isinstance(event, CallEvent) and affects_cdr(event):
        return (event.team, event.sessionid)
    return None


def stored_cdrs(engine: Engine) -> dict[CallKey, Cdr]:
    with engine.connect() as connection:
        return {
            (row.orgidentity, row.diallogid): cdr_from_row(row)
            for row in connection.execute(select(cdr))
        }


def journal_size(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(call_event)).scalar_one())


# --- The property ----------------------------------------------------------------------------


@hypothesis_settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pushes=traffic(), data=st.data())
def test_stored_cdrs_are_the_fold_whatever_the_order_resends_and_batches(
    backend: Backend, engine: Engine, pushes: list[Push], data: st.DataObject
) -> None:
    empty_tables(engine)
    clock = [INGESTED_AT]
    memory = data.draw(st.sampled_from(["warm", "cold", "stale"]), label="memory")
    writers = [
        Ingestor(
            engine,
            clock=lambda: clock[0],
            max_call_length=MAX_CALL_LENGTH,
            cache=CallCache(0 if memory == "cold" else 64),
        )
        for _ in range(2 if memory == "stale" else 1)
    ]
    ingestor = writers[0]
    intake = Intake(Settings(database_url=backend.url, pbx_timezone=PBX_ZONE), ingestor)
    checked = [(push, intake.check(push.team, push.fields)) for push in pushes]
    # What the intake refuses (a ringing without its number) is never stored; what it
    # accepts of a call says what was meant, whatever form its time took.
    items = [(push, one) for push, one in checked if isinstance(one, Accepted)]
    for push, one in items:
        if push.meant is not None:
            assert one.event == push.meant

    seen: set[tuple[str, str]] = set()
    events: dict[CallKey, list[CallEvent]] = {}
    delivered: list[Event] = []
    refolded_after: dict[CallKey, Registry] = {}
    for batch in data.draw(deliveries(range(len(items)))):
        sent = [items[i] for i, _ in batch]
        resent = [
            (push, Accepted(one.event, dict(reversed(push.fields.items())), one.fingerprint))
            if again
            else (push, one)
            for (push, one), (_, again) in zip(sent, batch, strict=True)
        ]
        writer = writers[data.draw(st.integers(0, len(writers) - 1), label="writer")]
        outcomes = writer.ingest_many([one for _, one in resent])

        expected: list[Outcome] = []
        changed: set[CallKey] = set()
        for _, one in resent:
            key = (one.event.team, one.fingerprint)
            expected.append(Outcome.DUPLICATE if key in seen else Outcome.STORED)
            if key not in seen:
                seen.add(key)
                if (call := call_of(one.event)) is not None:
                    changed.add(call)
                if isinstance(one.event, CallEvent):
                    call_key = (one.event.team, one.event.sessionid)
                    events.setdefault(call_key, []).append(one.event)
            delivered.append(one.event)
        assert outcomes == expected
        # A call is refolded when a batch stores one of its events, with the registry
        # as that batch (its own facts first) left it.
        registry = phones_known(delivered)
        refolded_after |= dict.fromkeys(changed, registry)

    assert journal_size(engine) == len(seen)
    stale_before = INGESTED_AT - MAX_CALL_LENGTH
    wanted: dict[CallKey, Cdr] = {}
    for call, registry in refolded_after.items():
        record = fold_call(events[call], registry.get(call[0], {}), stale_before)
        if record is not None:
            wanted[call] = record
    assert stored_cdrs(engine) == wanted

    # The sweep closes, with today's registry, the open calls that are stale now.
    clock[0] = SWEPT_AT
    stale_before = SWEPT_AT - MAX_CALL_LENGTH
    registry = phones_known(delivered)
    stale = [c for c, r in wanted.items() if r.status is Status.OPEN and r.starttime < stale_before]
    for call in stale:
        record = fold_call(events[call], registry.get(call[0], {}), stale_before)
        assert record is not None
        assert record.status is Status.TIMEOUT
        wanted[call] = record
    assert ingestor.close_stale() == len(stale)
    assert stored_cdrs(engine) == wanted
    for record in wanted.values():
        event(f"a CDR {record.status}, {record.disposition}, {record.calltype}")
    event(f"{len(stale)} swept")
    event(f"memory {memory}")
