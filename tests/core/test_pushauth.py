"""Which mode a push meets: the team's own, else the default, else (with tokens) required."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdrlog.core.pushauth import EVERY_TEAM, PushMode, PushModes, rollout

OPEN, OBSERVE, REQUIRED = PushMode.OPEN, PushMode.OBSERVE, PushMode.REQUIRED


@pytest.mark.parametrize(
    ("set_modes", "any_token", "team", "expected"),
    [
        ({}, False, "t1", OPEN),  # no token at all: the open service of the quickstart
        ({EVERY_TEAM: REQUIRED}, False, "t1", OPEN),
        ({}, True, "t1", REQUIRED),  # tokens from before modes existed
        ({}, True, None, REQUIRED),
        ({EVERY_TEAM: OBSERVE}, True, "t1", OBSERVE),
        ({EVERY_TEAM: OBSERVE, "t1": REQUIRED}, True, "t1", REQUIRED),
        ({EVERY_TEAM: OBSERVE, "t1": REQUIRED}, True, "t2", OBSERVE),
        ({EVERY_TEAM: REQUIRED, "t1": OPEN}, True, "t1", OPEN),
        ({EVERY_TEAM: REQUIRED, "t1": OPEN}, True, None, REQUIRED),
    ],
)
def test_the_mode_a_push_meets(
    set_modes: dict[str, PushMode], any_token: bool, team: str | None, expected: PushMode
) -> None:
    assert PushModes(set_modes, any_token).of(team) is expected


def test_the_shared_url_is_read_when_any_team_takes_tokenless_pushes() -> None:
    assert PushModes({}, False).admits_some_tokenless()
    assert not PushModes({}, True).admits_some_tokenless()
    assert not PushModes({EVERY_TEAM: REQUIRED}, True).admits_some_tokenless()
    assert PushModes({EVERY_TEAM: REQUIRED, "t1": OBSERVE}, True).admits_some_tokenless()


def test_the_rollout_lists_every_team_it_knows_of_once() -> None:
    seen = datetime(2026, 12, 3, 10, tzinfo=UTC)
    teams = rollout(
        PushModes({EVERY_TEAM: OBSERVE, "b": REQUIRED}, True),
        {"a": 1, "b": 2},
        {"c": (7, seen)},
    )
    assert [(t.team, t.own_mode, t.mode, t.push_tokens, t.tokenless_pushes) for t in teams] == [
        ("a", None, OBSERVE, 1, 0),
        ("b", REQUIRED, REQUIRED, 2, 0),
        ("c", None, OBSERVE, 0, 7),
    ]
    assert teams[2].last_tokenless_at == seen
