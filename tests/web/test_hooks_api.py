"""The hooks' admin API: subscribe (the secret shown once), list, test, remove, failed
deliveries and their replay; a private target refused unless the operator allows it."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from cdrlog.service.clock import utc_now
from cdrlog.service.settings import Settings
from cdrlog.store import hooks
from cdrlog.store.tables import hook_delivery
from cdrlog.web.app import create_app
from support.receiver import receiving


def test_a_private_target_is_refused_unless_allowed(client: TestClient) -> None:
    answer = client.post("/api/v1/hooks", json={"target": "http://127.0.0.1:9/hook"})
    assert answer.status_code == 400
    assert "loopback, link-local or private" in answer.json()["detail"]
    answer = client.post("/api/v1/hooks", json={"target": "ftp://example.com/"})
    assert answer.status_code == 400
    assert "scheme 'ftp'" in answer.json()["detail"]
    answer = client.post("/api/v1/hooks", json={"target": "https://x/", "kinds": ["cdr.gone"]})
    assert answer.status_code == 422


def test_a_hook_through_the_api(settings: Settings, engine: Engine) -> None:
    allowed = settings.model_copy(update={"allow_private_targets": True})
    with receiving() as receiver, TestClient(create_app(allowed, engine)) as client:
        made = client.post(
            "/api/v1/hooks",
            json={"target": receiver.url, "team": "team1", "kinds": ["cdr.closed", "cdr.created"]},
        )
        assert made.status_code == 201, made.text
        created = made.json()
        assert created["secret"].startswith("whsec_")
        assert created["kinds"] == ["cdr.created", "cdr.closed"]
        listed = client.get("/api/v1/hooks").json()["hooks"]
        assert [h["id"] for h in listed] == [created["id"]]
        assert "secret" not in listed[0]
        assert created["secret"] not in client.get("/api/v1/hooks").text

        receiver.secret = created["secret"]
        tested = client.post(f"/api/v1/hooks/{created['id']}/test")
        assert tested.status_code == 200, tested.text
        assert receiver.messages()[0]["type"] == "hook.test"
        receiver.down = True
        assert client.post(f"/api/v1/hooks/{created['id']}/test").status_code == 502

        now = utc_now()
        with engine.begin() as connection:
            connection.execute(
                insert(hook_delivery),
                {
                    "hook_id": created["id"], "orgidentity": "team1", "subject": "s1",
                    "cdr_id": 1, "version": 1, "kind": "cdr.closed", "sent_version": 0,
                    "state": "failed", "attempts": 3, "next_at": now,
                    "last_error": "HTTP 500", "updated_at": now - timedelta(minutes=1),
                },
            )  # fmt: skip
        failed = client.get("/api/v1/hooks/failed").json()["deliveries"]
        assert [(d["subject"], d["last_error"]) for d in failed] == [("s1", "HTTP 500")]
        assert client.get("/api/v1/hooks").json()["hooks"][0]["failed"] == 1
        assert client.post("/api/v1/hooks/replay", json={}).status_code == 400
        replayed = client.post("/api/v1/hooks/replay", json={"all": True}).json()
        assert replayed == {"replayed": 1}
        assert client.get("/api/v1/hooks/failed").json()["deliveries"] == []

        assert client.delete(f"/api/v1/hooks/{created['id']}").status_code == 204
        assert client.delete(f"/api/v1/hooks/{created['id']}").status_code == 404
        assert hooks.active(engine) == []
