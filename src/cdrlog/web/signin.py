"""The dashboard's sign-in: a token exchanged for an HTTP-only session cookie.

The cookie holds the token itself (revoking the token ends the session). A second,
readable cookie carries a CSRF value, derived from the token, that state-changing
requests must echo in the `X-CSRF-Token` header when they rely on the session cookie.

Both cookies are `Secure` when the request came over https: directly, or through a
proxy that uvicorn trusts (`FORWARDED_ALLOW_IPS`) saying so in `X-Forwarded-Proto`.
Over plain http they cannot be: a browser drops a `Secure` cookie an http page is
given (loopback aside), and the dashboard would ask for the token again and again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from cdrlog.core.tokens import TokenScope, csrf_value
from cdrlog.web.auth import CSRF_COOKIE, SESSION_COOKIE, check_csrf, presented
from cdrlog.web.deps import services

router = APIRouter(prefix="/api/v1", tags=["session"])
SESSION_SECONDS = 12 * 3600


class SignIn(BaseModel):
    token: str


def _state(request: Request) -> dict[str, Any]:
    store = services(request).tokens
    required = store.any_active()
    token, _ = presented(request)
    found = store.grant(token) if token and required else None
    return {
        "required": required,
        "signed_in": found is not None,
        "scope": found.scope.value if found else None,
        "team": found.team if found else None,
    }


@router.get("/session", summary="Whether the dashboard needs a token, and whose it has")
def session_state(request: Request) -> dict[str, Any]:
    return _state(request)


@router.post("/session", summary="Sign in with a read or admin token (sets a session cookie)")
def sign_in(request: Request, body: SignIn) -> JSONResponse:
    store = services(request).tokens
    found = store.grant(body.token)
    if found is None:
        raise HTTPException(401, "unknown or revoked token")
    if found.scope is TokenScope.PUSH:
        raise HTTPException(403, "a push token cannot read; use a read or admin token")
    csrf = csrf_value(body.token)
    answer = JSONResponse({"signed_in": True, "scope": found.scope.value, "team": found.team})
    secure = _over_https(request)
    answer.set_cookie(
        SESSION_COOKIE,
        body.token,
        max_age=SESSION_SECONDS,
        httponly=True,
        secure=secure,
        samesite="strict",
    )
    answer.set_cookie(CSRF_COOKIE, csrf, max_age=SESSION_SECONDS, secure=secure, samesite="strict")
    return answer


@router.delete("/session", summary="Sign out", dependencies=[Depends(check_csrf)])
def sign_out(request: Request) -> JSONResponse:
    answer = JSONResponse({"signed_in": False})
    # A deletion must carry the attributes the cookie was set with, or the browser
    # keeps the cookie (and an http answer may not touch a Secure one at all).
    secure = _over_https(request)
    answer.delete_cookie(SESSION_COOKIE, secure=secure, httponly=True, samesite="strict")
    answer.delete_cookie(CSRF_COOKIE, secure=secure, samesite="strict")
    return answer


def _over_https(request: Request) -> bool:
    """Whether the browser talks https: uvicorn has already put a trusted proxy's
    `X-Forwarded-Proto` into the scheme, and ignored an untrusted one's."""
    return request.url.scheme == "https"
