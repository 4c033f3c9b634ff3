"""Subscribing and testing hooks, for the CLI and the admin API alike: a target is
checked for its form and, unless private targets are allowed, for where it leads; a
Standard Webhooks secret is made when none is given."""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from cdrlog.core.hooks import Kind, Subscription
from cdrlog.core.targets import check_target
from cdrlog.service.clock import Clock
from cdrlog.service.senders import Message, SendFailed, body_of, sender_for
from cdrlog.service.targets import TargetRefused, resolve_and_check
from cdrlog.store import hooks

SECRET_PREFIX = "whsec_"
TEST_KIND = "hook.test"


class HookRefused(ValueError):
    """A subscription that cannot be made; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class Subscribed:
    subscription: Subscription
    secret: str  # shown once


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 24 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def check_secret(secret: str) -> str:
    body = secret.removeprefix(SECRET_PREFIX)
    if not secret.startswith(SECRET_PREFIX):
        raise HookRefused("secret: a Standard Webhooks secret starts with whsec_")
    try:
        raw = base64.b64decode(body, validate=True)
    except binascii.Error:
        raise HookRefused("secret: what follows whsec_ is not base64") from None
    if not 24 <= len(raw) <= 64:
        raise HookRefused("secret: between 24 and 64 bytes of key, in base64")
    return secret


def subscribe(
    engine: Engine,
    clock: Clock,
    target: str,
    *,
    team: str | None,
    kinds: Sequence[Kind],
    secret: str | None,
    note: str | None,
    allow_private: bool,
) -> Subscribed:
    chosen = check_secret(secret) if secret else new_secret()
    try:
        check_target(target)
        resolve_and_check(target, allow_private)
    except (ValueError, TargetRefused) as error:
        raise HookRefused(str(error)) from None
    made = hooks.add(engine, team, target, kinds, chosen, clock(), note)
    return Subscribed(made, chosen)


def send_test(
    engine: Engine, clock: Clock, hook_id: int, timeout: float, allow_private: bool
) -> str:
    """Send a `hook.test` message to a hook now; what the target answered. Raises
    HookRefused if there is no such hook, SendFailed if the target did not take it."""
    found = hooks.find(engine, hook_id)
    secret = hooks.secret_of(engine, hook_id)
    if found is None or secret is None:
        raise HookRefused(f"no hook {hook_id}")
    moment = clock()
    data = {"hook": found.id, "team": found.team, "kinds": list(found.kinds)}
    team = found.team or "all"
    message = Message(
        f"msg_test_{uuid.uuid4().hex}", TEST_KIND, team, body_of(TEST_KIND, 0, moment, data)
    )

    async def run() -> None:
        sender = sender_for(found.target, secret, timeout, allow_private)
        try:
            await sender.send(message, moment)
        finally:
            await sender.close()

    asyncio.run(run())
    return f"delivered {message.id}"


__all__ = ["HookRefused", "SendFailed", "Subscribed", "send_test", "subscribe"]
