"""Who may do what: tokens presented with a request, checked against the token store.

With no token in the store the service is open (it then listens on loopback only,
unless the operator says otherwise). Once any token exists, every push needs a push
token of its team (or an admin token) and every read a read token (which sees only its
team) or an admin token. A token comes as `Authorization: Bearer ...`, as `?token=...`
(asterCC can only be given a URL), or as the dashboard's session cookie.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from math import ceil
from typing import Any

from fastapi import HTTPException, Request
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from cdrlog.database import in_transaction, read_only
from cdrlog.ingest import Clock
from cdrlog.limits import Buckets
from cdrlog.scope import Scope
from cdrlog.settings import Settings
from cdrlog.storage import api_token
from cdrlog.tokens import Grant, TokenScope, digest, new_token, shown_prefix

SESSION_COOKIE = "cdrlog_session"
CSRF_COOKIE = "cdrlog_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

log = logging.getLogger(__name__)

MAX_REFUSED_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Created:
    id: int
    token: str


@dataclass(frozen=True, slots=True)
class _Known:
    """The active tokens as last read, by hash, and when to read them again."""

    grants: Mapping[str, Grant]
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

    def create(self, scope: TokenScope, team: str | None, note: str | None = None) -> Created:
        if (scope is TokenScope.ADMIN) != (team is None):
            raise ValueError("push and read tokens need a team; admin tokens have none")
        token = new_token(secrets.token_bytes(32))
        values = {
            "token_hash": digest(token),
            "shown_as": shown_prefix(token),
            "scope": scope.value,
            "orgidentity": team,
            "note": note,
            "created_at": self.clock(),
        }
        key = in_transaction(
            self.engine, lambda c: c.execute(api_token.insert(), values).inserted_primary_key
        )
        self.forget()
        return Created(int(key[0]) if key else 0, token)

    def revoke(self, token_id: int) -> bool:
        statement = (
            update(api_token)
            .where(api_token.c.id == token_id, api_token.c.revoked_at.is_(None))
            .values(revoked_at=self.clock())
        )
        revoked = in_transaction(self.engine, lambda c: c.execute(statement).rowcount)
        self.forget()
        return bool(revoked)

    def listing(self) -> list[dict[str, Any]]:
        query = select(api_token).order_by(api_token.c.id)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in read_only(connection).execute(query)]

    def any_active(self) -> bool:
        return bool(self.known().grants)

    def grant(self, token: str) -> Grant | None:
        """What `token` allows, or None for an unknown or revoked token."""
        key = digest(token)
        known = self.known()
        found = known.grants.get(key)
        if found is not None or known.stale or self._refused_lately(key):
            return found
        # Perhaps made after the snapshot was read (`cdrlog token create` a moment ago).
        query = select(api_token.c.id).where(
            api_token.c.token_hash == key, api_token.c.revoked_at.is_(None)
        )
        with self.engine.connect() as connection:
            active = read_only(connection).execute(query).first() is not None
        if active:
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
        columns = api_token.c
        query = select(columns.id, columns.token_hash, columns.scope, columns.orgidentity)
        try:
            with self.engine.connect() as connection:
                rows = read_only(connection).execute(query.where(columns.revoked_at.is_(None)))
                grants = {
                    row.token_hash: Grant(row.id, TokenScope(row.scope), row.orgidentity)
                    for row in rows
                }
        except (OperationalError, InterfaceError) as error:
            if known is None:
                raise
            if not known.stale:
                log.warning("tokens cannot be read (%s); the last known ones stay in force", error)
            # Tried again after a while, not by every request while the database is away.
            retry = _Known(known.grants, time.monotonic() + max(self.cache_seconds, 1.0), True)
            self._known = retry if generation == self._generation else None
            return retry
        fresh = _Known(grants, time.monotonic() + self.cache_seconds)
        if generation == self._generation:
            self._known = fresh
        return fresh


def presented(request: Request) -> tuple[str | None, bool]:
    """The token the request carries, and whether it came from the session cookie."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip(), False
    query = request.query_params.get("token")
    if query:
        return query, False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


def _store(request: Request) -> TokenStore:
    store: TokenStore = request.app.state.tokens
    return store


def required_grant(request: Request) -> Grant | None:
    """The request's grant; None when the service is open. 401 without a valid token."""
    store = _store(request)
    if not store.any_active():
        if _may_be_open(request):
            return None
        raise HTTPException(
            401,
            "no token exists and this service is not on loopback only: create one with "
            "`cdrlog token create`",
            {"WWW-Authenticate": "Bearer"},
        )
    token, from_cookie = presented(request)
    if not token:
        raise HTTPException(401, "a token is required", {"WWW-Authenticate": "Bearer"})
    found = store.grant(token)
    if found is None:
        raise HTTPException(401, "unknown or revoked token", {"WWW-Authenticate": "Bearer"})
    if from_cookie and request.method in UNSAFE_METHODS:
        _check_csrf(request)
    buckets: Buckets = request.app.state.token_buckets
    wait = buckets.take(str(found.token_id))
    if wait:
        raise HTTPException(
            429, "too many requests with this token", {"Retry-After": str(ceil(wait))}
        )
    return found


def reader_scope(request: Request) -> Scope:
    """The teams this reader may see (dependency of every read endpoint)."""
    found = required_grant(request)
    if found is None:
        return Scope(None)
    teams = found.readable_teams()
    if teams == ():
        raise HTTPException(403, "this token may only push events")
    return Scope(teams)


def admin_only(request: Request) -> None:
    found = required_grant(request)
    if found is not None and found.scope is not TokenScope.ADMIN:
        raise HTTPException(403, "this needs an admin token")


def pushable_team(request: Request, team: str | None) -> str | None:
    """The team a push may write: the URL's, checked against the token; for the generic
    URL, a push token's own team (so each event's orgidentity must be it)."""
    found = required_grant(request)
    if found is None or found.scope is TokenScope.ADMIN:
        return team
    if found.scope is not TokenScope.PUSH:
        raise HTTPException(403, "this token may not push events")
    if team is None:
        return found.team
    if not found.may_push(team):
        raise HTTPException(403, f"this token may not push events for team {team!r}")
    return team


def _may_be_open(request: Request) -> bool:
    """Without tokens, only loopback is served (unless the operator allowed more): the
    bind address, and the client as a reverse proxy reports it."""
    settings: Settings = request.app.state.settings
    if settings.allow_open:
        return True
    client = request.client.host if request.client else ""
    return is_loopback(settings.host) and (is_loopback(client) or not _is_address(client))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_address(host: str) -> bool:
    """In-process callers (tests, ASGI embedding) have a name, not an address."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_csrf(request: Request) -> None:
    """Cookie-authenticated changes must echo the readable CSRF cookie in a header."""
    if request.cookies.get(SESSION_COOKIE):
        _check_csrf(request)


def _check_csrf(request: Request) -> None:
    expected = request.cookies.get(CSRF_COOKIE, "")
    given = request.headers.get(CSRF_HEADER, "")
    if not expected or not secrets.compare_digest(expected, given):
        raise HTTPException(403, "missing or wrong X-CSRF-Token header")
