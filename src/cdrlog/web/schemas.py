"""What the API returns, field by field (these become the OpenAPI document)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from cdrlog.core.excerpts import BODY_SHOWN, FIELDS_SHOWN, LETTER_SHOWN, PAGE_BYTES, TIMELINE_EVENTS
from cdrlog.core.pushauth import PushMode, TeamPushAuth
from cdrlog.core.report import GroupBy, StatsRow
from cdrlog.store.agents import AgentStatus

TIME = "ISO-8601 with the offset of the chosen zone (`tz`)"


class CdrOut(BaseModel):
    """One call's record: the `cdr` table's columns."""

    # Written out for the descriptions; tests/store/test_columns.py keeps these the
    # table's columns, in its order (the exports' `CDR_COLUMNS`), null where it may be.
    id: int
    orgidentity: str = Field(description="team")
    diallogid: str = Field(description="asterCC's sessionid of the call")
    calltype: str = Field(description="dialout or dialin")
    target: str = Field(description="DialOut or DialIn")
    src: str | None = Field(description="outbound: agent's phone; inbound: customer's number")
    dst: str | None = Field(description="outbound: customer's number; inbound: agent's phone")
    agentno: str | None = Field(description="agent number")
    starttime: str = Field(description=f"when the call started ringing; {TIME}")
    answertime: str | None = Field(description=f"when answered, null if never; {TIME}")
    endtime: str | None = Field(description=f"first hangup, null while in progress; {TIME}")
    duration: int | None = Field(description="seconds, endtime - starttime; null while open")
    billsec: int | None = Field(
        description="seconds, endtime - answertime; 0 if unanswered; null while open"
    )
    disposition: str = Field(description="ANSWER, NOANSWER, BUSY, FAILED or CONGESTION")
    status: str = Field(description="open, closed, or timeout (no hangup ever came)")
    did: str | None = Field(description="the DID the customer dialled (`didnumber`)")
    agent_group: str | None = Field(
        description="the AgentGroupId (queue) of the handling agent's leg, else of any event"
    )
    hold_seconds: int | None = Field(
        description="seconds on hold between answer and end; 0 if never held or unanswered; "
        "null while open"
    )
    transferred_to: str | None = Field(
        description="number of the consulted party who joined first (a transfer or "
        "conference); null if nobody joined"
    )
    created_at: str = Field(description=f"when cdrlog wrote the row; {TIME}")
    updated_at: str = Field(description=f"when cdrlog last changed the row; {TIME}")
    version: int = Field(
        description="1 when first written, one more with every change (hooks send it too)"
    )


class CdrPage(BaseModel):
    total: int = Field(description="CDRs matching, as of the first page")
    count: int = Field(description="CDRs on this page")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )
    cdrs: list[CdrOut]


class EventOut(BaseModel):
    """One journaled event: what was parsed from it, and `fields` exactly as received."""

    id: int
    orgidentity: str
    sessionid: str | None
    calltype: str | None
    source: str | None = Field(
        description="the leg: AGENT (the agent's own), CALLER (who called), CALLEE (who was "
        "called), CONSULT (a consulted third party) or CONVERSATION (the whole call)"
    )
    event: str
    event_time: str = Field(description=f"eventTime; {TIME}")
    activenum: str | None
    agentno: str | None
    agentphone: str | None
    hangupcause: str | None
    calleridnum: str | None
    didnumber: str | None
    uniqueid: str | None = Field(description="the leg's channel id")
    agent_group: str | None = Field(description="AgentGroupId")
    eventid: int | None = Field(description="the sender's event counter, when all digits")
    fields: dict[str, Any] = Field(
        description="every field as pushed, extras included; only what fits in "
        f"{FIELDS_SHOWN >> 10} KiB of stored text (see `fields_truncated`)"
    )
    fields_truncated: bool = Field(
        False,
        description="`fields` holds only the members before the cut (the last one possibly "
        "cut short itself); the columns above are always whole",
    )
    received_at: str = Field(description=f"when cdrlog stored it; {TIME}")


class CdrDetail(CdrOut):
    events: list[EventOut] = Field(description="the call's events in event time order")
    events_truncated: bool = Field(
        False,
        description=f"only the first events are here (at most {TIMELINE_EVENTS:,}, and about "
        f"{PAGE_BYTES >> 20} MiB); `GET /api/v1/events?team=&sessionid=` pages through all",
    )


class EventPage(BaseModel):
    events: list[EventOut]
    next_before: int | None = Field(
        description="pass as `before` for the next page (which may be empty); null at the end"
    )


class StatsOut(BaseModel):
    group: str = Field(
        description='agent number, team, queue ("" for calls without one), local day '
        "(YYYY-MM-DD), local hour, or local weekday and hour (`mon 09`)"
    )
    team: str | None = Field(description="the team, when grouping by agent, team or queue")
    calls: int
    answered: int
    unanswered: int = Field(description="NOANSWER")
    busy: int
    failed: int = Field(description="FAILED or CONGESTION")
    asr: float = Field(description="answer-seizure ratio: answered / calls, 0..1")
    acd: float | None = Field(description="average call duration: mean billsec of answered calls")
    talk_time: int = Field(description="total billsec, seconds")
    avg_ring_time: float | None = Field(
        description="mean seconds from start to answer, over answered calls"
    )
    offered: int = Field(
        description="inbound calls (`dialin`), less those still open and unanswered "
        "(waiting). A call's wait: answertime - starttime, or endtime - starttime unanswered"
    )
    short_abandoned: int = Field(
        description="offered, unanswered, waited less than `short_abandon_seconds`"
    )
    abandoned: int = Field(description="offered and unanswered, not short abandons")
    answered_within: int = Field(
        description="offered, answered (has an answertime), waited at most `service_level_seconds`"
    )
    service_level: float | None = Field(
        description="answered_within / (offered - short_abandoned), 0..1; null if 0 / 0"
    )
    abandon_rate: float | None = Field(
        description="abandoned / (offered - short_abandoned), 0..1; null if 0 / 0"
    )
    asa: float | None = Field(description="average speed of answer: mean wait, answered")
    max_wait: int | None = Field(description="longest wait of an offered call, seconds")
    avg_abandon_wait: float | None = Field(description="mean wait of abandoned calls")
    hold_seconds: int = Field(
        description="total hold time, seconds, of every call in both directions"
    )
    transfers: int = Field(description="calls, in both directions, transferred by an agent")

    @classmethod
    def of(cls, row: StatsRow) -> StatsOut:
        return cls(**asdict(row))


class Stats(BaseModel):
    group_by: GroupBy
    tz: str
    service_level_seconds: int
    short_abandon_seconds: int
    rows: list[StatsOut]


AgentState = Literal["available", "on_call", "paused", "after_call_work", "logged_out"]


class AgentOut(BaseModel):
    """One agent of a team and the state it is in now."""

    orgidentity: str = Field(description="team")
    agentno: str = Field(description="agent number")
    phone: str | None = Field(description="the phone the registry binds the agent to")
    agent_group: str | None = Field(description="the agent's AgentGroupId (queue)")
    state: AgentState = Field(
        description="on_call while a call it answered goes on; otherwise after its latest "
        "login/logoff/paused/nopaused/hangupacw/acwstop (after_call_work: wrap-up)"
    )
    state_since: str | None = Field(
        description=f"when the agent entered `state`; null if it never reported one; {TIME}"
    )

    @classmethod
    def of(cls, status: AgentStatus, zone: ZoneInfo) -> AgentOut:
        since = status.state_since
        # Validated, not built: a state outside the documented five must fail loudly.
        return cls.model_validate(
            {
                "orgidentity": status.team,
                "agentno": status.agentno,
                "phone": status.phone,
                "agent_group": status.agent_group,
                "state": status.state,
                "state_since": None if since is None else since.astimezone(zone).isoformat(),
            }
        )


class AgentList(BaseModel):
    agents: list[AgentOut] = Field(description="sorted by team, then agent number")


class DeadLetterOut(BaseModel):
    """A refused body, kept for an operator."""

    id: int
    received_at: str = Field(description=TIME)
    orgidentity: str | None = Field(description="team of the URL it was pushed to")
    path: str
    content_type: str | None
    remote_addr: str | None
    body: str = Field(
        description="the body as text (invalid UTF-8 replaced): in a listing its first "
        f"{BODY_SHOWN >> 10} KiB, alone its first {LETTER_SHOWN >> 20} MiB (`body_truncated`)"
    )
    truncated: bool = Field(description="only the start of an oversized body was kept")
    body_truncated: bool = Field(
        False,
        description="`body` is only the start of what was kept (see `truncated` for what "
        "was refused); `GET /api/v1/rejected/{id}` shows more of it",
    )
    reason: dict[str, Any] = Field(description="field -> what was wrong")
    reason_truncated: bool = Field(
        False, description="`reason` holds only the fields before the cut"
    )
    resolved_at: str | None = Field(description=f"when a retry stored it; {TIME}")
    resolution: str | None


class DeadLetterPage(BaseModel):
    rejected: list[DeadLetterOut]
    next_before: int | None = Field(
        description="pass as `before` for the next page (which may be empty); null at the end"
    )


class RetryOut(BaseModel):
    id: int
    status: str = Field(description="resolved, or rejected (still refused)")
    stored: int
    duplicate: int
    errors: dict[str, Any] = Field(description="why it is still refused")


class PushEvent(BaseModel):
    """One call event as asterCC pushes it: every value a string. Extra fields are kept."""

    model_config = {"extra": "allow"}

    sessionid: str | None = Field(None, description="the call; agent events have none")
    calltype: str | None = Field(
        None, description="dialout or dialin (else `from`; others stored, no CDR)"
    )
    source: str | None = Field(
        None, description="AGENT, CALLER, CALLEE, CONSULT or CONVERSATION (others stored, no CDR)"
    )
    event: str = Field(
        description="call: ringing, answer, hangup, incoming, join, onhold, resume; agent: "
        "login, logoff, paused, nopaused, hangupacw, acwstop, ...; others stored"
    )
    eventTime: str = Field(
        description="'YYYY-MM-DD HH:MM:SS' (PBX zone), ISO-8601 with offset, or epoch seconds"
    )
    eventid: str | None = Field(None, description="increases per event; orders equal times")
    activenum: str | None = Field(None, description="this leg's number; required for ringing")
    agentno: str | None = Field(None, description="the agent's number")
    agentphone: str | None = Field(None, description="the agent's phone (extension)")
    AgentGroupId: str | None = Field(None, description="the agent's group (queue)")
    didnumber: str | None = Field(None, description="the DID the customer dialled")
    calleridnum: str | None = Field(None, description="the caller's number")
    uniqueid: str | None = Field(None, description="this leg's channel id")
    orgidentity: str | None = Field(None, description="the team; must match the URL's")
    hangupcause: str | None = Field(None, description="Q.850 code (17) or word (busy, ...)")


def push_body() -> dict[str, Any]:
    """The OpenAPI request body of the push endpoints."""
    event = PushEvent.model_json_schema()
    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": event},
            "multipart/form-data": {"schema": event},
            "application/json": {"schema": {"oneOf": [event, {"type": "array", "items": event}]}},
        },
    }


class TeamPushAuthOut(BaseModel):
    """Where one team stands in the token rollout."""

    team: str
    own_mode: PushMode | None = Field(description="the team's own mode; null: the default's")
    mode: PushMode = Field(
        description="open: pushes without a token are accepted; observe: accepted and "
        "counted; required: refused with 401"
    )
    push_tokens: int = Field(description="active push tokens of the team")
    tokenless_pushes: int = Field(description="events accepted without a token, ever")
    last_tokenless_at: str | None = Field(
        description=f"when the latest of them arrived; null if none did; {TIME}"
    )

    @classmethod
    def of(cls, team: TeamPushAuth, zone: ZoneInfo) -> TeamPushAuthOut:
        last = team.last_tokenless_at
        return cls(
            team=team.team,
            own_mode=team.own_mode,
            mode=team.mode,
            push_tokens=team.push_tokens,
            tokenless_pushes=team.tokenless_pushes,
            last_tokenless_at=None if last is None else last.astimezone(zone).isoformat(),
        )


class PushAuthOut(BaseModel):
    tokens: bool = Field(
        description="whether any token exists: without one the service is open (on loopback "
        "only) and modes do not apply yet"
    )
    default_mode: PushMode = Field(description="the mode of every team without its own")
    teams: list[TeamPushAuthOut]


class MissedOut(BaseModel):
    """An abandoned inbound call and what followed it (see `GET /api/v1/missed`)."""

    id: int = Field(description="the abandoned call's CDR id")
    orgidentity: str = Field(description="team")
    diallogid: str = Field(description="asterCC's sessionid of the call")
    src: str | None = Field(description="the caller's number; null if withheld")
    did: str | None = Field(description="the DID the customer dialled")
    agent_group: str | None = Field(description="the AgentGroupId (queue)")
    agentno: str | None = Field(description="the first agent whose phone rang, if any")
    starttime: str = Field(description=f"when the call came in; {TIME}")
    endtime: str | None = Field(description=f"when the caller gave up; {TIME}")
    wait_seconds: int = Field(description="seconds from starttime to endtime")
    callbacks: int = Field(description="outbound calls of the team to `src` in the window")
    called_back_at: str | None = Field(
        description=f"starttime of the first of those callbacks; null if none; {TIME}"
    )
    callback_answered: bool = Field(description="whether any callback in the window was answered")
    callback_agent: str | None = Field(
        description="the agent of the first answered callback, else of the first callback"
    )
    got_through_at: str | None = Field(
        description="starttime of the first later answered inbound call from `src` in the "
        f"window; null if none; {TIME}"
    )
    resolved: bool = Field(
        description="the customer was reached: a callback answered, or got through"
    )


class MissedPage(BaseModel):
    count: int = Field(description="missed calls on this page")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )
    missed: list[MissedOut] = Field(description="newest first")


class AgentTimeOut(BaseModel):
    """One agent's time and calls over the report's range (see `GET /api/v1/agents/report`)."""

    orgidentity: str = Field(description="team")
    agentno: str = Field(description="agent number")
    agent_group: str | None = Field(description="the agent's AgentGroupId (queue) now")
    logged_in_seconds: int = Field(
        description="time logged in within the range (paused and wrap-up included)"
    )
    paused_seconds: int = Field(description="time paused within the range")
    after_call_work_seconds: int = Field(description="time in wrap-up within the range")
    talk_seconds: int = Field(
        description="billsec summed over the calls naming the agent that started in the range"
    )
    answered_calls: int = Field(description="those of the calls that were answered")
    occupancy: float | None = Field(
        description="(talk + after_call_work) / (logged_in - paused); null when that is 0"
    )
    aht: float | None = Field(
        description="average handle time, seconds: (talk + after_call_work) / answered_calls; "
        "null when no call was answered"
    )


class AgentReportOut(BaseModel):
    start_from: str = Field(description=f"the range's start (included); {TIME}")
    start_to: str = Field(description=f"the range's end (excluded); {TIME}")
    agents: list[AgentTimeOut] = Field(description="sorted by team, then agent number")
