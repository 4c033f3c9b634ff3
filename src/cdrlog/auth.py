"""Who may do what: tokens presented with a request, checked against the token store.

With no token in the store the service is open (it then listens on loopback only,
unless the operator says otherwise). Once any token exists, every push needs a push
token of its team (or an admin token) and every read a read token (which sees only its
team) or an admin token. A token comes as `Authorization: Bearer ...`, as `?token=...`
(asterCC can only be given a URL), or as the dashboard's session cookie.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass
from math import ceil
from typing import Any

from fastapi import HTTPException, Request
from sqlalchemy import Engine, func, select, update

from cdrlog.database import in_transaction, read_only
from cdrlog.ingest import Clock
from cdrlog.limits import Buckets
from cdrlog.scope import Scope
from cdrlog.settings import Settings
from cdrlog.storage import api_token
from cdrlog.tokens import Grant, TokenScope, digest, new_token, same_digest, shown_prefix

SESSION_COOKIE = "cdrlog_session"
CSRF_COOKIE = "cdrlog_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Created:
    id: int
    token: str


class TokenStore:
    """Tokens in the database, with a short cache so a push costs no extra query.
    A revocation takes effect within `cache_seconds`."""

    def __init__(self, engine: Engine, clock: Clock, cache_seconds: float = 2.0) -> None:
        self.engine = engine
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._grants: dict[str, tuple[float, Grant | None]] = {}
        self._active: tuple[float, bool] = (0.0, False)
        self._lock = threading.Lock()

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
        now = time.monotonic()
        expires, active = self._active
        if now < expires:
            return active
        query = select(func.count()).select_from(api_token).where(api_token.c.revoked_at.is_(None))
        with self.engine.connect() as connection:
            active = read_only(connection).execute(query).scalar_one() > 0
        self._active = (now + self.cache_seconds, active)
        return active

    def grant(self, token: str) -> Grant | None:
        """What `token` allows, or None for an unknown or revoked token."""
        key = digest(token)
        now = time.monotonic()
        cached = self._grants.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        found = self._lookup(key)
        with self._lock:
            if len(self._grants) > 10_000:
                self._grants.clear()  # unbounded garbage tokens must not grow memory
            self._grants[key] = (now + self.cache_seconds, found)
        return found

    def forget(self) -> None:
        self._grants.clear()
        self._active = (0.0, False)

    def _lookup(self, key: str) -> Grant | None:
        query = select(api_token).where(api_token.c.token_hash == key)
        with self.engine.connect() as connection:
            row = read_only(connection).execute(query).first()
        if row is None or row.revoked_at is not None or not same_digest(row.token_hash, key):
            return None
        return Grant(token_id=row.id, scope=TokenScope(row.scope), team=row.orgidentity)


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
