"""The call flows of asterCC's interface manual (contract section 6), played on a `Call`.
Pure.

Outbound: the agent's phone (AGENT) rings and answers, then the customer's (CALLEE)
rings. Inbound: the customer (CALLER) comes in, the queue rings agents' phones one after
another. An answered call is talk, now and then a hold or a consult (which may join: a
transfer), then hangups and the platform's CONVERSATION hangup.
"""

from __future__ import annotations

from cdrlog.sim.traffic_call import SUPERVISORS, Call, Leg
from cdrlog.sim.traffic_model import TELLING_CAUSES, Agent, customer_number

# A queue that rang an agent who did not pick up: no answer, or the agent declined.
_MISSED_CAUSES = ("19", "19", None, "17")


def play_dialout(call: Call, agent: Agent) -> None:
    """asterCC rings the agent's phone, the agent answers, then it dials the customer."""
    mine = call.leg("AGENT", agent.phone, agent)
    call.emit(mine, "ringing")
    call.emit(mine, "answer", after=(1, 4), without=_maybe(call, "agentno", 0.1))
    customer = call.leg("CALLEE", call.customer)
    call.start = call.emit(customer, "ringing", after=(1, 2))
    if call.outcome == "answered":
        call.answer = call.emit(customer, "answer", after=(3, 25))
        converse(call, mine, customer)
        return
    if call.outcome == "noanswer":
        # Either the customer's phone gives up ringing or the agent stops waiting.
        first, second = call.rng.sample((customer, mine), 2)
        call.emit(first, "hangup", after=(15, 45), cause=call.plain_cause())
    else:
        # Busy, congestion, failure: the customer's leg says why, and says it first.
        second = mine
        cause = call.rng.choice(TELLING_CAUSES[call.outcome])
        call.emit(customer, "hangup", after=(0, 6), cause=cause)
    call.emit(second, "hangup", after=(0, 1), cause=call.plain_cause())
    call.emit(None, "hangup", after=(0, 1))


def play_dialin(call: Call, queue: list[Agent]) -> None:
    """The customer calls in (IVR, queue); the queue rings agents one after another
    until one answers or the customer gives up."""
    caller = call.leg("CALLER", call.customer)
    # Some pushes leave activenum off `incoming`: then calleridnum names the customer.
    call.start = call.emit(caller, "incoming", without=_maybe(call, "activenum", 0.3))
    if call.rng.random() < 0.5:
        # The IVR picking up is the platform answering, not an agent: still unanswered.
        call.emit(caller, "answer", after=(0, 2))
    call.wait(3, 30)
    for turn, agent in enumerate(queue):
        rung = call.leg("AGENT", agent.phone, agent)
        call.emit(rung, "ringing", after=(0, 2) if turn else (0, 0))
        if turn == len(queue) - 1 and call.outcome == "answered":
            call.answering = rung
            call.answer = call.emit(
                rung, "answer", after=(2, 15), without=_maybe(call, "agentno", 0.1)
            )
            converse(call, rung, caller)
            return
        if turn == len(queue) - 1 and call.rng.random() < 0.5:
            # The customer gives up while the last phone still rings.
            call.emit(caller, "hangup", after=(3, 15), cause=call.plain_cause())
            call.emit(rung, "hangup", after=(0, 1), cause=call.plain_cause())
            call.emit(None, "hangup", after=(0, 1))
            return
        call.emit(rung, "hangup", after=(10, 20), cause=call.rng.choice(_MISSED_CAUSES))
    call.emit(caller, "hangup", after=(2, 20), cause=call.plain_cause())
    call.emit(None, "hangup", after=(0, 1))


def _maybe(call: Call, name: str, chance: float) -> str | None:
    """`name`, with probability `chance`: a field some pushes leave out, because another
    event says the same (an answer's agentno is on its leg's ringing; an `incoming`
    without activenum still has calleridnum)."""
    return name if call.rng.random() < chance else None


def converse(call: Call, agent: Leg, customer: Leg) -> None:
    """Talk after the answer, with holds and a consult now and then, then the end."""
    rng = call.rng
    actions = ["hold"] * rng.choices((0, 1, 2), weights=(70, 22, 8))[0]
    actions += ["consult"] if rng.random() < 0.15 else []
    rng.shuffle(actions)
    for action in actions:
        call.talk(mean=40)
        if action == "hold":
            _hold(call, agent, rng.randint(5, 90))
        elif _consult(call, agent, customer):
            return
    call.talk(mean=60)
    if rng.random() < 0.1:
        # A hold left running: someone hangs up while the customer listens to music.
        call.emit(agent, "onhold")
        call.holds.append((call.now, None))
        call.wait(3, 60)
    _hang_up_both(call, agent, customer)


def _hold(call: Call, agent: Leg, seconds: int) -> None:
    on = call.emit(agent, "onhold")
    off = call.emit(agent, "resume", after=(seconds, seconds))
    call.holds.append((on, off))


def _consult(call: Call, agent: Leg, customer: Leg) -> bool:
    """The agent consults a third party; True when it joins (a transfer): the agent
    leaves, the customer talks on with the consulted party until one hangs up."""
    rng = call.rng
    held = call.emit(agent, "onhold") if rng.random() < 0.7 else None
    number = rng.choice(SUPERVISORS) if rng.random() < 0.6 else customer_number(rng)
    consulted = call.leg("CONSULT", number)
    call.emit(consulted, "ringing", after=(0, 2))
    answered = rng.random() < 0.8
    if answered:
        call.emit(consulted, "answer", after=(2, 10))
        call.wait(5, 60)
    joins = answered and rng.random() < 0.6
    if not joins:
        call.emit(consulted, "hangup", after=(0, 0) if answered else (10, 25), cause="16")
    if held is not None:
        call.holds.append((held, call.emit(agent, "resume", after=(0, 2))))
    if joins:
        call.emit(consulted, "join", after=(0, 1))
        call.joined = number
        # Leaving the customer to the consulted party does not end the call.
        call.emit(agent, "hangup", after=(0, 3), cause="16")
        call.talk(mean=90)
        _hang_up_both(call, consulted, customer)
    return joins


def _hang_up_both(call: Call, one: Leg, other: Leg) -> None:
    """Both remaining parties hang up in either order, then the platform closes the
    conversation; sometimes the platform's word comes first."""
    first, second = call.rng.sample((one, other), 2)
    if call.rng.random() < 0.15:
        call.emit(None, "hangup")
        call.emit(first, "hangup", after=(0, 1), cause=call.plain_cause())
        call.emit(second, "hangup", after=(0, 1), cause=call.plain_cause())
        return
    call.emit(first, "hangup", cause=call.plain_cause())
    call.emit(second, "hangup", after=(0, 1), cause=call.plain_cause())
    call.emit(None, "hangup", after=(0, 1))
