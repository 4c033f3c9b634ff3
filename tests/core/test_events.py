"""parse_event: one push's string fields checked against the contract, every problem named."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrlog.core.events import (
    AGENT_EVENTS,
    MAX_LENGTH,
    SOURCES,
    AgentEvent,
    CallEvent,
    Event,
    FieldError,
    Rejection,
    fingerprint,
    parse_event,
)
from cdrlog.core.times import EARLIEST, LATEST

UTC_ZONE = ZoneInfo("UTC")
SHANGHAI = ZoneInfo("Asia/Shanghai")
CALL_REQUIRED = ("sessionid", "calltype", "source", "event", "eventTime")


def ringing(**changes: str | None) -> dict[str, str]:
    """The customer's phone ringing on an outbound call, as asterCC posts it.

    A keyword set to None removes that field.
    """
    fields = {
        "sessionid": "1767574800.42",
        "calltype": "dialout",
        "source": "CALLEE",
        "event": "ringing",
        "eventTime": "2026-01-05 09:00:05",
        "activenum": "13800138000",
        "agentno": "1001",
        "agentphone": "8001",
        "orgidentity": "acme",
    }
    for name, value in changes.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return fields


def login(**changes: str | None) -> dict[str, str]:
    fields = {"event": "login", "agentno": "1001", "agentphone": "8001", "eventTime": "1767574800"}
    for name, value in changes.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return fields


def parse(fields: dict[str, str], url_team: str | None = "acme") -> Event | Rejection:
    return parse_event(fields, url_team=url_team, pbx_timezone=SHANGHAI)


def call_event(fields: dict[str, str], url_team: str | None = "acme") -> CallEvent:
    result = parse(fields, url_team)
    assert isinstance(result, CallEvent), result
    return result


def rejected(fields: dict[str, str], url_team: str | None = "acme") -> dict[str, str]:
    """The rejection's errors by field; fails the test when the event was accepted."""
    result = parse(fields, url_team)
    assert isinstance(result, Rejection), result
    assert result.errors, "a rejection names at least one field"
    return result.as_dict()


# --- A good call event -----------------------------------------------------------------


def test_ringing_becomes_a_call_event_with_every_field() -> None:
    assert call_event(ringing()) == CallEvent(
        team="acme",
        sessionid="1767574800.42",
        calltype="dialout",
        source="CALLEE",
        event="ringing",
        event_time=datetime(2026, 1, 5, 1, 0, 5, tzinfo=UTC),
        activenum="13800138000",
        agentno="1001",
        agentphone="8001",
        hangupcause=None,
    )


def test_hangup_keeps_its_cause() -> None:
    event = call_event(ringing(event="hangup", hangupcause="17", activenum=None))
    assert event.event == "hangup"
    assert event.hangupcause == "17"
    assert event.activenum is None


def test_event_time_is_read_in_the_pbx_zone() -> None:
    fields = ringing(eventTime="2026-01-05 09:00:05")
    utc = parse_event(fields, url_team="acme", pbx_timezone=UTC_ZONE)
    shanghai = parse_event(fields, url_team="acme", pbx_timezone=SHANGHAI)
    assert isinstance(utc, CallEvent)
    assert isinstance(shanghai, CallEvent)
    assert utc.event_time == datetime(2026, 1, 5, 9, 0, 5, tzinfo=UTC)
    assert shanghai.event_time == datetime(2026, 1, 5, 1, 0, 5, tzinfo=UTC)


def test_values_are_stripped() -> None:
    event = call_event(ringing(source=" CALLEE ", activenum=" 13800138000\n", agentno="\t1001"))
    assert (event.source, event.activenum, event.agentno) == ("CALLEE", "13800138000", "1001")


def test_extra_fields_are_fine() -> None:
    fields = ringing(userdata="1767574800.43", queue="", **{"X-Custom": "anything"})
    assert call_event(fields) == call_event(ringing())


def test_non_ascii_text_is_accepted() -> None:
    assert call_event(ringing(agentno="坐席-1001")).agentno == "坐席-1001"


# --- Case --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source", ["CALLER", "caller", "Caller", "CALLEE", "callee", "agent", "Consult", "conversation"]
)
def test_source_is_case_insensitive_and_upper_cased(source: str) -> None:
    assert call_event(ringing(source=source)).source == source.upper()
    assert source.upper() in SOURCES


@pytest.mark.parametrize("source", ["A", "B", "legA", "CALLERS", "CALL ER", "*"])
def test_an_unknown_source_is_stored_not_refused(source: str) -> None:
    # It changes no CDR (the rules know no such leg), but asterCC is never refused.
    assert call_event(ringing(source=source)).source == source.upper()


def test_the_manuals_printed_example_is_a_call_event_with_every_field() -> None:
    fields = {
        "calleridnum": "041139735857",
        "didnumber": "8008008",
        "activenum": "041139735855",
        "source": "AGENT",
        "event": "ringing",
        "uniqueid": "78969",
        "sessionid": "efeb7b374a3408b0d0954f30a1504d83",
        "eventTime": "2010-01-01 08:21:58",
        "AgentTeamId": "20",
        "modeltype": "Campaign",
        "model_id": "10",
        "AgentGroupId": "100",
        "calltype": "dialout",
        "channel": "Local/015967121144@hosted-dialout-408a;1",
        "from": "dialout",
    }
    assert call_event(fields) == CallEvent(
        team="acme",
        sessionid="efeb7b374a3408b0d0954f30a1504d83",
        calltype="dialout",
        source="AGENT",
        event="ringing",
        event_time=datetime(2010, 1, 1, 0, 21, 58, tzinfo=UTC),
        activenum="041139735855",
        calleridnum="041139735857",
        didnumber="8008008",
        uniqueid="78969",
        agent_group="100",
    )


def test_from_stands_in_for_an_absent_calltype() -> None:
    assert call_event(ringing(calltype=None, **{"from": "DialIn"})).calltype == "dialin"
    assert call_event(ringing(calltype="dialout", **{"from": "dialin"})).calltype == "dialout"


@pytest.mark.parametrize(
    ("text", "number"), [("17", 17), ("0042", 42), ("-3", None), ("1e3", None)]
)
def test_eventid_is_a_number_or_orders_nothing(text: str, number: int | None) -> None:
    assert call_event(ringing(eventid=text)).eventid == number


@pytest.mark.parametrize("name", ["incoming", "join", "onhold", "hold", "resume", "unhold"])
def test_the_manuals_call_events_need_no_activenum(name: str) -> None:
    assert call_event(ringing(event=name, activenum=None)).event == name


def test_calltype_and_event_are_lower_cased() -> None:
    event = call_event(ringing(calltype="DialOut", event="RINGING"))
    assert (event.calltype, event.event) == ("dialout", "ringing")


# --- Stored without a CDR: unknown call types and events ----------------------------------


@pytest.mark.parametrize("calltype", ["dialtransfer", "queue", "internal"])
def test_unknown_calltype_is_still_a_call_event(calltype: str) -> None:
    assert call_event(ringing(calltype=calltype.upper())).calltype == calltype


@pytest.mark.parametrize("name", ["link", "transfer", "LINK"])
def test_unknown_event_is_still_a_call_event(name: str) -> None:
    event = call_event(ringing(event=name, activenum=None))
    assert event.event == name.lower()


@pytest.mark.parametrize("name", ["link", "dtmf", "queuefull"])
def test_unknown_event_needs_only_its_name_and_time(name: str) -> None:
    result = parse({"event": name, "eventTime": "2026-01-05 09:00:05"})
    assert isinstance(result, AgentEvent)
    assert (result.event, result.agentno) == (name, None)
    assert set(rejected({"event": name})) == {"eventTime"}


# --- Required fields ---------------------------------------------------------------------


@pytest.mark.parametrize("name", CALL_REQUIRED)
def test_each_missing_required_field_is_named(name: str) -> None:
    errors = rejected(ringing(**{name: None}))
    assert errors[name].startswith("is required")


def test_every_missing_field_of_a_call_event_is_named_at_once() -> None:
    assert rejected({"agentno": "1001", "event": "hangup"}, url_team=None) == {
        "sessionid": "is required",
        "calltype": "is required (or `from`)",
        "source": "is required",
        "eventTime": "is required",
        "orgidentity": "is required when the URL names no team",
    }


def test_an_empty_push_names_the_event_and_its_time() -> None:
    assert set(rejected({})) == {"event", "eventTime"}


def test_missing_and_bad_fields_are_reported_together() -> None:
    errors = rejected(ringing(sessionid=None, source=None, eventTime="yesterday"))
    assert set(errors) == {"sessionid", "source", "eventTime"}


@pytest.mark.parametrize("empty", ["", " ", "\t", "\r\n"])
@pytest.mark.parametrize("name", CALL_REQUIRED)
def test_empty_string_counts_as_absent(name: str, empty: str) -> None:
    assert rejected(ringing(**{name: empty}))[name].startswith("is required")


def test_ringing_needs_activenum() -> None:
    assert rejected(ringing(activenum=None)) == {"activenum": "is required"}
    assert rejected(ringing(activenum="")) == {"activenum": "is required"}


@pytest.mark.parametrize("name", ["answer", "hangup", "link"])
def test_other_events_do_not_need_activenum(name: str) -> None:
    assert call_event(ringing(event=name, activenum=None)).activenum is None


def test_optional_fields_may_be_absent() -> None:
    event = call_event(ringing(agentno=None, agentphone=None, hangupcause=None))
    assert (event.agentno, event.agentphone, event.hangupcause) == (None, None, None)


def test_unparsable_event_time_is_named() -> None:
    errors = rejected(ringing(eventTime="2026-13-01 00:00:00"))
    assert set(errors) == {"eventTime"}
    assert "2026-13-01 00:00:00" in errors["eventTime"]


# --- Agent events ------------------------------------------------------------------------


def test_login_is_an_agent_event() -> None:
    assert parse(login()) == AgentEvent(
        team="acme",
        agentno="1001",
        event="login",
        event_time=datetime(2026, 1, 5, 1, 0, 0, tzinfo=UTC),
        agentphone="8001",
    )


@pytest.mark.parametrize("name", sorted(AGENT_EVENTS))
def test_every_agent_event_of_the_manual_is_an_agent_event(name: str) -> None:
    result = parse(login(event=name, agentphone=None, AgentGroupId="100", eventid="7"))
    assert isinstance(result, AgentEvent)
    assert (result.event, result.agent_group, result.eventid) == (name, "100", 7)


def test_an_agent_event_with_a_sessionid_is_still_an_agent_event() -> None:
    assert isinstance(parse(login(event="hangupacw", sessionid="s1")), AgentEvent)


def test_login_needs_no_call_fields() -> None:
    # Neither sessionid, calltype nor source: a login belongs to no call.
    result = parse(login(event="LOGIN", source="whatever"))
    assert isinstance(result, AgentEvent)
    assert result.event == "login"


@pytest.mark.parametrize("name", ["agentno", "eventTime"])
def test_login_requires_its_fields(name: str) -> None:
    assert rejected(login(**{name: None})) == {name: "is required"}


def test_login_needs_no_phone() -> None:
    assert isinstance(parse(login(agentphone=None)), AgentEvent)


def test_logout_needs_no_phone() -> None:
    result = parse(login(event="logout", agentphone=None))
    assert isinstance(result, AgentEvent)
    assert (result.event, result.agentphone) == ("logout", None)


def test_logout_requires_agentno_and_time() -> None:
    errors = rejected({"event": "logout"})
    assert errors == {"agentno": "is required", "eventTime": "is required"}


# --- Teams -------------------------------------------------------------------------------


def test_url_team_fills_an_absent_orgidentity() -> None:
    assert call_event(ringing(orgidentity=None), url_team="acme").team == "acme"


def test_orgidentity_equal_to_the_url_team_is_fine() -> None:
    assert call_event(ringing(orgidentity="acme"), url_team="acme").team == "acme"


def test_orgidentity_disagreeing_with_the_url_team_is_rejected() -> None:
    # One team must never write into another's CDRs.
    errors = rejected(ringing(orgidentity="globex"), url_team="acme")
    assert set(errors) == {"orgidentity"}
    assert "globex" in errors["orgidentity"]
    assert "acme" in errors["orgidentity"]


def test_team_comparison_is_case_sensitive() -> None:
    assert set(rejected(ringing(orgidentity="ACME"), url_team="acme")) == {"orgidentity"}


def test_agent_event_cannot_cross_teams_either() -> None:
    assert set(rejected(login(orgidentity="globex"), url_team="acme")) == {"orgidentity"}


def test_generic_url_takes_the_team_from_orgidentity() -> None:
    assert call_event(ringing(orgidentity="globex"), url_team=None).team == "globex"


def test_generic_url_needs_orgidentity() -> None:
    assert rejected(ringing(orgidentity=None), url_team=None) == {
        "orgidentity": "is required when the URL names no team"
    }
    assert set(rejected(ringing(orgidentity=" "), url_team=None)) == {"orgidentity"}


@pytest.mark.parametrize("url_team", ["", "   ", "a" * 65, "ac\x00me", "ac\ud800me"])
def test_invalid_url_team_is_rejected(url_team: str) -> None:
    assert set(rejected(ringing(orgidentity=None), url_team=url_team)) == {"team"}


# --- Hostile text ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "limit"), sorted(MAX_LENGTH.items()))
def test_over_long_value_is_rejected(name: str, limit: int) -> None:
    result = parse(ringing(**{name: "7" * (limit + 1)}), url_team=None)
    assert isinstance(result, Rejection)
    # A field can be wrong twice (too long and not CALLER/CALLEE): both are reported.
    assert FieldError(name, f"is longer than {limit} characters") in result.errors


@pytest.mark.parametrize(
    "name", ["sessionid", "activenum", "agentno", "agentphone", "hangupcause", "orgidentity"]
)
def test_value_at_the_length_limit_is_accepted(name: str) -> None:
    value = "7" * MAX_LENGTH[name]
    event = call_event(ringing(**{name: value}), url_team=None)
    assert getattr(event, "team" if name == "orgidentity" else name) == value


@pytest.mark.parametrize("name", ["sessionid", "activenum", "agentno", "source", "eventTime"])
def test_nul_in_a_field_is_rejected(name: str) -> None:
    result = parse(ringing(**{name: "8\x001"}))
    assert isinstance(result, Rejection)
    assert FieldError(name, "contains a NUL character") in result.errors


def test_nul_in_an_extra_field_is_rejected() -> None:
    assert rejected(ringing(note="a\x00b")) == {"note": "contains a NUL character"}
    assert rejected(ringing(**{"no\x00te": "x"})) == {"no\x00te": "contains a NUL character"}


@pytest.mark.parametrize("value", ["\ud800", "1001\udfff", "\udc80abc"])
@pytest.mark.parametrize("name", ["sessionid", "activenum", "agentno", "agentphone"])
def test_lone_surrogate_is_rejected(name: str, value: str) -> None:
    assert rejected(ringing(**{name: value})) == {name: "is not valid Unicode text"}


# --- Rejection ---------------------------------------------------------------------------


def test_rejection_as_dict_maps_field_to_message() -> None:
    rejection = Rejection((FieldError("a", "x"), FieldError("b", "y")))
    assert rejection.as_dict() == {"a": "x", "b": "y"}


# --- Fingerprint -------------------------------------------------------------------------


def test_fingerprint_ignores_field_order() -> None:
    fields = ringing()
    reordered = dict(reversed(list(fields.items())))
    assert list(reordered) != list(fields)
    assert fingerprint("acme", reordered) == fingerprint("acme", fields)


def test_fingerprint_differs_per_team() -> None:
    assert fingerprint("acme", ringing()) != fingerprint("globex", ringing())


def test_fingerprint_differs_when_any_value_differs() -> None:
    assert fingerprint("acme", ringing()) != fingerprint("acme", ringing(activenum="13800138001"))
    assert fingerprint("acme", ringing()) != fingerprint("acme", ringing(extra=""))


def test_fingerprint_is_a_hex_digest() -> None:
    value = fingerprint("acme", ringing(note="\ud800 ü"))
    assert len(value) == 40
    assert int(value, 16) >= 0


field_maps = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=8)


@settings(max_examples=100, deadline=None)
@given(fields=field_maps, team=st.text(max_size=8), data=st.data())
def test_fingerprint_is_order_independent(
    fields: dict[str, str], team: str, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(list(fields.items())))
    assert fingerprint(team, dict(shuffled)) == fingerprint(team, fields)


@settings(max_examples=100, deadline=None)
@given(fields=field_maps, team=st.text(max_size=8), other=st.text(max_size=8))
def test_fingerprint_separates_teams(fields: dict[str, str], team: str, other: str) -> None:
    assert (fingerprint(team, fields) == fingerprint(other, fields)) == (team == other)


# --- Property: never an exception --------------------------------------------------------

hostile_text = st.text(
    st.one_of(
        st.characters(),
        st.characters(categories=["Cs"]),
        st.sampled_from("\x00 \t\n"),
    ),
    max_size=80,
)
plausible_values = st.sampled_from(
    [
        "",
        " ",
        "dialout",
        "DIALIN",
        "dialtransfer",
        "CALLER",
        "callee",
        "ringing",
        "answer",
        "hangup",
        "login",
        "LOGOUT",
        "link",
        "17",
        "acme",
        "1767574805",
        "1767574805.5",
        "2026-01-05 09:00:05",
        "2026-01-05T09:00:05+08:00",
        "2026-10-25 02:30:00",
        "0001-01-01 00:00:00",
        "9999-12-31T23:59:59-12:00",
        "999999999999",
        "7" * 200,
    ]
)
names = st.one_of(st.sampled_from([*MAX_LENGTH, "uniqueid"]), hostile_text)
values = st.one_of(plausible_values, hostile_text)


@st.composite
def pushes(draw: st.DrawFn) -> dict[str, str]:
    """Anything at all, or a good push with some fields dropped and some replaced."""
    if draw(st.booleans()):
        return draw(st.dictionaries(names, values, max_size=14))
    fields = draw(st.sampled_from([ringing(), ringing(event="hangup"), login()]))
    for name in draw(st.sets(st.sampled_from(sorted(fields)))):
        del fields[name]
    fields.update(draw(st.dictionaries(names, values, max_size=3)))
    return fields


@settings(max_examples=400, deadline=None)
@given(
    fields=pushes(),
    url_team=st.one_of(st.none(), st.just("acme"), hostile_text),
    zone=st.sampled_from(
        [UTC_ZONE, SHANGHAI, ZoneInfo("Europe/Berlin"), ZoneInfo("Pacific/Kiritimati")]
    ),
)
def test_parse_event_never_raises(
    fields: dict[str, str], url_team: str | None, zone: ZoneInfo
) -> None:
    result = parse_event(fields, url_team=url_team, pbx_timezone=zone)
    if isinstance(result, Rejection):
        assert result.errors
        return
    assert EARLIEST <= result.event_time < LATEST
    assert result.event_time.tzinfo is UTC
    assert result.event == result.event.lower()
    if isinstance(result, CallEvent):
        assert result.source == result.source.upper()
        assert result.calltype == result.calltype.lower()
        assert result.event not in AGENT_EVENTS
    elif result.event in AGENT_EVENTS:
        assert result.agentno is not None


@settings(max_examples=200, deadline=None)
@given(fields=st.dictionaries(st.text(), st.text(), max_size=12), team=st.text())
def test_fingerprint_is_the_hash_stored_fingerprints_were_made_with(
    fields: dict[str, str], team: str
) -> None:
    """An exact re-send is known by comparing with fingerprints already stored: the text
    hashed must stay `json.dumps([team, sorted(fields.items())])`, byte for byte."""
    canonical = json.dumps([team, sorted(fields.items())], ensure_ascii=True)
    made = hashlib.blake2b(canonical.encode("ascii"), digest_size=20).hexdigest()
    assert fingerprint(team, fields) == made


def test_errors_are_named_in_contract_order_then_extra_fields_then_the_body() -> None:
    fields = ringing(sessionid="x" * 200, activenum="1\x00", note="\x00", later="y" * 9000)
    fields |= {"z" * 70: "v"} | {f"pad{n}": "p" * 8000 for n in range(8)}
    result = parse(fields)
    assert isinstance(result, Rejection)
    assert [error.field for error in result.errors] == [
        "sessionid",
        "activenum",
        "note",
        "later",
        "z" * 64 + "...",
        "body",
    ]
