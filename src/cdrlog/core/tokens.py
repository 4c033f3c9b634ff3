"""API tokens: what they may do, and how they are made and checked. Pure.

A token is shown once, when it is created; only its SHA-256 is stored. Tokens carry
256 random bits, so a plain hash is enough (no salt or slow hash is needed against
guessing). Presented tokens are looked up by their hash, so timing reveals at most
something about a hash, never about a token.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "cdrlog_"


class TokenScope(StrEnum):
    PUSH = "push"  # post one team's events
    READ = "read"  # read one team's CDRs, events, dead letters and stats
    ADMIN = "admin"  # everything, every team
    METRICS = "metrics"  # the Prometheus metrics only

    @property
    def has_team(self) -> bool:
        return self in (TokenScope.PUSH, TokenScope.READ)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a presented token turned out to allow."""

    token_id: int
    scope: TokenScope
    team: str | None  # None for admin

    def may_push(self, team: str) -> bool:
        return self.scope is TokenScope.ADMIN or (
            self.scope is TokenScope.PUSH and self.team == team
        )

    def readable_teams(self) -> tuple[str, ...] | None:
        """None: every team (admin); else the one team; () for a push token."""
        if self.scope is TokenScope.ADMIN:
            return None
        if self.scope is TokenScope.READ and self.team is not None:
            return (self.team,)
        return ()


def new_token(random_bytes: bytes) -> str:
    """A token from 32 random bytes (the caller draws them from `secrets`)."""
    return PREFIX + random_bytes.hex()


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


def csrf_value(token: str) -> str:
    """The dashboard's CSRF value for a session holding `token`: derived from it, so it
    is bound to that session and needs no storage."""
    return hmac.new(token.encode(), b"cdrlog csrf", hashlib.sha256).hexdigest()


def shown_prefix(token: str) -> str:
    """Enough of a token to tell tokens apart in a listing, too little to use."""
    return token[: len(PREFIX) + 6]
