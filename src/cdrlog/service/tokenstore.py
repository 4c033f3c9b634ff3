"""The API tokens a receiver knows: created, revoked and listed in the database, and
held in memory as a snapshot of the active ones, so that checking a push's token costs
no query and survives a database outage."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from cdrlog.core.pushauth import EVERY_TEAM, PushMode, PushModes, TeamPushAuth, rollout
from cdrlog.core.tokens import Grant, TokenScope, digest, new_token, shown_prefix
from cdrlog.service.clock import Clock
from cdrlog.store import apitokens, pushauth

log = logging.getLogger(__name__)

MAX_REFUSED_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Created:
    id: int
    token: str
    # The first token of an install starts the rollout: pushes without a token stay
    # accepted (mode observe) until the operator requires them.
    began_rollout: bool = False


@dataclass(frozen=True, slots=True)
class _Known:
    """The active tokens as last read, by hash, and when to read them again."""

    grants: Mapping[str, Grant]
    modes: Mapping[str, PushMode]
    until: float
    stale: bool = False  # the database could not be read last time


class TokenStore:
    """Tokens in the database, held in memory as a snapshot of the active ones, so a
    push costs no query and a database outage does not turn pushes away (they go to
    the spool): while the database is away the last snapshot stays in force.
    A new or revoked token takes effect within `cache_seconds` (at once in this process).
    """

    def __init__(self, engine: Engine, clock: Clock, cache_seconds: float = 2.0) -> None:
        self.engine = engine
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._known: _Known | None = None
        # Bumped by every change made here: a snapshot read before it is not kept.
        self._generation = 0
        self._lock = threading.Lock()
        # Hashes of tokens found unknown or revoked, until when: a client repeating a
        # bad token costs one query per `cache_seconds`, not one per request.
        self._refused: dict[str, float] = {}

    def create(
        self, scope: TokenScope, team: str | None, note: str | None = None, *, rollout: bool = False
    ) -> Created:
        """A new token. With `rollout`, the install's first token leaves pushes without a
        token accepted and counted (mode observe for every team) instead of refusing
        them at once: the operator's asterCC URLs do not all change in the same second."""
        if scope.has_team != (team is not None):
            raise ValueError("push and read tokens need a team; admin and metrics tokens have none")
        token = new_token(secrets.token_bytes(32))
        values = {
            "token_hash": digest(token),
            "shown_as": shown_prefix(token),
            "scope": scope.value,
            "orgidentity": team,
            "note": note,
            "created_at": self.clock(),
        }
        began = (
            rollout
            and not apitokens.active_grants(self.engine)
            and (EVERY_TEAM not in pushauth.modes(self.engine))
        )
        if began:
            pushauth.set_mode(self.engine, EVERY_TEAM, PushMode.OBSERVE, self.clock())
        token_id = apitokens.insert(self.engine, values)
        self.forget()
        return Created(token_id, token, began)

    def revoke(self, token_id: int) -> bool:
        revoked = apitokens.revoke(self.engine, token_id, self.clock())
        self.forget()
        return revoked

    def listing(self) -> list[dict[str, Any]]:
        return apitokens.rows(self.engine)

    def any_active(self) -> bool:
        return bool(self.known().grants)

    def push_modes(self) -> PushModes:
        known = self.known()
        return PushModes(known.modes, bool(known.grants))

    def set_push_mode(self, team: str, mode: PushMode | None) -> None:
        """Set a team's mode (`EVERY_TEAM`: the default); None clears the team's own."""
        pushauth.set_mode(self.engine, team, mode, self.clock())
        self.forget()

    def rollout(self) -> list[TeamPushAuth]:
        """Each team's mode, push tokens and pushes without a token, read afresh."""
        grants = apitokens.active_grants(self.engine)
        modes = PushModes(pushauth.modes(self.engine), bool(grants))
        tokens = Counter(
            g.team for g in grants.values() if g.scope is TokenScope.PUSH and g.team is not None
        )
        tokenless = {
            row["team"]: (row["tokenless_pushes"], row["last_tokenless_at"])
            for row in pushauth.rows(self.engine)
            if row["tokenless_pushes"]
        }
        return rollout(modes, tokens, tokenless)

    def default_push_mode(self) -> PushMode:
        """The mode of teams without their own, as stored now."""
        grants = apitokens.active_grants(self.engine)
        return PushModes(pushauth.modes(self.engine), bool(grants)).of(None)

    def grant(self, token: str) -> Grant | None:
        """What `token` allows, or None for an unknown or revoked token."""
        key = digest(token)
        known = self.known()
        found = known.grants.get(key)
        if found is not None or known.stale or self._refused_lately(key):
            return found
        # Perhaps made after the snapshot was read (`cdrlog token create` a moment ago).
        if apitokens.is_active(self.engine, key):
            self.forget()
            return self.known().grants.get(key)
        with self._lock:
            if len(self._refused) > MAX_REFUSED_KEPT:
                self._refused.clear()  # garbage tokens must not grow memory without bound
            self._refused[key] = time.monotonic() + self.cache_seconds
        return None

    def answers_from_memory(self, token: str | None) -> bool:
        """Whether checking `token` reads no database (async callers ask first, and
        check in a thread when it does)."""
        known = self._known
        if known is None or time.monotonic() >= known.until:
            return False
        if not token:
            return True
        key = digest(token)
        return key in known.grants or known.stale or self._refused_lately(key)

    def _refused_lately(self, key: str) -> bool:
        until = self._refused.get(key)
        return until is not None and time.monotonic() < until

    def known(self) -> _Known:
        """The snapshot, read again when it is due. Raises the database's error only
        when no snapshot was ever read."""
        known = self._known
        if known is not None and time.monotonic() < known.until:
            return known
        # One reader at a time; the others go on with the snapshot they have.
        if not self._lock.acquire(blocking=known is None):
            return known  # type: ignore[return-value]  # not None: blocking otherwise
        try:
            return self._reload()
        finally:
            self._lock.release()

    def forget(self) -> None:
        with self._lock:
            self._generation += 1
            self._known = None
            self._refused.clear()

    def _reload(self) -> _Known:
        known, generation = self._known, self._generation
        if known is not None and time.monotonic() < known.until:
            return known  # read by another thread meanwhile
        try:
            grants = apitokens.active_grants(self.engine)
            modes = pushauth.modes(self.engine)
        except (OperationalError, InterfaceError) as error:
            if known is None:
                raise
            if not known.stale:
                log.warning("tokens cannot be read (%s); the last known ones stay in force", error)
            # Tried again after a while, not by every request while the database is away.
            until = time.monotonic() + max(self.cache_seconds, 1.0)
            retry = _Known(known.grants, known.modes, until, True)
            self._known = retry if generation == self._generation else None
            return retry
        fresh = _Known(grants, modes, time.monotonic() + self.cache_seconds)
        if generation == self._generation:
            self._known = fresh
        return fresh
