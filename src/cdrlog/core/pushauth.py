"""Whether a team's pushes need a token: the rollout from an open service to a secured
one, one team at a time, without losing a call. Pure.

asterCC's Push event URLs cannot all be changed in the same second, so requiring a
token the moment one exists would refuse (and lose) every call of every team whose URL
does not carry it yet. Each team therefore has a mode:

- `open`: a push without a token is accepted.
- `observe`: a push without a token is accepted, stored and counted, so the operator
  sees which teams still push without one, and since when they stopped.
- `required`: a push without a token is refused (401).

A push that presents a token is checked in every mode: an unknown or revoked token, or
another team's, is refused, since it is a mistake the operator must see. Modes apply
once any token exists; before that the whole service is open (on loopback only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# The mode of every team that has none of its own.
EVERY_TEAM = "*"


class PushMode(StrEnum):
    OPEN = "open"
    OBSERVE = "observe"
    REQUIRED = "required"

    @property
    def takes_tokenless(self) -> bool:
        return self is not PushMode.REQUIRED


@dataclass(frozen=True, slots=True)
class PushModes:
    """The modes set by the operator, by team (`EVERY_TEAM` for the rest)."""

    by_team: Mapping[str, PushMode]
    any_token: bool

    def of(self, team: str | None) -> PushMode:
        """The mode a push for `team` meets (None: a push whose team is not yet known,
        on the URL shared by every team). Without a mode of its own a team has the
        default; without a default, tokens are required once one exists (as before
        modes existed, so an upgraded install does not open up)."""
        if not self.any_token:
            return PushMode.OPEN
        if team is not None and team in self.by_team:
            return self.by_team[team]
        return self.by_team.get(EVERY_TEAM, PushMode.REQUIRED)

    def admits_some_tokenless(self) -> bool:
        """Whether any push without a token could be accepted (the shared URL is
        checked per event once its body is read)."""
        return not self.any_token or any(m.takes_tokenless for m in self.by_team.values())


@dataclass(frozen=True, slots=True)
class TeamPushAuth:
    """Where one team stands in the rollout."""

    team: str
    own_mode: PushMode | None  # None: the default applies
    mode: PushMode
    push_tokens: int
    tokenless_pushes: int  # events accepted without a token since counting began
    last_tokenless_at: datetime | None


def rollout(
    modes: PushModes,
    push_tokens: Mapping[str, int],
    tokenless: Mapping[str, tuple[int, datetime | None]],
) -> list[TeamPushAuth]:
    """Each team that has a mode, a push token or a tokenless push, by name."""
    teams = sorted((set(modes.by_team) | set(push_tokens) | set(tokenless)) - {EVERY_TEAM})
    return [
        TeamPushAuth(
            team=team,
            own_mode=modes.by_team.get(team),
            mode=modes.of(team),
            push_tokens=push_tokens.get(team, 0),
            tokenless_pushes=tokenless.get(team, (0, None))[0],
            last_tokenless_at=tokenless.get(team, (0, None))[1],
        )
        for team in teams
    ]
