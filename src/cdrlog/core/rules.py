"""Which event of which leg sets which CDR field: the contract's tables, as data. Pure.

A source names a leg differently in the seed and in asterCC's manual (the agent's phone
is `CALLER` outbound and `CALLEE` inbound in the seed, `AGENT` in the manual), so a
source first gets its `Role` in the call, and the rules speak of roles. Everything not
listed here is kept in the journal and changes no CDR: `link`, a `CALLER` `answer` on an
inbound call (an IVR or queue picking up, not an agent), unknown sources and call types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal


class Disposition(StrEnum):
    NOANSWER = "NOANSWER"
    ANSWER = "ANSWER"
    BUSY = "BUSY"
    FAILED = "FAILED"
    CONGESTION = "CONGESTION"


class Status(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    TIMEOUT = "timeout"


class Role(StrEnum):
    """What a leg is to the call, whichever name the platform gives its source."""

    AGENT = "agent"  # the agent's own phone
    CUSTOMER = "customer"  # the party outside the call center
    CONSULT = "consult"  # a third party the agent consulted
    CALL = "call"  # the conversation as a whole


class Ends(StrEnum):
    """Which hangups of a role can end the call (contract section 4, "When a call ends")."""

    ALWAYS = "always"
    AGENT_LEG = "agent leg"  # any agent leg, until a consulted party joined
    ANSWERING_LEG = "answering leg"  # only the leg that answered, until a consult joined


@dataclass(frozen=True, slots=True)
class Rule:
    """What one kind of event contributes to its call's CDR.

    `proves_call`: the call reached the point where a CDR exists (an outbound call
    exists once the customer's leg is dialled; an inbound one from its first event).
    `starts`: its time is the call's `starttime`. `number`: its `activenum` is this
    CDR column. `rings_agent`: an agent's phone rang, its `activenum` is that phone.
    `answers`: the call is answered (an agent or the customer, not an IVR).
    """

    proves_call: bool = False
    starts: bool = False
    number: Literal["src", "dst"] | None = None
    rings_agent: bool = False
    answers: bool = False
    ends: Ends | None = None
    joins: bool = False


DIALOUT = "dialout"
DIALIN = "dialin"
TARGET: Mapping[str, str] = {DIALOUT: "DialOut", DIALIN: "DialIn"}

# The seed numbers legs by who called: on an outbound call the agent's phone is the
# CALLER, on an inbound one the CALLEE. asterCC's manual names the agent's leg AGENT.
ROLES: Mapping[tuple[str, str], Role] = {
    (DIALOUT, "AGENT"): Role.AGENT,
    (DIALOUT, "CALLER"): Role.AGENT,
    (DIALOUT, "CALLEE"): Role.CUSTOMER,
    (DIALOUT, "CONSULT"): Role.CONSULT,
    (DIALOUT, "CONVERSATION"): Role.CALL,
    (DIALIN, "AGENT"): Role.AGENT,
    (DIALIN, "CALLEE"): Role.AGENT,
    (DIALIN, "CALLER"): Role.CUSTOMER,
    (DIALIN, "CONSULT"): Role.CONSULT,
    (DIALIN, "CONVERSATION"): Role.CALL,
}

HOLDS = frozenset({"onhold", "hold"})
RESUMES = frozenset({"resume", "unhold"})
_LEG_EVENTS = ("ringing", "answer", "hangup", "incoming", "join", *HOLDS, *RESUMES)

_OUTBOUND: Mapping[tuple[Role, str], Rule] = {
    # The agent's phone rings first; the CDR begins when the customer's phone rings,
    # i.e. when the call is bridged. The agent picking up answers nothing yet.
    (Role.AGENT, "ringing"): Rule(rings_agent=True),
    (Role.AGENT, "hangup"): Rule(ends=Ends.AGENT_LEG),
    (Role.CUSTOMER, "ringing"): Rule(proves_call=True, starts=True, number="dst"),
    (Role.CUSTOMER, "answer"): Rule(proves_call=True, answers=True),
    (Role.CUSTOMER, "hangup"): Rule(proves_call=True, ends=Ends.ALWAYS),
    (Role.CALL, "hangup"): Rule(ends=Ends.ALWAYS),
    (Role.CONSULT, "join"): Rule(joins=True),
}
_INBOUND: Mapping[tuple[Role, str], Rule] = {
    # The customer calls in; the platform (IVR, queue) may pick up: that is no answer.
    (Role.CUSTOMER, "incoming"): Rule(proves_call=True, starts=True, number="src"),
    (Role.CUSTOMER, "ringing"): Rule(proves_call=True, starts=True, number="src"),
    (Role.CUSTOMER, "hangup"): Rule(proves_call=True, ends=Ends.ALWAYS),
    # The queue rings agents, maybe one after another; the one who answers handles it.
    (Role.AGENT, "ringing"): Rule(proves_call=True, rings_agent=True),
    (Role.AGENT, "answer"): Rule(proves_call=True, answers=True),
    (Role.AGENT, "hangup"): Rule(proves_call=True, ends=Ends.ANSWERING_LEG),
    (Role.CALL, "hangup"): Rule(proves_call=True, ends=Ends.ALWAYS),
    (Role.CONSULT, "join"): Rule(proves_call=True, joins=True),
}


def _table() -> dict[tuple[str, Role, str], Rule]:
    """Every (call type, role, event) the fold reads. An inbound call exists from its
    first event, so there every leg event proves it; other events only say what the
    two tables above say."""
    table: dict[tuple[str, Role, str], Rule] = {}
    for calltype, specific in ((DIALOUT, _OUTBOUND), (DIALIN, _INBOUND)):
        for role in Role:
            for event in _LEG_EVENTS:
                rule = specific.get((role, event), Rule())
                if calltype == DIALIN and not rule.proves_call:
                    rule = replace(rule, proves_call=True)
                table[(calltype, role, event)] = rule
    return table


RULES: Mapping[tuple[str, Role, str], Rule] = _table()

CALL_TYPES = frozenset(TARGET)
CDR_EVENTS = frozenset(event for _, _, event in RULES)

# Q.850 causes and asterCC's words for why an unanswered call failed; any other cause
# (16 normal clearing, 19 no answer, ...) leaves NOANSWER.
HANGUP_CAUSES: Mapping[str, Disposition] = {
    "17": Disposition.BUSY,
    "busy": Disposition.BUSY,
    "34": Disposition.CONGESTION,
    "38": Disposition.CONGESTION,
    "congestion": Disposition.CONGESTION,
    "failed": Disposition.FAILED,
}


def role_of(calltype: str, source: str) -> Role | None:
    return ROLES.get((calltype, source))


def rule_for(calltype: str, source: str, event: str) -> Rule | None:
    """The rule of an event, or None when the event changes no CDR."""
    role = ROLES.get((calltype, source))
    return None if role is None else RULES.get((calltype, role, event))


def disposition_for_cause(cause: str | None) -> Disposition | None:
    if cause is None:
        return None
    return HANGUP_CAUSES.get(cause.strip().lower())
