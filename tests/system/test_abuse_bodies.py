"""Bodies too big or too many-fielded: refused early and cheaply, never held whole.

The sign-in needs no token, so anyone who reaches the port can send it anything; a
push body is bounded, but what it may hold (a batch, fields) must be bounded too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest

from system.conftest import (
    FORM,
    Answer,
    Figures,
    MiB,
    Server,
    event_fields,
    fetch,
    watching,
)

# Each measures the latency of ordinary pushes under abuse: nothing runs beside it.
pytestmark = pytest.mark.alone

CHUNK = 64 * 1024
# A server that reads all of a huge body is let go after this much sending: it has
# shown what it does, and the test stays short.
SENDING_AT_MOST = 20.0
PROMPT_SECONDS = 2.0
BATCH_PROMPT_SECONDS = 0.2
FIELDS_PROMPT_SECONDS = 0.5
SHORT_ANSWER = 2 * 1024


class Streamed:
    """`size` bytes that start with `opening`, made as they are sent (never held);
    `sent` counts those the client has handed on so far."""

    def __init__(self, opening: bytes, filler: bytes, size: int) -> None:
        self.opening = opening
        self.chunk = filler * (CHUNK // len(filler))
        self.size = size
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        stop_at = time.monotonic() + SENDING_AT_MOST
        yield self.opening
        self.sent = len(self.opening)
        while self.sent < self.size and time.monotonic() < stop_at:
            yield self.chunk
            self.sent += len(self.chunk)


def _sign_in_with(server: Server, body: Streamed, content_type: str) -> Answer:
    with server.client() as client:
        return fetch(
            client,
            "POST",
            "/api/v1/session",
            content=iter(body),
            headers={"content-type": content_type},
        )


def test_sign_in_refuses_huge_chunked_bodies_promptly(server: Server, figures: Figures) -> None:
    bodies = [Streamed(b'{"token": "cdrlog_', b"0123456789abcdef", 200 * MiB) for _ in range(3)]

    def huge_sign_in(body: Streamed) -> Answer:
        return _sign_in_with(server, body, "application/json")

    with watching(server, figures) as watch, ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(huge_sign_in, bodies))
    for number, (answer, body) in enumerate(zip(answers, bodies, strict=True)):
        figures(f"answer_{number}", answer.shown())
        figures(f"seconds_{number}", answer.seconds)
        figures(f"sent_mib_{number}", body.sent / MiB)
        # Whether the server lets the rest of the body go, or reads it all to keep the
        # connection.
        figures(f"connection_{number}", answer.headers.get("connection"))
    assert [a.status for a in answers] == [413, 413, 413]
    assert max(a.seconds for a in answers) < PROMPT_SECONDS
    watch.assert_unharmed()


def test_sign_in_refuses_a_huge_text_body_without_echoing_it(
    server: Server, figures: Figures
) -> None:
    marker = b"abuse-text-body "
    body = Streamed(marker, marker, 100 * MiB)
    with watching(server, figures) as watch:
        answer = _sign_in_with(server, body, "text/plain")
    echoed = marker.strip() in answer.start
    figures("answer", answer.shown())
    figures("sent_mib", body.sent / MiB)
    figures("answer_bytes", answer.size)
    figures("echoes_input", echoed)
    figures("seconds", answer.seconds)
    assert answer.status == 413
    assert answer.size < SHORT_ANSWER
    assert not echoed
    watch.assert_unharmed()


def test_push_refuses_a_batch_of_two_hundred_thousand_events_promptly(
    shared_server: Server, figures: Figures
) -> None:
    batch = b"[" + b",".join([b"{}"] * 200_000) + b"]"
    with watching(shared_server, figures) as watch, shared_server.client() as client:
        answer = fetch(
            client,
            "POST",
            "/astercc/1/events",
            content=batch,
            headers={"content-type": "application/json"},
        )
    figures("body_bytes", len(batch))
    figures("answer", answer.shown())
    figures("seconds", answer.seconds)
    names_count = answer.status == 400 and ("200000" in answer.text or "200,000" in answer.text)
    assert answer.status == 413 or names_count, answer.text[:300]
    assert answer.seconds < BATCH_PROMPT_SECONDS
    watch.assert_unharmed()


def _multipart(fields: dict[str, str], boundary: str) -> bytes:
    # As terse as the syntax allows, so 20,000 fields still fit the 1 MiB push limit:
    # what is tested is their number, not the body's size.
    parts = (
        f"--{boundary}\r\ncontent-disposition:form-data;name={name}\r\n\r\n{value}\r\n"
        for name, value in fields.items()
    )
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


def test_push_refuses_twenty_thousand_fields_promptly(
    shared_server: Server, figures: Figures
) -> None:
    # A valid event, so that only the number of its fields can be why it is refused.
    event = event_fields("many-fields")
    many = event | {f"x{n}": "" for n in range(20_000 - len(event))}
    form = urlencode(many).encode()
    multipart = _multipart(many, "b")
    assert len(form) < MiB
    assert len(multipart) < MiB
    with watching(shared_server, figures) as watch, shared_server.client() as client:
        answers = {
            "form": fetch(client, "POST", "/astercc/1/events", content=form, headers=FORM),
            "multipart": fetch(
                client,
                "POST",
                "/astercc/1/events",
                content=multipart,
                headers={"content-type": "multipart/form-data; boundary=b"},
            ),
        }
    for kind, answer in answers.items():
        figures(f"{kind}_body_bytes", len(form if kind == "form" else multipart))
        figures(f"{kind}_answer", answer.shown())
        figures(f"{kind}_seconds", answer.seconds)
    assert {kind: a.status in (400, 413) for kind, a in answers.items()} == {
        "form": True,
        "multipart": True,
    }
    assert max(a.seconds for a in answers.values()) < FIELDS_PROMPT_SECONDS
    watch.assert_unharmed()
