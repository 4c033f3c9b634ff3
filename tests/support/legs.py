"""Events of calls as the ingestor takes them: one leg's fields, whole outbound calls."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cdrlog.core.accepted import Accepted
from cdrlog.core.events import Rejection, fingerprint, parse_event

TEAM = "team1"
T0 = datetime(2024, 3, 5, 9, 0, 0, tzinfo=UTC)
Fields = dict[str, str]


def accepted(fields: Mapping[str, str], team: str = TEAM) -> Accepted:
    event = parse_event(fields, url_team=team, pbx_timezone=ZoneInfo("UTC"))
    assert not isinstance(event, Rejection), event
    return Accepted(event=event, fields=dict(fields), fingerprint=fingerprint(team, fields))


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


def leg(
    sessionid: str, source: str, event: str, seconds: float, calltype: str = "dialout", **extra: str
) -> Fields:
    return {
        "sessionid": sessionid,
        "calltype": calltype,
        "source": source,
        "event": event,
        "eventTime": at(seconds),
        **extra,
    }


def outbound(sessionid: str) -> list[Fields]:
    """Agent 1001 (phone 8001) calls 13800138000, who answers; the customer hangs up first."""
    agent_fields = {"agentno": "1001", "agentphone": "8001"}
    return [
        leg(sessionid, "CALLER", "ringing", 0, activenum="8001", **agent_fields),
        leg(sessionid, "CALLEE", "ringing", 5, activenum="13800138000", **agent_fields),
        leg(sessionid, "CALLEE", "answer", 12, **agent_fields),
        leg(sessionid, "CALLEE", "hangup", 100, hangupcause="16", **agent_fields),
        leg(sessionid, "CALLER", "hangup", 101, **agent_fields),
    ]
