"""A RabbitMQ exchange and queue for a test: bound before a run, drained after it,
every message's Standard Webhooks signature verified as a webhook's would be."""

from __future__ import annotations

import asyncio
import contextlib
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
    taken: list[dict[str, Any]] = field(default_factory=list)

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

    def count(self) -> int:
        """Messages on the queue now (0 while the broker cannot be reached)."""

        async def run() -> int:
            connection = await aio_pika.connect(self.url, timeout=5)
            async with connection:
                channel = await connection.channel()
                queue = await channel.declare_queue(self.queue, passive=True)
                return int(queue.declaration_result.message_count or 0)

        try:
            return asyncio.run(run())
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError):
            return 0

    def take(self) -> list[dict[str, Any]]:
        """Every message taken off the queue so far (each verified and persistent),
        after taking what is there now (nothing while the broker cannot be reached)."""

        async def run() -> None:
            connection = await aio_pika.connect(self.url, timeout=5)
            async with connection:
                channel = await connection.channel()
                queue = await channel.get_queue(self.queue)
                while (message := await queue.get(fail=False)) is not None:
                    headers = {k: str(v) for k, v in (message.headers or {}).items()}
                    Webhook(self.secret).verify(message.body, headers)
                    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
                    assert message.message_id == headers["webhook-id"]
                    self.taken.append(json.loads(message.body))
                    await message.ack()

        with contextlib.suppress(TimeoutError, OSError, aio_pika.exceptions.AMQPError):
            asyncio.run(run())
        return self.taken

    def remove(self) -> None:
        """Delete the queue and the exchange."""

        async def run() -> None:
            connection = await aio_pika.connect(self.url)
            async with connection:
                channel = await connection.channel()
                await channel.queue_delete(self.queue)
                await channel.exchange_delete(self.exchange)

        asyncio.run(run())
