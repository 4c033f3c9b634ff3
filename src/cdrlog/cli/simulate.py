"""`cdrlog simulate`: play realistic asterCC traffic against a running receiver, then
check what it made of it."""

from __future__ import annotations

import json
import random
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

import click

from cdrlog.cli.options import moment

if TYPE_CHECKING:
    import httpx

    from cdrlog.sim.simulate import Sendable, SendSettings, SendSummary
    from cdrlog.sim.simulate_check import CheckReport
    from cdrlog.sim.traffic import GeneratedCall

# The sim's own choices, as click needs them before it is imported.
TimeFormat = Literal["text", "epoch", "mixed"]
Style = Literal["manual", "seed"]

# Any fixed instant will do: only the length of the traffic it yields is used.
_MEASURING_START = datetime(2000, 1, 1, tzinfo=UTC)


def _parse_start(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> datetime | None:
    return moment(value, ZoneInfo("UTC"))


def _check_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL")
    return value


def _play_calls(
    seed: int,
    start: datetime | None,
    calls: int,
    teams: int,
    agents: int,
    time_format: TimeFormat,
    style: Style,
) -> tuple[datetime, list[GeneratedCall]]:
    """The calls for `seed`, from `start` or else timed so that the last one ends now."""
    from cdrlog.sim.traffic import generate_calls, traffic_span

    def play(at: datetime) -> list[GeneratedCall]:
        return generate_calls(
            random.Random(seed),
            at,
            calls=calls,
            teams=teams,
            agents=agents,
            time_format=time_format,
            style=style,
        )

    if start is None:
        # The same seed gives the same calls from any start: measure once, then shift.
        start = datetime.now(UTC) - traffic_span(play(_MEASURING_START), _MEASURING_START)
    return start, play(start)


@click.command("simulate")
@click.option(
    "--url",
    default="http://127.0.0.1:8080",
    show_default=True,
    callback=_check_url,
    help="Base URL of the cdrlog receiver.",
)
@click.option(
    "--calls",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="How many calls to play.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Requests in flight at once.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Events per second over all workers; 0 sends as fast as possible.",
)
@click.option(
    "--teams", type=click.IntRange(min=1), default=1, show_default=True, help="Teams team1..teamN."
)
@click.option(
    "--agents",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Agents per team (1001.., on phones 8001..).",
)
@click.option(
    "--duplicates",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of events sent twice.",
)
@click.option(
    "--shuffle",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of deliveries moved out of time order (1 = fully shuffled).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed for reproducible traffic.  [default: random, and printed]",
)
@click.option(
    "--start",
    callback=_parse_start,
    help="ISO time the traffic begins, UTC unless an offset is given.  "
    "[default: so that the last call ends now]",
)
@click.option(
    "--time-format",
    type=click.Choice(["text", "epoch", "mixed"]),
    default="text",
    show_default=True,
    help="eventTime as 'YYYY-MM-DD HH:MM:SS' UTC, epoch seconds, or either per event.",
)
@click.option(
    "--style",
    type=click.Choice(["manual", "seed"]),
    default="manual",
    show_default=True,
    help="Events as asterCC's interface manual shows them (agent legs, queues, holds, "
    "transfers, agent events; the URL names the team) or as the seed example does "
    "(CALLER/CALLEE legs with orgidentity).",
)
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="After sending, read the CDRs, dead letters and agent states back from the "
    "receiver's API and compare them with what the calls must give.",
)
@click.option(
    "--token",
    envvar="CDRLOG_TOKEN",
    show_envvar=True,
    metavar="TOKEN",
    help="Sent with every request (Authorization: Bearer), for a receiver that requires "
    "tokens. The check reads every team's CDRs: it needs an admin token (a push token "
    "pushes for its own team only: use it with --teams 1 and --no-check).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on a terminal.")
def simulate(
    url: str,
    calls: int,
    concurrency: int,
    rate: float,
    teams: int,
    agents: int,
    duplicates: float,
    shuffle: float,
    seed: int | None,
    start: datetime | None,
    time_format: TimeFormat,
    style: Style,
    check: bool,
    token: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Play realistic calls against a running receiver: send their push events, report,
    and check the receiver's CDRs, dead letters and agent states against the calls.

    Exits with status 1 when any event was not accepted (a 4xx, or no answer after
    retries) or, with --check, when the receiver's CDRs or agents differ from what the
    calls must give or it wrote dead letters.
    """
    import httpx

    from cdrlog.sim.simulate import SendSettings
    from cdrlog.sim.traffic import delivery_order

    seed = secrets.randbelow(2**31) if seed is None else seed
    start, generated = _play_calls(seed, start, calls, teams, agents, time_format, style)
    deliveries = delivery_order(
        generated, random.Random(seed + 1), duplicate_ratio=duplicates, shuffle_ratio=shuffle
    )
    if not as_json:
        click.echo(
            f"Simulating {calls:,} calls ({len(deliveries):,} events, {style} style) for "
            f"{teams} team(s) of {agents} agent(s), seed {seed}, "
            f"from {start.isoformat(timespec='seconds')}"
        )
    headers = {"Authorization": f"Bearer {token}"} if token else None
    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        letters_before = _newest_dead_letter(client) if check else None
        known = _teams_with_agents(client, [call.team for call in generated]) if check else ()
        settings = SendSettings(base_url=url, concurrency=concurrency, rate=rate, token=token)
        summary = _send(deliveries, settings, shown=not quiet and sys.stderr.isatty())
        # Events that were not all accepted make wrong CDRs: the summary says enough.
        checked = _check(client, generated, letters_before, known) if check and summary.ok else None
    _report(seed, calls, start, summary, checked, as_json)
    if not summary.ok or (checked is not None and not checked.ok):
        raise SystemExit(1)


def _send(deliveries: Sequence[Sendable], settings: SendSettings, shown: bool) -> SendSummary:
    """Every delivery sent, counted on a progress bar on stderr if `shown`."""
    from cdrlog.sim.simulate import run_simulation

    return run_simulation(deliveries, settings, show_progress=shown)


def _newest_dead_letter(client: httpx.Client) -> int | None:
    import httpx

    from cdrlog.sim.simulate_check import newest_dead_letter

    try:
        return newest_dead_letter(client)
    except httpx.TransportError:
        return None  # the receiver is not up: sending says so, with retries


def _teams_with_agents(client: httpx.Client, teams: list[str]) -> tuple[str, ...]:
    import httpx

    from cdrlog.sim.simulate_check import teams_with_agents

    try:
        return teams_with_agents(client, teams)
    except httpx.TransportError:
        return ()  # the receiver is not up: sending says so, with retries


def _check(
    client: httpx.Client,
    generated: list[GeneratedCall],
    letters_before: int | None,
    unchecked_teams: tuple[str, ...],
) -> CheckReport:
    import httpx

    from cdrlog.sim.simulate_check import check_receiver

    try:
        return check_receiver(client, generated, letters_before, unchecked_teams=unchecked_teams)
    except httpx.HTTPError as error:
        raise click.ClickException(
            f"could not read the receiver's API to check it ({error}); --no-check skips this"
        ) from error


def _report(
    seed: int,
    calls: int,
    start: datetime,
    summary: SendSummary,
    checked: CheckReport | None,
    as_json: bool,
) -> None:
    from cdrlog.sim.simulate import render_summary, summary_as_dict
    from cdrlog.sim.simulate_check import render_report, report_as_dict

    if as_json:
        report = {
            "seed": seed,
            "calls": calls,
            "start": start.isoformat(),
            **summary_as_dict(summary),
            "check": None if checked is None else report_as_dict(checked),
        }
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(render_summary(summary))
    if checked is not None:
        click.echo(render_report(checked))
