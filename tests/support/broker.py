"""A RabbitMQ exchange and queue for a test: bound before a run, drained after it,
every message's Standard Webhooks signature verified as a webhook's would be."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aio_pika
from standardwebhooks.webhooks import Webhook


@dataclass
class Broker:
    url: str
    exchange: str
    secret: str = ""
    queue: str = field(init=False)

    def __post_init__(self) -> None:
        self.queue = f"{self.exchange}-queue"

    @property
    def target(self) -> str:
        """The hook's target: the broker's URL naming the exchange."""
        return f"{self.url}?exchange={quote(self.exchange)}"

    def bind(self, pattern: str) -> None:
        async def run() -> None:
            connection = await aio_pika.connect(self.url)
            async with connection:
                channel = await connection.channel()
                exchange = await channel.declare_exchange(
                    self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
                )
                queue = await channel.declare_queue(self.queue, durable=True)
                await queue.bind(exchange, pattern)

        asyncio.run(run())

    def drain(self) -> list[dict[str, Any]]:
        """Every message on the queue (verified, persistent), then the queue and the
        exchange deleted."""

        async def run() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            connection = await aio_pika.connect(self.url)
            async with connection:
                channel = await connection.channel()
                queue = await channel.get_queue(self.queue)
                while (message := await queue.get(fail=False)) is not None:
                    headers = {k: str(v) for k, v in (message.headers or {}).items()}
                    Webhook(self.secret).verify(message.body, headers)
                    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
                    assert message.message_id == headers["webhook-id"]
                    found.append(json.loads(message.body))
                    await message.ack()
                await queue.delete(if_unused=False, if_empty=False)
                await channel.exchange_delete(self.exchange)
            return found

        return asyncio.run(run())
