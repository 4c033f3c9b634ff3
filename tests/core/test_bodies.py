"""decode_form: a form body read in one pass when it is plain ASCII, exactly as the long
way (percent-decoding to bytes, each field read as UTF-8) reads it."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrlog.core.bodies import (
    MAX_FORM_FIELDS,
    BodyError,
    Decoded,
    decode_form,
    decode_form_by_bytes,
)
from cdrlog.core.events import Rejection


def fields_of(decoded: Decoded | BodyError) -> dict[str, str] | Rejection | BodyError:
    if isinstance(decoded, BodyError):
        return decoded
    [item] = decoded.items
    return item


# Bytes a form may hold: its delimiters, escapes (good and broken UTF-8), and others.
form_bytes = st.lists(
    st.one_of(
        st.sampled_from([b"&", b"=", b"+", b"%", b"%2", b"%41", b"%e4%b8%ad", b"%ff", b"%c3"]),
        st.binary(max_size=3),
        st.text(max_size=4).map(str.encode),
    ),
    max_size=24,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(body=form_bytes)
def test_any_body_decodes_as_the_long_way_decodes_it(body: bytes) -> None:
    assert fields_of(decode_form(body)) == fields_of(decode_form_by_bytes(body))


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(st.tuples(st.text(), st.text()), max_size=10))
def test_any_encoded_form_decodes_to_its_fields(fields: list[tuple[str, str]]) -> None:
    body = urlencode(fields).encode()
    expected = dict(fields) if fields else None
    decoded = decode_form(body)
    if expected is None or not body:
        assert isinstance(decoded, BodyError)
    else:
        assert fields_of(decoded) == fields_of(decode_form_by_bytes(body))


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (b"a=1&b=2&a=3", {"a": "3", "b": "2"}),  # the last value, at the first place
        (b"a+b=c+d&e=", {"a b": "c d", "e": ""}),
        (b"flag&&x=%3D%26", {"flag": "", "x": "=&"}),
        (b"name=" + quote("中文").encode(), {"name": "中文"}),
        (b"=", {"": ""}),
    ],
)
def test_form_fields(body: bytes, fields: dict[str, str]) -> None:
    assert fields_of(decode_form(body)) == fields


def test_a_value_that_is_not_utf8_is_named() -> None:
    refused = fields_of(decode_form(b"good=1&bad=%ff"))
    assert isinstance(refused, Rejection)
    assert refused.as_dict() == {"bad": "is not valid UTF-8"}


def test_too_many_fields_is_a_413() -> None:
    body = b"&".join(b"f%d=1" % n for n in range(MAX_FORM_FIELDS + 1))
    refused = decode_form(body)
    assert isinstance(refused, BodyError)
    assert refused.status == 413
    assert isinstance(decode_form(body.rpartition(b"&")[0]), Decoded)


@pytest.mark.parametrize("body", [b"", b"&&"])
def test_a_body_without_fields_is_refused(body: bytes) -> None:
    refused = decode_form(body)
    assert isinstance(refused, BodyError)
    assert refused.status == 400
