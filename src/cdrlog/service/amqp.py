"""The AMQP publisher: how CDR change messages reach an `amqp://` subscription target.

A target names a broker and a topic exchange,
`amqp://user:pass@host:port/vhost?exchange=NAME`. A publish returns only once the broker
has confirmed the message, and a message that no queue is bound for comes back as an
error instead of vanishing, so the dispatcher marks a message delivered only when some
queue holds it. Any failure drops the connection and the next publish starts from a new
one: a plain connection rather than aio-pika's robust one, because the dispatcher already
retries, and a robust connection's reconnecting in the background would turn an outage
into publishes that wait instead of fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

import aio_pika
import pamqp.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.exceptions import (
    AMQPConnectionError,
    AMQPError,
    AuthenticationError,
    ChannelInvalidStateError,
    ChannelPreconditionFailed,
    DeliveryError,
    ProbableAuthenticationError,
    PublishError,
)

_DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
# What aio-pika, aiormq and the socket beneath raise; a closed channel is a RuntimeError.
_FAILURES = (AMQPError, OSError, ChannelInvalidStateError, pamqp.exceptions.PAMQPException)


class AmqpError(Exception):
    """A message was not delivered (and may be published again later): the broker was
    unreachable, refused the login, did not confirm in time, returned the message as
    unroutable or nacked it, or the exchange exists with another type."""


def parse_amqp_target(url: str) -> tuple[str, str]:
    """(the broker URL without the `exchange` query parameter, the exchange name). A target is
    `amqp://user:pass@host:port/vhost?exchange=NAME` (or amqps://). ValueError naming the
    problem when the scheme is not amqp/amqps, or `exchange` is missing or empty. Other query
    parameters (e.g. heartbeat) are kept in the broker URL."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError(f"an AMQP target's scheme is amqp or amqps, not {parts.scheme!r}")
    kept: list[str] = []
    exchanges: list[str] = []
    # The other parameters are kept as written, not decoded and encoded again.
    for parameter in parts.query.split("&") if parts.query else []:
        name, _, value = parameter.partition("=")
        if unquote_plus(name) == "exchange":
            exchanges.append(unquote_plus(value))
        else:
            kept.append(parameter)
    if len(exchanges) > 1:
        raise ValueError(f"an AMQP target names one exchange, not {len(exchanges)}")
    if not exchanges or not exchanges[0]:
        raise ValueError("an AMQP target names its exchange: add ?exchange=NAME to the URL")
    return urlunsplit(parts._replace(query="&".join(kept))), exchanges[0]


class AmqpPublisher:
    """Publishes persistent, confirmed messages to one target's topic exchange over one
    connection, opened on the first publish."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._broker_url, self._exchange_name = parse_amqp_target(url)
        self._where = _where(self._broker_url, self._exchange_name)
        password = urlsplit(url).password or ""
        self._secrets = {secret for secret in (password, unquote(password)) if secret}
        self._timeout = timeout
        self._opening = asyncio.Lock()
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def publish(
        self,
        routing_key: str,
        body: bytes,
        *,
        headers: Mapping[str, str],
        message_id: str,
        content_type: str = "application/json",
    ) -> None:
        """Returns once the broker has confirmed the message; AmqpError otherwise, within
        `timeout` seconds, connecting included."""
        message = aio_pika.Message(
            body,
            headers=dict(headers),
            message_id=message_id,
            content_type=content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        exchange: AbstractExchange | None = None
        try:
            async with asyncio.timeout(self._timeout):
                exchange = await self._opened()
                await exchange.publish(message, routing_key, mandatory=True)
        except _FAILURES as error:
            self._drop(exchange)
            raise AmqpError(self._explain(error, routing_key)) from error

    async def close(self) -> None:
        self._drop(self._exchange)
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def _opened(self) -> AbstractExchange:
        async with self._opening:
            if self._exchange is not None and self._channel is not None:
                if not self._channel.is_closed:
                    return self._exchange
                self._drop(self._exchange)  # closed under us (by the broker, or a network fault)
            connection = await aio_pika.connect(self._broker_url)
            try:
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                exchange = await channel.declare_exchange(
                    self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                )
            except BaseException:
                self._close_later(connection)
                raise
            self._connection, self._channel, self._exchange = connection, channel, exchange
            return exchange

    def _drop(self, exchange: AbstractExchange | None) -> None:
        """Forget the connection `exchange` was opened on, so the next publish opens a new
        one (unless another publish has already replaced it), and close it without waiting:
        a broker that stopped answering would hold up the caller."""
        if exchange is None or exchange is not self._exchange:
            return
        connection = self._connection
        self._connection = self._channel = self._exchange = None
        if connection is not None:
            self._close_later(connection)

    def _close_later(self, connection: AbstractConnection) -> None:
        task = asyncio.get_running_loop().create_task(_close_quietly(connection))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _explain(self, error: BaseException, routing_key: str) -> str:
        where, key = self._where, routing_key
        match error:
            case TimeoutError():
                limit = f"{self._timeout:g} s"
                return f"timed out: no confirmation from {where} within {limit} (key {key!r})"
            case PublishError():
                return f"returned as unroutable by {where}: no queue is bound for key {key!r}"
            case DeliveryError():
                return f"nacked by {where} (key {key!r}): the broker did not take the message"
            case ChannelPreconditionFailed():
                detail = self._redacted(error)
                return f"wrong exchange type: {where} is not a durable topic exchange: {detail}"
            case AuthenticationError() | ProbableAuthenticationError():
                return f"login refused by {where}: {self._redacted(error)}"
            case AMQPConnectionError() | OSError():
                return f"broker unreachable at {where}: {self._redacted(error)}"
        return f"cannot publish to {where}: {self._redacted(error)}"

    def _redacted(self, error: BaseException) -> str:
        """The error's text, never with the password in it (should a library quote the URL)."""
        text = str(error) or type(error).__name__
        for secret in self._secrets:
            text = text.replace(secret, "******")
        return text


def _where(broker_url: str, exchange: str) -> str:
    """The target for people to read: host, port, vhost and exchange, never credentials."""
    parts = urlsplit(broker_url)
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    vhost = unquote(parts.path[1:]) or "/"
    return f"{parts.hostname or 'localhost'}:{port} vhost {vhost!r} exchange {exchange!r}"


async def _close_quietly(connection: AbstractConnection) -> None:
    # A connection being dropped has failed already; its closing failing too says nothing.
    with contextlib.suppress(*_FAILURES):
        await connection.close()
