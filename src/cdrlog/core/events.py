"""The inbound event: what asterCC pushes, checked field by field. Pure.

`parse_event` turns the string fields of one push (a PHP `$_POST`, or one JSON object)
into a `CallEvent`, an `AgentEvent`, or a `Rejection` that names every bad field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii as _quoted
from zoneinfo import ZoneInfo

from cdrlog.core.times import EventTimeError, parse_event_time

AGENT = "AGENT"
CALLER = "CALLER"
CALLEE = "CALLEE"
CONSULT = "CONSULT"
CONVERSATION = "CONVERSATION"
SOURCES = frozenset({AGENT, CALLER, CALLEE, CONSULT, CONVERSATION})
# The events of one leg or of the whole call (contract section 1, "Answers").
CALL_EVENTS = frozenset(
    {"ringing", "answer", "hangup", "incoming", "join", "onhold", "hold", "resume", "unhold"}
)
# The events of section 6: about an agent, not a call, even when they carry a sessionid.
AGENT_EVENTS = frozenset(
    {
        "login",
        "logoff",
        "logout",
        "paused",
        "nopaused",
        "hangupacw",
        "acwstop",
        "acwring",
        "acwanswer",
        "acwoff",
        "workwayall",
        "workwaydialin",
        "workwaydialout",
    }
)

# Column widths of the journal; longer values are refused rather than truncated. The
# key is the field's name on the wire.
MAX_LENGTH: Mapping[str, int] = {
    "orgidentity": 64,
    "sessionid": 128,
    "calltype": 32,
    "from": 32,
    "source": 16,
    "event": 32,
    "eventTime": 64,
    "activenum": 64,
    "agentno": 64,
    "agentphone": 64,
    "hangupcause": 64,
    "calleridnum": 64,
    "didnumber": 64,
    "uniqueid": 64,
    "AgentGroupId": 64,
    "eventid": 32,
}
# Fields this version does not use are kept as they came, within bounds: every listing
# of the journal would otherwise carry whatever a sender chose to put in them.
MAX_EXTRA_NAME = 64
MAX_EXTRA_VALUE = 8192
MAX_EVENT_CHARACTERS = 65536
# An eventid beyond a signed 64-bit column orders nothing a smaller one would not.
_MAX_EVENTID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One event of one leg of one call. `calltype` and `event` are lower case, `source`
    upper case; for an event name the fold does not use, either may be empty."""

    team: str
    sessionid: str
    calltype: str
    source: str
    event: str
    event_time: datetime
    activenum: str | None = None
    agentno: str | None = None
    agentphone: str | None = None
    hangupcause: str | None = None
    calleridnum: str | None = None
    didnumber: str | None = None
    uniqueid: str | None = None
    agent_group: str | None = None
    eventid: int | None = None


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """An event about an agent rather than a call (section 6), or an event of a name
    this version does not know that names no call (then `agentno` may be absent)."""

    team: str
    agentno: str | None
    event: str
    event_time: datetime
    agentphone: str | None = None
    agent_group: str | None = None
    eventid: int | None = None


Event = CallEvent | AgentEvent


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Rejection:
    errors: tuple[FieldError, ...]

    def as_dict(self) -> dict[str, str]:
        """Field -> what is wrong with it (several problems of one field joined by '; ')."""
        named: dict[str, list[str]] = {}
        for error in self.errors:
            named.setdefault(error.field, []).append(error.message)
        return {field: "; ".join(messages) for field, messages in named.items()}


def parse_event(
    fields: Mapping[str, str], *, url_team: str | None, pbx_timezone: ZoneInfo
) -> Event | Rejection:
    """Check one push against the contract; every problem is reported, not just the first.

    Only what cannot be understood is refused: a source, event name or field this
    version does not use is stored and changes nothing."""
    values, errors = _read_fields(fields)
    team = _team(values["orgidentity"], url_team, errors)
    event = (values["event"] or "").lower()
    errors.extend(_missing(values, event))

    moment: datetime | None = None
    if values["eventTime"] is not None:
        try:
            moment = parse_event_time(values["eventTime"], pbx_timezone)
        except EventTimeError as error:
            errors.append(FieldError("eventTime", str(error)))

    if errors or team is None or moment is None:
        return Rejection(tuple(errors))
    sessionid = values["sessionid"]
    if event in AGENT_EVENTS or sessionid is None:
        return AgentEvent(
            team=team,
            agentno=values["agentno"],
            event=event,
            event_time=moment,
            agentphone=values["agentphone"],
            agent_group=values["AgentGroupId"],
            eventid=_eventid(values["eventid"]),
        )
    return CallEvent(
        team=team,
        sessionid=sessionid,
        calltype=(values["calltype"] or values["from"] or "").lower(),
        source=(values["source"] or "").upper(),
        event=event,
        event_time=moment,
        activenum=values["activenum"],
        agentno=values["agentno"],
        agentphone=values["agentphone"],
        hangupcause=values["hangupcause"],
        calleridnum=values["calleridnum"],
        didnumber=values["didnumber"],
        uniqueid=values["uniqueid"],
        agent_group=values["AgentGroupId"],
        eventid=_eventid(values["eventid"]),
    )


_ABSENT: dict[str, str | None] = dict.fromkeys(MAX_LENGTH)


def _read_fields(fields: Mapping[str, str]) -> tuple[dict[str, str | None], list[FieldError]]:
    """The fields this version uses, cleaned (None: absent), and what is wrong with any
    field: in one pass over the push, as every push pays for it."""
    values = _ABSENT.copy()
    extras: list[FieldError] = []
    for name, value in fields.items():
        if name in values:
            values[name] = value.strip() or None  # PHP sees an empty field as absent
        elif (
            len(name) > MAX_EXTRA_NAME
            or len(value) > MAX_EXTRA_VALUE
            or "\x00" in name
            or "\x00" in value
        ):
            extras.extend(_check_extra(name, value))
    errors: list[FieldError] = []
    for name, text in values.items():
        if text is not None and (
            len(text) > MAX_LENGTH[name] or "\x00" in text or not text.isascii()
        ):
            errors.extend(_check_text(name, text))
    errors += extras
    if sum(map(len, fields)) + sum(map(len, fields.values())) > MAX_EVENT_CHARACTERS:
        message = f"the event's fields hold more than {MAX_EVENT_CHARACTERS} characters"
        errors.append(FieldError("body", message))
    return values, errors


def _check_extra(name: str, value: str) -> list[FieldError]:
    """What is wrong with a field this version does not use."""
    errors: list[FieldError] = []
    if "\x00" in name or "\x00" in value:
        errors.append(FieldError(name[:MAX_EXTRA_NAME], "contains a NUL character"))
    if len(name) > MAX_EXTRA_NAME:
        shown = name[:MAX_EXTRA_NAME] + "..."
        errors.append(FieldError(shown, f"field name is longer than {MAX_EXTRA_NAME}"))
    elif len(value) > MAX_EXTRA_VALUE:
        errors.append(FieldError(name, f"is longer than {MAX_EXTRA_VALUE} characters"))
    return errors


_ALWAYS_REQUIRED = ("event", "eventTime")
# What each event name cannot be understood without, beyond `_ALWAYS_REQUIRED`.
_REQUIRED = (
    dict.fromkeys(AGENT_EVENTS, (*_ALWAYS_REQUIRED, "agentno"))
    | dict.fromkeys(CALL_EVENTS, (*_ALWAYS_REQUIRED, "sessionid", "source"))
    | {"ringing": (*_ALWAYS_REQUIRED, "sessionid", "source", "activenum")}
)


def _missing(values: Mapping[str, str | None], event: str) -> list[FieldError]:
    """What an event of this name cannot be understood without."""
    required = _REQUIRED.get(event, _ALWAYS_REQUIRED)
    errors = [FieldError(name, "is required") for name in required if values[name] is None]
    if event in CALL_EVENTS and values["calltype"] is None and values["from"] is None:
        errors.append(FieldError("calltype", "is required (or `from`)"))
    return errors


def _eventid(text: str | None) -> int | None:
    """asterCC's increasing event number; anything else orders nothing."""
    if text is None or not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if number <= _MAX_EVENTID else None


def fingerprint(team: str, fields: Mapping[str, str]) -> str:
    """Identity of an exact re-send: the same team and the same fields, in any order.

    The text hashed is `json.dumps([team, sorted(fields.items())])`, as stored
    fingerprints were made; written out here, string by string, as that costs a push
    half of what the encoder's setup does."""
    pairs = ", ".join(
        [f"[{_quoted(name)}, {_quoted(value)}]" for name, value in sorted(fields.items())]
    )
    canonical = f"[{_quoted(team)}, [{pairs}]]"
    return hashlib.blake2b(canonical.encode("ascii"), digest_size=20).hexdigest()


def _check_text(name: str, value: str) -> list[FieldError]:
    limit = MAX_LENGTH[name]
    if len(value) > limit:
        return [FieldError(name, f"is longer than {limit} characters")]
    if "\x00" in value:
        return [FieldError(name, "contains a NUL character")]
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return [FieldError(name, "is not valid Unicode text")]
    return []


def _team(field_team: str | None, url_team: str | None, errors: list[FieldError]) -> str | None:
    if url_team is not None:
        problems = _check_text("orgidentity", url_team)
        if problems or not url_team or url_team != url_team.strip():
            errors.append(
                FieldError("team", "the URL's team is empty, too long, padded or invalid")
            )
            return None
        if field_team is not None and field_team != url_team:
            errors.append(
                FieldError("orgidentity", f"is {field_team!r} but the URL is for team {url_team!r}")
            )
            return None
        return url_team
    if field_team is None:
        errors.append(FieldError("orgidentity", "is required when the URL names no team"))
    return field_team
