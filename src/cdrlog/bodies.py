"""Decoding a push body into the field maps of its events. Pure.

asterCC posts `application/x-www-form-urlencoded` (what a PHP `$_POST` sees); tools and
replays post a JSON object or a JSON array of objects. Values are strings on the wire;
JSON numbers are taken as their text so `"eventTime": 1700000000` works too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from cdrlog.events import FieldError, Rejection

MAX_FORM_FIELDS = 1000


@dataclass(frozen=True, slots=True)
class BodyError:
    """The body as a whole cannot be read as events."""

    message: str


Item = dict[str, str] | Rejection
BYTE_ORDER_MARK = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Decoded:
    """The events of a body. A batch (JSON array) keeps each item as it arrived, so a
    refused item can be kept as a dead letter exactly as it was sent."""

    items: list[Item]
    batch: bool = False
    originals: tuple[Any, ...] = ()


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None, body: bytes) -> bool:
    kind = media_type(content_type)
    if kind == "application/json" or kind.endswith("+json"):
        return True
    # A sender that omits the type (or says text/plain) still gets understood.
    return kind in ("", "text/plain") and _opening(body) in (b"{", b"[")


def _opening(body: bytes) -> bytes:
    return body.removeprefix(BYTE_ORDER_MARK).lstrip()[:1]


def decode_json(body: bytes) -> Decoded | BodyError:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        return BodyError(f"body is not valid JSON: {error}")
    if isinstance(document, dict):
        return Decoded([_json_item(document)])
    if isinstance(document, list):
        if not document:
            return BodyError("body is an empty JSON array")
        items = [
            _json_item(item)
            if isinstance(item, dict)
            else Rejection((FieldError("body", "batch item is not a JSON object"),))
            for item in document
        ]
        return Decoded(items, batch=True, originals=tuple(document))
    return BodyError("body must be a JSON object or an array of objects")


def decode_form(body: bytes) -> Decoded | BodyError:
    """One event per body. A repeated field takes its last value, as PHP does."""
    text = body.decode("utf-8", errors="replace")
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError as error:
        return BodyError(f"form body cannot be read: {error}")
    if not pairs:
        return BodyError("body is empty: expected form fields")
    return Decoded([dict(pairs)])


def _json_item(document: dict[str, Any]) -> Item:
    fields: dict[str, str] = {}
    errors: list[FieldError] = []
    for name, value in document.items():
        if not _encodable(name):
            errors.append(FieldError(_escaped(name), "field name is not valid Unicode text"))
        elif value is None:
            continue
        elif isinstance(value, str):
            if not _encodable(value):
                errors.append(FieldError(name, "is not valid Unicode text"))
            fields[name] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            fields[name] = json.dumps(value)
        else:
            errors.append(FieldError(name, "must be a string or a number"))
    return Rejection(tuple(errors)) if errors else fields


def _encodable(text: str) -> bool:
    """JSON may carry lone surrogates (\\ud800) that no database or answer can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escaped(text: str) -> str:
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")
