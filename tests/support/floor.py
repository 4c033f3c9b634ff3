"""A call-center floor for the browser tests of the wallboard and the supervisor view:
team1's calls of today and its agents, their times relative to now."""

from __future__ import annotations

from datetime import datetime, timedelta

Fields = dict[str, str]


def floor(now: datetime) -> list[Fields]:
    """team1 today: queue 100 answers one call in 8 s and one in 45 s, loses one after
    30 s, and has a caller waiting; queue 200 answers one in 5 s. Four agents."""

    def at(seconds: float) -> str:
        return (now - timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")

    def inbound(
        sessionid: str, queue: str, ago: float, waited: float, answered: bool
    ) -> list[Fields]:
        call = {
            "orgidentity": "team1",
            "sessionid": sessionid,
            "calltype": "dialin",
            "AgentGroupId": queue,
        }
        caller = call | {"source": "CALLER", "activenum": "139" + sessionid[-4:]}
        events = [caller | {"event": "incoming", "eventTime": at(ago)}]
        if answered:
            agent = call | {"source": "AGENT", "agentno": "1001", "activenum": "8001"}
            events += [
                agent | {"event": "ringing", "eventTime": at(ago - 1)},
                agent | {"event": "answer", "eventTime": at(ago - waited)},
                agent | {"event": "hangup", "eventTime": at(ago - waited - 60)},
            ]
        if answered or waited:
            events.append(
                caller
                | {"event": "hangup", "eventTime": at(ago - waited - (60 if answered else 0))}
            )
        return events

    def agent(agentno: str, event: str, queue: str) -> Fields:
        return {
            "orgidentity": "team1",
            "agentno": agentno,
            "agentphone": "8" + agentno[1:],
            "AgentGroupId": queue,
            "event": event,
            "eventTime": at(3600),
        }

    return [
        *inbound("call-0001", "100", 900, 8, True),
        *inbound("call-0002", "100", 800, 45, True),
        *inbound("call-0003", "100", 700, 30, False),
        *inbound("call-0004", "200", 600, 5, True),
        *inbound("call-0005", "100", 40, 0, False),  # still waiting
        agent("1001", "login", "100"),
        agent("1002", "login", "100"),
        agent("1003", "paused", "200"),
        agent("1004", "login", "200"),
    ]


def missed_and_called_back(now: datetime) -> list[Fields]:
    """Two abandoned calls of queue 100 this morning: the team called the first caller
    back and reached them; the second is still unresolved."""

    def at(seconds: float) -> str:
        return (now - timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")

    def call(sessionid: str, calltype: str, source: str, **extra: str) -> Fields:
        return {
            "orgidentity": "team1",
            "sessionid": sessionid,
            "calltype": calltype,
            "source": source,
            **extra,
        }

    first = call("miss-1", "dialin", "CALLER", activenum="13900000001", AgentGroupId="100")
    second = call("miss-2", "dialin", "CALLER", activenum="13900000002", AgentGroupId="100")
    back = call("back-1", "dialout", "CALLEE", agentno="1002", agentphone="8002")
    return [
        first | {"event": "incoming", "eventTime": at(500)},
        first | {"event": "hangup", "eventTime": at(470)},
        second | {"event": "incoming", "eventTime": at(400)},
        second | {"event": "hangup", "eventTime": at(380)},
        back | {"event": "ringing", "eventTime": at(300), "activenum": "13900000001"},
        back | {"event": "answer", "eventTime": at(290)},
        back | {"event": "hangup", "eventTime": at(200), "hangupcause": "16"},
    ]
