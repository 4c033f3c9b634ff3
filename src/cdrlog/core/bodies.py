"""Decoding a push body into the field maps of its events. Pure.

asterCC posts `application/x-www-form-urlencoded` (what a PHP `$_POST` sees); tools and
replays post a JSON object or a JSON array of objects. Values are strings on the wire;
JSON numbers are taken as their text so `"eventTime": 1700000000` works too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from cdrlog.core.events import FieldError, Rejection

MAX_FORM_FIELDS = 1000
_WHITESPACE = " \t\n\r"


@dataclass(frozen=True, slots=True)
class BodyError:
    """The body as a whole cannot be read as events (413: it holds too many)."""

    message: str
    status: int = 400


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


def decode_json(body: bytes, max_items: int) -> Decoded | BodyError:
    """A JSON object, or an array of at most `max_items` objects: the count is checked
    item by item as the array is read, so a huge batch costs no more than a full one."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return BodyError(f"body is not valid UTF-8 JSON: {error}")
    try:
        if text.lstrip(_WHITESPACE).startswith("["):
            document: Any = []
            for item in _array_items(text):
                if len(document) == max_items:
                    message = f"a batch of more than {max_items} events; at most {max_items}"
                    return BodyError(message, 413)
                document.append(item)
        else:
            document = json.loads(text)
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


def _array_items(text: str) -> Iterator[Any]:
    """The items of the JSON array `text`, one at a time (ValueError if it is not one)."""
    decoder = json.JSONDecoder()
    at = _skip(text, text.index("[") + 1)
    if text.startswith("]", at):
        at += 1
    else:
        while True:
            item, at = decoder.raw_decode(text, at)
            yield item
            at = _skip(text, at)
            if text.startswith("]", at):
                at += 1
                break
            if not text.startswith(",", at):
                raise ValueError(f"expected ',' or ']' at character {at}")
            at = _skip(text, at + 1)
    if _skip(text, at) != len(text):
        raise ValueError(f"extra data at character {at}")


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    return at


def decode_form(body: bytes) -> Decoded | BodyError:
    """One event per body. A repeated field takes its last value, as PHP does. Names
    and values must be UTF-8 once percent-decoded: a field that is not is refused by
    name (a replacement character stored instead would change what was said)."""
    if body.isascii():
        fields = _ascii_form(body.decode("ascii"))
        if fields:
            return Decoded([fields])
    return decode_form_by_bytes(body)


def _ascii_form(text: str) -> dict[str, str] | None:
    """The fields of a form whose text is ASCII (what asterCC sends nearly always is),
    in one pass, as `decode_form_by_bytes` reads them; None when that one must say why
    not: too many fields, a name or value not UTF-8 once decoded, no field at all."""
    if text.count("&") >= MAX_FORM_FIELDS:
        return None
    fields: dict[str, str] = {}
    try:
        for pair in text.split("&"):
            if not pair:
                continue
            name, _, value = pair.partition("=")
            if "+" in name:
                name = name.replace("+", " ")
            if "%" in name:
                name = unquote_to_bytes(name).decode("utf-8")
            if "+" in value:
                value = value.replace("+", " ")
            if "%" in value:
                value = unquote_to_bytes(value).decode("utf-8")
            fields[name] = value
    except UnicodeDecodeError:
        return None
    return fields


def decode_form_by_bytes(body: bytes) -> Decoded | BodyError:
    """`decode_form` the long way, for any body: every field percent-decoded to bytes,
    then read as UTF-8 (and named if it is not)."""
    # Latin-1 maps bytes to characters one to one: percent-decoding then gives back the
    # exact bytes sent, to be read as UTF-8 field by field.
    try:
        pairs = parse_qsl(
            body.decode("latin-1"),
            keep_blank_values=True,
            encoding="latin-1",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError as error:
        return BodyError(f"form body cannot be read: {error}", 413)
    if not pairs:
        return BodyError("body is empty: expected form fields")
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]
    return Decoded([text_fields(raw)])


def text_fields(pairs: list[tuple[bytes, bytes]]) -> Item:
    """Byte pairs as text fields; a refusal naming each field that is not UTF-8."""
    fields: dict[str, str] = {}
    errors: list[FieldError] = []
    for raw_name, raw_value in pairs:
        name = raw_name.decode("utf-8", errors="backslashreplace")
        try:
            raw_name.decode("utf-8")
            fields[name] = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            errors.append(FieldError(name, "is not valid UTF-8"))
    return Rejection(tuple(errors)) if errors else fields


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
