"""Calls of named teams, pushed with tokens: the factories the isolation tests share."""

from __future__ import annotations

from datetime import datetime, timedelta

ALPHA = "alpha"


Fields = dict[str, str]


def call_events(team: str, sessionid: str, agentno: str, start: datetime) -> list[Fields]:
    """An answered outbound call: the customer's leg rings, answers, hangs up."""
    common = {
        "orgidentity": team,
        "sessionid": sessionid,
        "calltype": "dialout",
        "source": "CALLEE",
        "agentno": agentno,
        "agentphone": "8" + agentno[1:],
    }
    at = [(start + timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S") for s in (0, 7, 95)]
    return [
        common | {"event": "ringing", "eventTime": at[0], "activenum": "13800138000"},
        common | {"event": "answer", "eventTime": at[1]},
        common | {"event": "hangup", "eventTime": at[2], "hangupcause": "16"},
    ]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
