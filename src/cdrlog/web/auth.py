"""Who may do what: tokens presented with a request, checked against the token store.

With no token in the store the service is open (it then listens on loopback only,
unless the operator says otherwise). Once any token exists, every read needs a read
token (which sees only its team) or an admin token, and a push needs a push token of
its team (or an admin token) unless the team's push-auth mode still takes pushes
without one (`cdrlog.core.pushauth`). A token comes as `Authorization: Bearer ...`, as
`?token=...` (asterCC can only be given a URL), or as the dashboard's session cookie.
"""

from __future__ import annotations

import functools
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from math import ceil

from fastapi import HTTPException, Request
from starlette.datastructures import QueryParams
from starlette.requests import cookie_parser
from starlette.types import Scope as AsgiScope

from cdrlog.core.scope import Scope
from cdrlog.core.tokens import Grant, TokenScope, csrf_value
from cdrlog.web.deps import ServiceApp, app_of

SESSION_COOKIE = "cdrlog_session"
CSRF_COOKIE = "cdrlog_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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


@dataclass(frozen=True, slots=True)
class Caller:
    """What deciding on a request reads of it, taken once: from a `Request`
    (`caller_of`), or straight from the ASGI scope on the Push event URLs, which are
    served without one."""

    method: str
    client: str  # the peer's address as the server saw it; "" when unknown
    token: str | None
    from_cookie: bool
    headers: Mapping[str, str]  # by lower-case name


def caller_of(request: Request) -> Caller:
    client = request.client.host if request.client else ""
    return Caller(request.method, client, *presented(request), request.headers)


def caller_of_scope(scope: AsgiScope) -> Caller:
    """`caller_of` without a `Request`: the same token, found in the same order."""
    pairs = list(scope["headers"])
    # A repeated header counts by its first value, as a `Request`'s headers give it.
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in pairs[::-1]}
    client = scope.get("client")
    address = client[0] if client else ""
    method: str = scope["method"]
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return Caller(method, address, authorization[7:].strip(), False, headers)
    query_string = scope.get("query_string")
    if query_string:
        query = QueryParams(query_string).get("token")
        if query:
            return Caller(method, address, query, False, headers)
    cookies: dict[str, str] = {}
    for name, value in pairs:
        if name == b"cookie":
            cookies.update(cookie_parser(value.decode("latin-1")))
    cookie = cookies.get(SESSION_COOKIE)
    return Caller(method, address, cookie or None, bool(cookie), headers)


def required_grant(request: Request) -> Grant | None:
    """The request's grant; None when the service is open. 401 without a valid token."""
    return grant_of(app_of(request), caller_of(request))


def grant_of(app: ServiceApp, caller: Caller) -> Grant | None:
    """`required_grant`, for a caller read from its request already."""
    store = app.services.tokens
    if not store.any_active():
        if _may_be_open(app, caller.client):
            _refuse_browsers_elsewhere(app, caller)
            return None
        raise HTTPException(
            401,
            "no token exists and this service is not on loopback only: create one with "
            "`cdrlog token create`",
            {"WWW-Authenticate": "Bearer"},
        )
    token = caller.token
    if not token:
        raise HTTPException(401, "a token is required", {"WWW-Authenticate": "Bearer"})
    found = store.grant(token)
    if found is None:
        raise HTTPException(401, "unknown or revoked token", {"WWW-Authenticate": "Bearer"})
    if caller.from_cookie and caller.method in UNSAFE_METHODS:
        # The token came from the session cookie, so it is that cookie's value.
        _check_csrf_of(token, caller.headers.get(CSRF_HEADER, ""))
    wait = app.token_buckets.take(str(found.token_id))
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
        raise HTTPException(403, f"a {found.scope.value} token cannot read calls")
    return Scope(teams)


def admin_only(request: Request) -> None:
    found = required_grant(request)
    if found is not None and found.scope is not TokenScope.ADMIN:
        raise HTTPException(403, "this needs an admin token")


def metrics_reader(request: Request) -> None:
    found = required_grant(request)
    if found is not None and found.scope not in (TokenScope.ADMIN, TokenScope.METRICS):
        raise HTTPException(403, "this needs a metrics or admin token")


@dataclass(frozen=True, slots=True)
class Pusher:
    """Who a push may write for: the team (None: each event names its own), and whether
    it came without a token while tokens exist (its team's mode took it)."""

    team: str | None
    tokenless: bool = False


def pushable_team(app: ServiceApp, caller: Caller, team: str | None) -> Pusher:
    """The team a push may write: the URL's, checked against the token; for the shared
    URL, a push token's own team (so each event's orgidentity must be it). Without a
    token, the team's push-auth mode decides (for the shared URL, each event's team's,
    once the body is read)."""
    modes = app.services.tokens.push_modes()
    if modes.any_token and not caller.token:
        takes = modes.of(team).takes_tokenless if team else modes.admits_some_tokenless()
        if not takes:
            raise HTTPException(
                401,
                f"team {team!r} needs a push token" if team else "a push token is required",
                {"WWW-Authenticate": "Bearer"},
            )
        # Open to any sender on the network, so not to a page of another site.
        _refuse_other_sites(caller, _host_name(caller.headers.get("host", "")))
        return Pusher(team, tokenless=True)
    found = grant_of(app, caller)
    if found is None or found.scope is TokenScope.ADMIN:
        return Pusher(team)
    if found.scope is not TokenScope.PUSH:
        raise HTTPException(403, "this token may not push events")
    if team is None:
        return Pusher(found.team)
    if not found.may_push(team):
        raise HTTPException(403, f"this token may not push events for team {team!r}")
    return Pusher(team)


def _may_be_open(app: ServiceApp, client: str) -> bool:
    """Without tokens, only loopback is served (unless the operator allowed more): the
    bind address, and the client as a reverse proxy reports it."""
    settings = app.services.settings
    if settings.allow_open:
        return True
    return is_loopback(settings.host) and (is_loopback(client) or not _is_address(client))


def _refuse_browsers_elsewhere(app: ServiceApp, caller: Caller) -> None:
    """Without tokens, only requests a page on another site cannot make are served.

    DNS rebinding points a name the attacker owns at this address, so its requests
    name that host: only addresses, localhost and the configured names are served.
    A page on another origin can still send a form POST (no preflight): a browser
    marks it with `Origin` or `Sec-Fetch-Site`, which asterCC's own POSTs never carry.
    """
    if not _is_address(caller.client):
        return  # called in-process (tests, ASGI embedding): no browser involved
    host = _host_name(caller.headers.get("host", ""))
    # Browsers always name the host; a client that names none is no page's.
    allowed = app.services.settings.allowed_hosts
    if host and not (host == "localhost" or _is_address(host) or host in allowed):
        raise HTTPException(
            403, "this Host is not served without tokens: add it to CDRLOG_ALLOWED_HOSTS"
        )
    _refuse_other_sites(caller, host)


def _refuse_other_sites(caller: Caller, host: str) -> None:
    """A request a page of another site made, which asterCC's own POSTs never are."""
    if caller.method not in UNSAFE_METHODS:
        return
    origin = caller.headers.get("origin")
    fetched_from = caller.headers.get("sec-fetch-site", "")
    if fetched_from in ("cross-site", "same-site") or (
        origin is not None and _host_name(origin.partition("://")[2]) != host
    ):
        raise HTTPException(403, "a request from another site's page is refused")


def _host_name(authority: str) -> str:
    """`host[:port]` or `[v6]:port` to the bare, lower-case host."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


# Both are asked of every push with the same few addresses: parsing one costs more than
# the rest of the check. Bounded, as the addresses are the clients'.
@functools.lru_cache(maxsize=4096)
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=4096)
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
    """The header must carry the value derived from this session's own token: one
    learnt from another session is worth nothing here."""
    _check_csrf_of(request.cookies.get(SESSION_COOKIE, ""), request.headers.get(CSRF_HEADER, ""))


def _check_csrf_of(session: str, given: str) -> None:
    if not session or not secrets.compare_digest(csrf_value(session), given):
        raise HTTPException(403, "missing or wrong X-CSRF-Token header")
