"""Whether a receiver made of simulated traffic what the traffic's scripts say it must.

Read back over the receiver's own read API, as any reader would: the CDRs of the calls
sent (`GET /api/v1/cdrs`, every column of `ExpectedCdr`), the dead letters written while
they were sent (`GET /api/v1/rejected`: there must be none), and, where the receiver
offers it, each agent's state (`GET /api/v1/agents`). The expectations come from
`cdrlog.sim.traffic`, never from cdrlog's fold.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import httpx

from cdrlog.sim.traffic import ExpectedAgent, ExpectedCdr, GeneratedCall, expected_agents

# Enough of the problems to see what is wrong without flooding the terminal.
_PROBLEM_SAMPLES = 10
_TIME_FIELDS = frozenset({"starttime", "answertime", "endtime", "state_since"})


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What the receiver's API shows against what was expected. `dead_letters` is None
    when the receiver would not list them, `agents_checked` None when it offers no agent
    listing; `problems` is a sample of what differs."""

    cdrs_checked: int
    cdrs_wrong: int
    dead_letters: int | None
    agents_checked: int | None
    agents_wrong: int
    problems: tuple[str, ...] = ()
    agents_unchecked_teams: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.cdrs_wrong == 0 and not self.dead_letters and self.agents_wrong == 0


def newest_dead_letter(client: httpx.Client) -> int | None:
    """The id of the newest dead letter (0 for none), to count those written after it;
    None when the receiver does not list them."""
    answer = client.get("/api/v1/rejected", params={"limit": 1})
    if answer.status_code != 200:
        return None
    letters = answer.json()["rejected"]
    return int(letters[0]["id"]) if letters else 0


def teams_with_agents(client: httpx.Client, teams: Sequence[str]) -> tuple[str, ...]:
    """The teams the receiver already lists agents of. Their agents' states then depend
    on events this run did not send (an earlier run's, overlapping in time), so they
    cannot be predicted from the calls; the check leaves them out."""
    known = []
    for team in sorted(set(teams)):
        answer = client.get("/api/v1/agents", params={"orgidentity": team})
        if answer.status_code == 200 and answer.json()["agents"]:
            known.append(team)
    return tuple(known)


def check_receiver(
    client: httpx.Client,
    calls: Sequence[GeneratedCall],
    letters_before: int | None,
    *,
    unchecked_teams: tuple[str, ...] = (),
    settle_seconds: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> CheckReport:
    """Compare the receiver's CDRs and agents with `calls`' expectations, asking again
    for up to `settle_seconds` while they differ (a receiver may fold a moment late),
    and count the dead letters newer than `letters_before`."""
    deadline = clock() + settle_seconds
    while True:
        cdr_problems = _cdr_problems(client, calls)
        agents = _agent_problems(client, calls, unchecked_teams)
        if (not cdr_problems and not (agents and agents[1])) or clock() >= deadline:
            break
        sleep(0.25)
    letters = None if letters_before is None else _letters_after(client, letters_before)
    problems = [*cdr_problems, *(agents[1] if agents else [])]
    if letters:
        problems.append(f"{letters} dead letter(s) written while sending")
    return CheckReport(
        cdrs_checked=len(calls),
        cdrs_wrong=len(cdr_problems),
        dead_letters=letters,
        agents_checked=None if agents is None else agents[0],
        agents_wrong=0 if agents is None else len(agents[1]),
        problems=tuple(problems[:_PROBLEM_SAMPLES]),
        agents_unchecked_teams=unchecked_teams,
    )


def _cdr_problems(client: httpx.Client, calls: Sequence[GeneratedCall]) -> list[str]:
    """One line per call whose CDR is missing or differs, naming the columns."""
    problems: list[str] = []
    for team in sorted({call.team for call in calls}):
        wanted = [call.expected for call in calls if call.team == team]
        stored = _stored_cdrs(client, team, wanted)
        for expected in wanted:
            got = stored.get(expected.diallogid)
            key = f"CDR {team}/{expected.diallogid}"
            if got is None:
                problems.append(f"{key}: missing")
            elif differences := _differences(asdict(expected), got):
                problems.append(f"{key}: {differences}")
    return problems


def _stored_cdrs(
    client: httpx.Client, team: str, wanted: Sequence[ExpectedCdr]
) -> dict[str, dict[str, Any]]:
    """The team's CDRs that started while the calls did, as JSON lines, by diallogid."""
    params = {
        "team": team,
        "format": "jsonl",
        "from": min(cdr.starttime for cdr in wanted).isoformat(),
        "to": (max(cdr.starttime for cdr in wanted) + timedelta(seconds=1)).isoformat(),
    }
    answer = client.get("/api/v1/cdrs", params=params)
    answer.raise_for_status()
    rows = [json.loads(line) for line in answer.text.splitlines() if line.strip()]
    return {row["diallogid"]: {**row, "team": row["orgidentity"]} for row in rows}


def _agent_problems(
    client: httpx.Client, calls: Sequence[GeneratedCall], unchecked_teams: tuple[str, ...]
) -> tuple[int, list[str]] | None:
    """How many agents were compared and one line per agent that differs; None when
    the receiver has no agent listing."""
    wanted = [a for a in expected_agents(calls) if a.team not in unchecked_teams]
    problems: list[str] = []
    for team in sorted({agent.team for agent in wanted}):
        answer = client.get("/api/v1/agents", params={"orgidentity": team})
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        listed = {row["agentno"]: row for row in answer.json()["agents"]}
        for agent in (a for a in wanted if a.team == team):
            problems += _agent_problem(agent, listed.get(agent.agentno))
    return len(wanted), problems


def _agent_problem(agent: ExpectedAgent, row: Mapping[str, Any] | None) -> list[str]:
    key = f"agent {agent.team}/{agent.agentno}"
    if row is None:
        return [f"{key}: not listed"]
    differences = _differences(asdict(agent), {**row, "team": row.get("orgidentity")})
    return [f"{key}: {differences}"] if differences else []


def _letters_after(client: httpx.Client, newest_before: int) -> int:
    """How many dead letters have an id above `newest_before` (newest first, paged)."""
    count, before = 0, None
    while True:
        params: dict[str, int] = {"limit": 1000} | ({"before": before} if before else {})
        answer = client.get("/api/v1/rejected", params=params)
        answer.raise_for_status()
        page = answer.json()
        ids = [int(letter["id"]) for letter in page["rejected"]]
        count += sum(1 for letter_id in ids if letter_id > newest_before)
        before = page["next_before"]
        if not before or not ids or min(ids) <= newest_before:
            return count


def _differences(expected: Mapping[str, Any], got: Mapping[str, Any]) -> str:
    """`name expected X, got Y` for each expected field the row shows otherwise (times
    compared as instants, whatever zone the API shows them in)."""
    shown = []
    for name, want in expected.items():
        have = got.get(name)
        if name in _TIME_FIELDS and isinstance(have, str):
            have = datetime.fromisoformat(have)
        if have != want:
            shown_want = want.isoformat() if isinstance(want, datetime) else want
            shown.append(f"{name} expected {shown_want!r}, got {got.get(name)!r}")
    return "; ".join(shown)


def report_as_dict(report: CheckReport) -> dict[str, object]:
    """The report as JSON-ready values, with `ok` included."""
    values = {f.name: getattr(report, f.name) for f in fields(report)}
    return {**values, "problems": list(report.problems), "ok": report.ok}


def render_report(report: CheckReport) -> str:
    """A few lines a person reads at a glance, then a sample of the problems."""
    r = report
    letters = "not listed by the receiver" if r.dead_letters is None else f"{r.dead_letters:,}"
    agents = (
        "not offered by the receiver"
        if r.agents_checked is None
        else f"{r.agents_checked - r.agents_wrong:,} of {r.agents_checked:,} as expected"
    )
    if r.agents_unchecked_teams:
        # An earlier run's events mix with this run's: those states are not predictable.
        teams = ", ".join(r.agents_unchecked_teams)
        unchecked = f"not checked for {teams} (agents known before this run)"
        agents = unchecked if not r.agents_checked else f"{agents}; {unchecked}"
    lines = [
        "Checked the receiver:",
        f"  CDRs          {r.cdrs_checked - r.cdrs_wrong:,} of {r.cdrs_checked:,} as expected",
        f"  dead letters  {letters}",
        f"  agents        {agents}",
    ]
    lines += [f"  ! {problem}" for problem in r.problems]
    return "\n".join(lines)
