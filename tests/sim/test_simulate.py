"""The sender against a real HTTP server on loopback that records what it is sent and
serves the read API's answers a test gives it; `cdrlog simulate` against a real receiver."""

from __future__ import annotations

import json
import random
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import pytest
from click.testing import CliRunner

from cdrlog.cli.simulate import simulate
from cdrlog.sim.simulate import (
    SendSettings,
    SendSummary,
    event_url,
    form_body,
    render_summary,
    run_simulation,
    summary_as_dict,
)
from cdrlog.sim.simulate_check import check_receiver, newest_dead_letter, render_report
from cdrlog.sim.traffic import (
    Delivery,
    ExpectedAgent,
    ExpectedCdr,
    GeneratedCall,
    Style,
    delivery_order,
    expected_agents,
    generate_calls,
)
from support.servers import running_server

START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def fast(url: str, concurrency: int = 8, rate: float = 0.0, max_tries: int = 5) -> SendSettings:
    """Settings whose retries wait milliseconds, not seconds."""
    return SendSettings(url, concurrency, rate, max_tries, backoff_seconds=0.01, timeout_seconds=5)


def event_key(event: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(event.items()))


@dataclass
class Receiver:
    """Answers like cdrlog's push endpoint: stored, duplicate, 400 for an event that
    names neither a call (sessionid) nor an agent (agentno); and answers the read API
    with what a test put in `cdrs`, `letters` (dead letter ids) and `agents` (per team;
    no listing at all while None).

    An event with a `fail` field gets that many 503s before it is stored; with
    `reject_all` set every event gets a 400.
    """

    reject_all: bool = False
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cdrs: list[dict[str, Any]] = field(default_factory=list)
    letters: list[int] = field(default_factory=list)
    agents: dict[str, list[dict[str, Any]]] | None = None
    agents_before: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def answer(self, path: str, fields: dict[str, str]) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.requests.append((path, fields))
            key = (path, tuple(sorted(fields.items())))
            failures = sum(1 for p, f in self.requests if (p, tuple(sorted(f.items()))) == key)
            if self.reject_all or not {"sessionid", "agentno"} & set(fields):
                return 400, {"sessionid": "is required"}
            if failures <= int(fields.get("fail", "0")):
                return 503, {"detail": "try again"}
            if key in self.seen:
                return 200, {"status": "duplicate"}
            self.seen.add(key)
            return 200, {"status": "stored"}

    def read(self, path: str, query: dict[str, list[str]]) -> tuple[int, str]:
        team = (query.get("team") or query.get("orgidentity") or [""])[0]
        if path == "/api/v1/cdrs":
            rows = [row for row in self.cdrs if row["orgidentity"] == team]
            return 200, "".join(json.dumps(row) + "\n" for row in rows)
        if path == "/api/v1/rejected":
            limit = int(query["limit"][0])
            page = [{"id": n} for n in sorted(self.letters, reverse=True)[:limit]]
            return 200, json.dumps({"rejected": page, "next_before": None})
        if path == "/api/v1/agents" and self.agents is not None:
            # Before any push, only the agents an earlier run left.
            listed = self.agents if self.requests else self.agents_before
            return 200, json.dumps({"agents": listed.get(team, [])})
        return 404, json.dumps({"detail": "Not Found"})


def handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the client's pool is exercised
        # Headers and body go out in two writes; Nagle would hold the second ~40 ms.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.bodies.append(body)
            fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
            status, answer = receiver.answer(self.path, fields)
            self.reply(status, json.dumps(answer))

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            self.reply(*receiver.read(url.path, parse_qs(url.query)))

        def reply(self, status: int, text: str) -> None:
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the tests read the receiver's record instead."""

    return Handler


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops the 6th simultaneous connect; its SYN retry costs 1 s.
    request_queue_size = 64


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    recorder = Receiver()
    server = LoopbackServer(("127.0.0.1", 0), handler_for(recorder))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", recorder
    server.shutdown()
    server.server_close()
    thread.join()


def sent_deliveries(
    seed: int, calls: int, duplicates: float, style: Style = "manual"
) -> list[Delivery]:
    generated = generate_calls(random.Random(seed), START, calls=calls, teams=2, style=style)
    return delivery_order(
        generated, random.Random(seed), duplicate_ratio=duplicates, shuffle_ratio=0.5
    )


def sent_events(seed: int, calls: int, duplicates: float) -> list[dict[str, str]]:
    """Seed-shaped events: each names its team, so a plain event finds its URL."""
    return [delivery.event for delivery in sent_deliveries(seed, calls, duplicates, "seed")]


def check_math(summary: SendSummary) -> None:
    assert summary.accepted + summary.rejected + summary.failed == summary.sent
    assert summary.accepted == summary.stored + summary.duplicates
    assert summary.events_per_second == pytest.approx(summary.sent / summary.elapsed_seconds)
    assert 0 < summary.latency_p50_ms <= summary.latency_p99_ms <= summary.latency_max_ms
    assert summary.latency_max_ms <= summary.elapsed_seconds * 1000


def test_every_event_arrives_at_its_team_url(receiver: tuple[str, Receiver]) -> None:
    url, recorder = receiver
    events = sent_events(1, 30, 0.2)
    summary = run_simulation(events, fast(url, concurrency=8))
    unique = len({event_key(e) for e in events})
    assert (summary.sent, summary.accepted, summary.stored) == (len(events), len(events), unique)
    assert summary.duplicates == len(events) - unique > 0
    assert (summary.rejected, summary.failed, summary.retries) == (0, 0, 0)
    assert summary.ok
    check_math(summary)
    assert Counter(event_key(f) for _, f in recorder.requests) == Counter(map(event_key, events))
    assert all(path == f"/astercc/{f['orgidentity']}/events" for path, f in recorder.requests)


def test_manual_events_go_to_the_url_of_the_team_they_are_addressed_to(
    receiver: tuple[str, Receiver],
) -> None:
    url, recorder = receiver
    deliveries = sent_deliveries(2, 20, 0.1)
    summary = run_simulation(deliveries, fast(url, concurrency=8))
    assert (summary.sent, summary.accepted, summary.rejected) == (len(deliveries),) * 2 + (0,)
    sent = Counter((f"/astercc/{d.team}/events", event_key(d.event)) for d in deliveries)
    assert Counter((path, event_key(f)) for path, f in recorder.requests) == sent
    assert not any("orgidentity" in f for _, f in recorder.requests)


def test_bodies_are_written_as_asterCC_writes_them(receiver: tuple[str, Receiver]) -> None:
    url, recorder = receiver
    event = {
        "eventTime": "2024-05-01 09:00:00",
        "channel": "Local/015967121144@hosted-dialout-408a;1",
        "userdata": "a=b&c+d 50%",
        "sessionid": "s1",
    }
    assert form_body(event) == (
        b"eventTime=2024-05-01 09:00:00&channel=Local/015967121144@hosted-dialout-408a;1&"
        b"userdata=a%3Db%26c%2Bd 50%25&sessionid=s1&"
    )
    run_simulation(sent_deliveries(3, 5, 0.0), fast(url))
    for body, (_, fields) in zip(recorder.bodies, recorder.requests, strict=True):
        assert body.endswith(b"&")
        assert body == form_body(fields)
    raw = b"".join(recorder.bodies)
    assert b"eventTime=2024-05-01 09:" in raw
    assert b"channel=SIP/8" in raw
    assert b";1&" in raw


def test_a_4xx_is_counted_and_never_retried(receiver: tuple[str, Receiver]) -> None:
    url, recorder = receiver
    events = [{"calltype": "dialout", "orgidentity": "team1"}, *sent_events(2, 2, 0.0)]
    summary = run_simulation(events, fast(url, concurrency=2))
    assert (summary.rejected, summary.retries, summary.failed) == (1, 0, 0)
    assert summary.accepted == len(events) - 1
    assert not summary.ok
    assert len(recorder.requests) == len(events)
    assert summary.errors[0].startswith("400 ")
    check_math(summary)


def test_a_5xx_is_retried_until_stored(receiver: tuple[str, Receiver]) -> None:
    url, recorder = receiver
    event = {"sessionid": "s1", "orgidentity": "team1", "fail": "2"}
    summary = run_simulation([event], fast(url, concurrency=1))
    assert (summary.accepted, summary.stored, summary.retries, summary.failed) == (1, 1, 2, 0)
    assert len(recorder.requests) == 3


def test_the_sender_gives_up_after_max_tries(receiver: tuple[str, Receiver]) -> None:
    url, recorder = receiver
    event = {"sessionid": "s1", "orgidentity": "team1", "fail": "99"}
    summary = run_simulation([event], fast(url, max_tries=3))
    assert (summary.failed, summary.retries, summary.accepted) == (1, 2, 0)
    assert len(recorder.requests) == 3
    assert "gave up after 3 tries: 503" in summary.errors[0]


def test_a_refused_connection_is_retried_then_failed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    events = sent_events(3, 1, 0.0)[:3]
    summary = run_simulation(events, fast(f"http://127.0.0.1:{port}", max_tries=2))
    assert (summary.failed, summary.retries, summary.accepted) == (3, 3, 0)
    assert summary.latency_max_ms == 0.0
    assert "ConnectError" in summary.errors[0]


def test_the_rate_limit_spaces_requests(receiver: tuple[str, Receiver]) -> None:
    url, _ = receiver
    events = sent_events(4, 4, 0.0)[:11]
    summary = run_simulation(events, fast(url, concurrency=4, rate=100.0))
    assert summary.accepted == 11
    # Eleven starts 10 ms apart take at least 100 ms, whatever the concurrency.
    assert summary.elapsed_seconds >= 0.095


def test_event_url_uses_the_team_or_the_generic_path() -> None:
    assert (
        event_url("http://h:1/", {"orgidentity": "team 1"}) == "http://h:1/astercc/team%201/events"
    )
    assert event_url("http://h:1", {"sessionid": "x"}) == "http://h:1/astercc/events"


def test_settings_are_checked(receiver: tuple[str, Receiver]) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        run_simulation([], SendSettings(receiver[0], concurrency=0))


def test_the_summary_reads_and_serialises(receiver: tuple[str, Receiver]) -> None:
    summary = run_simulation(sent_events(5, 3, 0.5), fast(receiver[0]))
    text = render_summary(summary)
    assert f"Sent {summary.sent} events" in text
    assert f"{summary.duplicates} duplicates" in text
    as_dict = json.loads(json.dumps(summary_as_dict(summary)))
    assert as_dict["accepted"] == summary.accepted
    assert as_dict["ok"] is True


def api_cdr(cdr: ExpectedCdr) -> dict[str, Any]:
    """A CDR as `GET /api/v1/cdrs?format=jsonl` shows it."""
    values = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(cdr).items()}
    return {"id": 1, "orgidentity": values.pop("team"), **values}


def api_agent(agent: ExpectedAgent) -> dict[str, Any]:
    since = agent.state_since.isoformat() if agent.state_since else None
    return {**asdict(agent), "orgidentity": agent.team, "state_since": since}


def command_calls(seed: int, calls: int, style: Style = "manual") -> list[GeneratedCall]:
    """The calls `cdrlog simulate --seed S --start START --teams 2` plays."""
    return generate_calls(random.Random(seed), START, calls=calls, teams=2, style=style)


def test_the_command_reports_json_and_succeeds(receiver: tuple[str, Receiver]) -> None:
    url, recorder = receiver
    calls = command_calls(7, 5)
    recorder.cdrs = [api_cdr(call.expected) for call in calls]
    options = ["--url", url, "--calls", "5", "--seed", "7", "--duplicates", "0.2", "--json"]
    options += ["--teams", "2"]
    result = CliRunner().invoke(simulate, [*options, "--start", "2024-05-01T09:00:00"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["seed"], report["calls"], report["ok"]) == (7, 5, True)
    assert report["start"] == "2024-05-01T09:00:00+00:00"
    assert report["sent"] == len(recorder.requests) == report["stored"] + report["duplicates"]
    assert report["check"] == {
        "cdrs_checked": 5,
        "cdrs_wrong": 0,
        "dead_letters": 0,
        "agents_checked": None,
        "agents_wrong": 0,
        "problems": [],
        "agents_unchecked_teams": [],
        "ok": True,
    }
    assert not any("orgidentity" in fields for _, fields in recorder.requests)


def test_the_seed_style_names_the_team_in_every_event(receiver: tuple[str, Receiver]) -> None:
    url, recorder = receiver
    options = ["--url", url, "--calls", "4", "--seed", "3", "--style", "seed", "--no-check"]
    result = CliRunner().invoke(simulate, options)
    assert result.exit_code == 0, result.output
    assert "seed style" in result.output
    assert "Checked" not in result.output
    assert all(fields["orgidentity"] == "team1" for _, fields in recorder.requests)
    assert {fields["source"] for _, fields in recorder.requests} == {"CALLER", "CALLEE"}


def test_the_command_fails_when_the_receiver_got_cdrs_or_agents_wrong(
    receiver: tuple[str, Receiver],
) -> None:
    url, recorder = receiver
    calls = command_calls(8, 6)
    recorder.cdrs = [api_cdr(call.expected) for call in calls[1:]]
    recorder.cdrs[0]["hold_seconds"] = 99
    wanted = expected_agents(calls)
    recorder.agents = {"team1": [api_agent(a) for a in wanted if a.team == "team1"]}
    options = ["--url", url, "--calls", "6", "--seed", "8", "--teams", "2"]
    result = CliRunner().invoke(simulate, [*options, "--start", "2024-05-01T09:00:00"])
    assert result.exit_code == 1, result.output
    first, second = calls[0].expected, calls[1].expected
    assert "CDRs          4 of 6 as expected" in result.output
    assert f"! CDR {first.team}/{first.diallogid}: missing" in result.output
    assert f"hold_seconds expected {second.hold_seconds}, got 99" in result.output
    team2 = sum(a.team == "team2" for a in wanted)
    assert f"agents        {len(wanted) - team2} of {len(wanted)} as expected" in result.output
    assert "not listed" in result.output


def test_agents_known_before_the_run_are_not_checked(receiver: tuple[str, Receiver]) -> None:
    """An earlier run's events, overlapping this run's in time, decide those states too:
    the check leaves such a team's agents out and says so."""
    url, recorder = receiver
    calls = command_calls(8, 6)
    recorder.cdrs = [api_cdr(call.expected) for call in calls]
    wanted = expected_agents(calls)
    recorder.agents = {"team2": [api_agent(a) for a in wanted if a.team == "team2"]}
    recorder.agents_before = {"team1": [{"agentno": "1001"}]}
    options = ["--url", url, "--calls", "6", "--seed", "8", "--teams", "2"]
    result = CliRunner().invoke(simulate, [*options, "--start", "2024-05-01T09:00:00"])
    assert result.exit_code == 0, result.output
    team2 = sum(a.team == "team2" for a in wanted)
    assert f"agents        {team2} of {team2} as expected; not checked for team1" in result.output


def test_the_check_counts_dead_letters_written_while_sending(
    receiver: tuple[str, Receiver],
) -> None:
    url, recorder = receiver
    calls = command_calls(9, 3)
    recorder.cdrs = [api_cdr(call.expected) for call in calls]
    recorder.letters = [4, 5]
    recorder.agents = {}
    with httpx.Client(base_url=url) as client:
        before = newest_dead_letter(client)
        recorder.letters += [6, 7]
        report = check_receiver(client, calls, before, settle_seconds=0)
    assert (before, report.dead_letters, report.cdrs_wrong, report.ok) == (5, 2, 0, False)
    assert report.agents_checked == len(expected_agents(calls)) == report.agents_wrong
    assert "dead letters  2" in render_report(report)


def test_the_command_prints_a_summary_and_fails_on_rejections(
    receiver: tuple[str, Receiver],
) -> None:
    url, recorder = receiver
    recorder.reject_all = True
    result = CliRunner().invoke(simulate, ["--url", url, "--calls", "2", "--seed", "1"])
    assert result.exit_code == 1
    assert "seed 1" in result.output
    assert "rejected" in result.output
    assert "! 400" in result.output


def test_the_command_refuses_a_bad_url() -> None:
    result = CliRunner().invoke(simulate, ["--url", "127.0.0.1:8080"])
    assert result.exit_code == 2
    assert "http://" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("style", ["manual", "seed"])
def test_a_real_receiver_makes_exactly_what_the_calls_demand(
    style: str, sqlite_url: str, tmp_path: Path
) -> None:
    """Needs the fold of the manual's events (holds, transfers, agent states)."""
    with running_server(sqlite_url, tmp_path / "serve.log") as base:
        options = ["--url", base, "--calls", "60", "--seed", "5", "--teams", "2", "--json"]
        options += ["--duplicates", "0.2", "--shuffle", "1", "--style", style]
        result = CliRunner().invoke(simulate, options)
    assert result.exit_code == 0, result.output
    check = json.loads(result.output)["check"]
    assert (check["cdrs_checked"], check["dead_letters"], check["problems"]) == (60, 0, [])
    assert check["agents_checked"] == 10, "the receiver lists every agent of both teams"
