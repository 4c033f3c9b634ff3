"""Sending one message to a hook's target: an HTTP POST signed as Standard Webhooks
specifies, or a persistent RabbitMQ message with the same body and headers, ended by
the broker's confirm. Either raises `SendFailed` naming what went wrong."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx
from standardwebhooks.webhooks import Webhook

from cdrlog.core.hooks import routing_key
from cdrlog.core.targets import AMQP_SCHEMES, shown
from cdrlog.service.amqp import AmqpError, AmqpPublisher
from cdrlog.service.targets import TargetRefused, checked

USER_AGENT = "cdrlog-hooks"


class SendFailed(Exception):
    """A delivery that did not end: the receiver's status, a timeout, a refusal."""


@dataclass(frozen=True, slots=True)
class Message:
    id: str  # webhook-id: one per (subject, version)
    kind: str
    team: str
    body: bytes

    def headers(self, secret: str, moment: datetime) -> dict[str, str]:
        """The Standard Webhooks headers, signed over id, timestamp and body."""
        timestamp = moment.replace(microsecond=0)
        return {
            "webhook-id": self.id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": Webhook(secret).sign(self.id, timestamp, self.body.decode()),
        }


def body_of(kind: str, version: int, moment: datetime, data: Any) -> bytes:
    """What every target receives: Standard Webhooks' envelope (type, timestamp, data)
    with the version of the subject it carries."""
    envelope = {"type": kind, "timestamp": moment.isoformat(), "version": version, "data": data}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


class Sender(Protocol):
    async def send(self, message: Message, moment: datetime) -> None: ...

    async def close(self) -> None: ...


class WebhookSender:
    def __init__(self, target: str, secret: str, timeout: float, allow_private: bool) -> None:
        self.target = target
        self.secret = secret
        self.allow_private = allow_private
        # Redirects are not followed: a redirect could lead past the address check.
        self.client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, headers={"user-agent": USER_AGENT}
        )

    async def send(self, message: Message, moment: datetime) -> None:
        try:
            await checked(self.target, self.allow_private)
        except TargetRefused as refused:
            raise SendFailed(str(refused)) from None
        headers = message.headers(self.secret, moment) | {"content-type": "application/json"}
        try:
            answer = await self.client.post(self.target, content=message.body, headers=headers)
        except httpx.TimeoutException:
            raise SendFailed(f"no answer from {shown(self.target)} in time") from None
        except httpx.HTTPError as error:
            raise SendFailed(f"{type(error).__name__} to {shown(self.target)}") from None
        if not 200 <= answer.status_code < 300:
            raise SendFailed(f"HTTP {answer.status_code} from {shown(self.target)}")

    async def close(self) -> None:
        await self.client.aclose()


class AmqpSender:
    def __init__(self, target: str, secret: str, timeout: float, allow_private: bool) -> None:
        self.target = target
        self.secret = secret
        self.allow_private = allow_private
        self.publisher = AmqpPublisher(target, timeout=timeout)

    async def send(self, message: Message, moment: datetime) -> None:
        try:
            await checked(self.target, self.allow_private)
            await self.publisher.publish(
                routing_key(message.kind, message.team),
                message.body,
                headers=message.headers(self.secret, moment),
                message_id=message.id,
            )
        except (TargetRefused, AmqpError) as error:
            raise SendFailed(str(error)) from None

    async def close(self) -> None:
        await self.publisher.close()


def sender_for(target: str, secret: str, timeout: float, allow_private: bool) -> Sender:
    scheme = target.split(":", 1)[0].lower()
    if scheme in AMQP_SCHEMES:
        return AmqpSender(target, secret, timeout, allow_private)
    return WebhookSender(target, secret, timeout, allow_private)
