"""Decoding a push body into the field maps of its events. Pure.

asterCC posts `application/x-www-form-urlencoded` (what a PHP `$_POST` sees); tools and
replays post a JSON object or a JSON array of objects. Values are strings on the wire;
JSON numbers are taken as their text so `"eventTime": 1700000000` works too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None, body: bytes) -> bool:
    kind = media_type(content_type)
    if kind == "application/json" or kind.endswith("+json"):
        return True
    # A sender that omits the type (or says text/plain) still gets understood.
    return kind in ("", "text/plain") and body.lstrip()[:1] in (b"{", b"[")


def decode_json(body: bytes) -> list[Item] | BodyError:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        return BodyError(f"body is not valid JSON: {error}")
    if isinstance(document, dict):
        return [_json_item(document)]
    if isinstance(document, list):
        if not document:
            return BodyError("body is an empty JSON array")
        return [
            _json_item(item)
            if isinstance(item, dict)
            else Rejection((FieldError("body", "batch item is not a JSON object"),))
            for item in document
        ]
    return BodyError("body must be a JSON object or an array of objects")


def decode_form(body: bytes) -> list[Item] | BodyError:
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
    return [dict(pairs)]


def fields_of(mapping: Mapping[str, Any]) -> Item:
    """String fields from decoded form parts (multipart); files are not events."""
    fields: dict[str, str] = {}
    errors: list[FieldError] = []
    for name, value in mapping.items():
        if isinstance(value, str):
            fields[name] = value
        else:
            errors.append(FieldError(name, "must be a text field, not a file"))
    return Rejection(tuple(errors)) if errors else fields


def _json_item(document: dict[str, Any]) -> Item:
    fields: dict[str, str] = {}
    errors: list[FieldError] = []
    for name, value in document.items():
        if value is None:
            continue
        if isinstance(value, str):
            fields[name] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            fields[name] = json.dumps(value)
        else:
            errors.append(FieldError(name, "must be a string or a number"))
    return Rejection(tuple(errors)) if errors else fields
