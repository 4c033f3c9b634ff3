"""Metrics, logs and worker processes: what an operator watches."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cdrlog.sim.traffic import delivery_order, generate_calls
from support.servers import running_server


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(text: str, name: str) -> float:
    return sum(value for (sample, _), value in samples(text).items() if sample == name)


def test_metrics_count_events_cdrs_and_batches(client: TestClient) -> None:
    before = client.get("/metrics").text
    calls = generate_calls(random.Random(8), datetime(2026, 11, 26, 9, tzinfo=UTC), calls=5)
    deliveries = delivery_order(calls, random.Random(8))
    for delivery in deliveries:
        url = f"/astercc/{delivery.team}/events"
        assert client.post(url, data=delivery.event).is_success
    assert client.post("/astercc/team1/events", data={"sessionid": "x"}).status_code == 400
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    # The calls' own events and the agents' that ride with them.
    events = len(deliveries)
    growth = {
        name: total(after.text, name) - total(before, name)
        for name in (
            "cdrlog_events_accepted_total",
            "cdrlog_events_rejected_total",
            "cdrlog_cdrs_created_total",
            "cdrlog_cdrs_closed_total",
            "cdrlog_batch_events_count",
            "cdrlog_ingest_seconds_count",
        )
    }
    assert growth["cdrlog_events_accepted_total"] == events
    assert growth["cdrlog_events_rejected_total"] == 1
    assert growth["cdrlog_cdrs_created_total"] == 5
    assert growth["cdrlog_cdrs_closed_total"] == 5
    assert growth["cdrlog_batch_events_count"] >= 1
    assert growth["cdrlog_ingest_seconds_count"] == events + 1
    assert samples(after.text)[("cdrlog_spool_depth", ())] == 0


def test_event_labels_stay_bounded_whatever_senders_write(client: TestClient) -> None:
    fields = {"sessionid": "s", "calltype": "dialout", "source": "CALLEE", "eventTime": "1"}
    for name in ("wibble", "WOBBLE", "x" * 30):
        client.post("/astercc/team1/events", data=fields | {"event": name})
    labels = {
        dict(labels).get("event")
        for (sample, labels) in samples(client.get("/metrics").text)
        if sample == "cdrlog_events_accepted_total"
    }
    assert labels <= {"ringing", "answer", "hangup", "link", "hold", "login", "logout", "other"}


def test_two_workers_share_one_port_and_one_metrics_view(sqlite_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    extra = ["--workers", "2", "--log-format", "json", "--spool-dir", str(tmp_path / "spool")]
    calls = generate_calls(random.Random(9), datetime(2026, 11, 26, 9, tzinfo=UTC), calls=20)
    deliveries = delivery_order(calls, random.Random(9))
    with running_server(sqlite_url, log, extra) as base:
        for delivery in deliveries:
            # A new connection per request, so both workers get some.
            response = httpx.post(
                f"{base}/astercc/{delivery.team}/events", data=delivery.event, timeout=10
            )
            assert response.is_success
        listed = httpx.get(f"{base}/api/v1/cdrs", params={"limit": 100}, timeout=10).json()
        text = httpx.get(f"{base}/metrics", timeout=10).text
    assert listed["total"] == len(calls)
    assert total(text, "cdrlog_events_accepted_total") == len(deliveries)
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert len({r["message"] for r in records if "Started server process" in r["message"]}) == 2
