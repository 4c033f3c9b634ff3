"""Which event of which leg sets which CDR field: the seed's table, as data. Pure.

The seed (an outbound call) and the contract (both directions) say, per
(calltype, source, event), what an event contributes. Everything not listed here is
kept in the journal and changes no CDR: `link`, `hold`, a `CALLER` `answer` on an
inbound call (an IVR or queue picking up, not an agent), unknown call types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Rule:
    """What one kind of event contributes to its call's CDR.

    `proves_call`: the call reached the point where a CDR exists (an outbound call
    exists once the customer's leg is dialled; an inbound one from its first event).
    `starts`: its time is the call's `starttime`. `number`: its `activenum` is this
    CDR column. `agent_leg`: its `activenum` is the agent's own phone, the last resort
    for an outbound call's `src`.
    """

    proves_call: bool = False
    starts: bool = False
    number: Literal["src", "dst"] | None = None
    agent_leg: bool = False
    answers: bool = False
    hangs_up: bool = False


DIALOUT = "dialout"
DIALIN = "dialin"
TARGET: Mapping[str, str] = {DIALOUT: "DialOut", DIALIN: "DialIn"}

RULES: Mapping[tuple[str, str, str], Rule] = {
    # Outbound: the agent's phone (CALLER) rings first; the CDR begins when the
    # customer's phone (CALLEE) rings, i.e. when the call is bridged.
    (DIALOUT, "CALLER", "ringing"): Rule(agent_leg=True),
    (DIALOUT, "CALLER", "hangup"): Rule(hangs_up=True),
    (DIALOUT, "CALLEE", "ringing"): Rule(proves_call=True, starts=True, number="dst"),
    (DIALOUT, "CALLEE", "answer"): Rule(proves_call=True, answers=True),
    (DIALOUT, "CALLEE", "hangup"): Rule(proves_call=True, hangs_up=True),
    # Inbound: the customer (CALLER) calls in, then an agent's phone (CALLEE) rings.
    (DIALIN, "CALLER", "ringing"): Rule(proves_call=True, starts=True, number="src"),
    (DIALIN, "CALLER", "answer"): Rule(proves_call=True),
    (DIALIN, "CALLER", "hangup"): Rule(proves_call=True, hangs_up=True),
    (DIALIN, "CALLEE", "ringing"): Rule(proves_call=True, number="dst"),
    (DIALIN, "CALLEE", "answer"): Rule(proves_call=True, answers=True),
    (DIALIN, "CALLEE", "hangup"): Rule(proves_call=True, hangs_up=True),
}

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


def rule_for(calltype: str, source: str, event: str) -> Rule | None:
    """The rule of an event, or None when the event changes no CDR."""
    return RULES.get((calltype, source, event))


def disposition_for_cause(cause: str | None) -> Disposition | None:
    if cause is None:
        return None
    return HANGUP_CAUSES.get(cause.strip().lower())
