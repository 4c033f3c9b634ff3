"""The sender against a real HTTP server on loopback that records what it is sent."""

from __future__ import annotations

import json
import random
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
from click.testing import CliRunner

from cdrlog.cli_simulate import simulate
from cdrlog.simulate import (
    SendSettings,
    SendSummary,
    event_url,
    render_summary,
    run_simulation,
    summary_as_dict,
)
from cdrlog.traffic import delivery_order, generate_calls

START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def fast(url: str, concurrency: int = 8, rate: float = 0.0, max_tries: int = 5) -> SendSettings:
    """Settings whose retries wait milliseconds, not seconds."""
    return SendSettings(url, concurrency, rate, max_tries, backoff_seconds=0.01, timeout_seconds=5)


def event_key(event: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(event.items()))


@dataclass
class Receiver:
    """Answers like cdrlog's push endpoint: stored, duplicate, 400 without a sessionid.

    An event with a `fail` field gets that many 503s before it is stored; with
    `reject_all` set every event gets a 400.
    """

    reject_all: bool = False
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, fields: dict[str, str]) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.requests.append((path, fields))
            key = (path, tuple(sorted(fields.items())))
            failures = sum(1 for p, f in self.requests if (p, tuple(sorted(f.items()))) == key)
            if self.reject_all or "sessionid" not in fields:
                return 400, {"sessionid": "is required"}
            if failures <= int(fields.get("fail", "0")):
                return 503, {"detail": "try again"}
            if key in self.seen:
                return 200, {"status": "duplicate"}
            self.seen.add(key)
            return 200, {"status": "stored"}


def handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the client's pool is exercised
        # Headers and body go out in two writes; Nagle would hold the second ~40 ms.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
            status, answer = receiver.answer(self.path, fields)
            payload = json.dumps(answer).encode()
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


def sent_events(seed: int, calls: int, duplicates: float) -> list[dict[str, str]]:
    generated = generate_calls(random.Random(seed), START, calls=calls, teams=2)
    order = delivery_order(
        generated, random.Random(seed), duplicate_ratio=duplicates, shuffle_ratio=0.5
    )
    return [delivery.event for delivery in order]


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


def test_the_command_reports_json_and_succeeds(receiver: tuple[str, Receiver]) -> None:
    url, recorder = receiver
    options = ["--url", url, "--calls", "5", "--seed", "7", "--duplicates", "0.2", "--json"]
    result = CliRunner().invoke(simulate, [*options, "--start", "2024-05-01T09:00:00"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["seed"], report["calls"], report["ok"]) == (7, 5, True)
    assert report["start"] == "2024-05-01T09:00:00+00:00"
    assert report["sent"] == len(recorder.requests) == report["stored"] + report["duplicates"]


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
