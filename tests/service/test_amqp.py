"""The AMQP publisher against a real RabbitMQ: what arrives on a bound queue, which keys
reach which bindings, and each way a publish fails (unroutable, nacked, unreachable,
silent broker, wrong exchange type) as an AmqpError that never shows the password.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractQueue

from cdrlog.service.amqp import AmqpError, AmqpPublisher, parse_amqp_target

HEADERS = {"webhook-id": "msg_1", "webhook-timestamp": "1709726400", "x-cdrlog-team": "team1"}
BODY = b'{"type":"cdr.closed","data":{"sessionid":"s1","disposition":"ANSWERED"}}'


def exchange_name() -> str:
    """One exchange per test, so runs and tests never see each other's messages."""
    return f"cdrlog-test-{uuid.uuid4().hex[:12]}"


def target(broker_url: str, exchange: str) -> str:
    return f"{broker_url}{'&' if urlsplit(broker_url).query else '?'}exchange={exchange}"


def with_password(broker_url: str, password: str) -> str:
    parts = urlsplit(broker_url)
    netloc = f"{parts.username or 'guest'}:{password}@{parts.hostname}:{parts.port or 5672}"
    return urlunsplit(parts._replace(netloc=netloc))


@asynccontextmanager
async def listening(
    broker_url: str, exchange: str, *bindings: str
) -> AsyncIterator[list[AbstractQueue]]:
    """The exchange as the publisher declares it, one exclusive queue bound with each
    pattern, and the exchange deleted afterwards (durable ones outlive the connection)."""
    connection = await aio_pika.connect(broker_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_exchange(
            exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        try:
            queues = []
            for pattern in bindings:
                queue = await channel.declare_queue(exclusive=True, auto_delete=True)
                await queue.bind(declared, pattern)
                queues.append(queue)
            yield queues
        finally:
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()


@asynccontextmanager
async def connected(broker_url: str) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(broker_url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def publish_once(
    url: str,
    routing_key: str = "cdr.closed.team1",
    *,
    timeout: float = 10.0,
    headers: Mapping[str, str] = HEADERS,
    message_id: str = "msg_1",
) -> None:
    publisher = AmqpPublisher(url, timeout=timeout)
    try:
        await publisher.publish(routing_key, BODY, headers=headers, message_id=message_id)
    finally:
        await publisher.close()


def test_a_published_message_arrives_whole(amqp_url: str) -> None:
    async def run() -> aio_pika.abc.AbstractIncomingMessage | None:
        exchange = exchange_name()
        async with listening(amqp_url, exchange, "cdr.closed.team1") as [queue]:
            await publish_once(target(amqp_url, exchange), headers=HEADERS, message_id="m-42")
            # Confirmed means enqueued: the message is there without waiting.
            return await queue.get(no_ack=True, fail=False)

    received = asyncio.run(run())

    assert received is not None
    assert received.body == BODY
    assert received.headers == HEADERS
    assert received.message_id == "m-42"
    assert received.content_type == "application/json"
    assert received.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert received.routing_key == "cdr.closed.team1"


def test_routing_keys_match_the_bindings_topic_patterns(amqp_url: str) -> None:
    async def run() -> list[bytes | None]:
        exchange = exchange_name()
        patterns = ("cdr.closed.*", "cdr.created.*", "cdr.#")
        async with listening(amqp_url, exchange, *patterns) as queues:
            await publish_once(target(amqp_url, exchange), "cdr.closed.team1")
            got = [await queue.get(no_ack=True, fail=False) for queue in queues]
            return [message.body if message else None for message in got]

    assert asyncio.run(run()) == [BODY, None, BODY]


def test_a_message_no_queue_is_bound_for_comes_back_as_an_error(amqp_url: str) -> None:
    async def run() -> AmqpError:
        exchange = exchange_name()
        async with listening(amqp_url, exchange, "cdr.created.*"):
            with pytest.raises(AmqpError) as raised:
                await publish_once(target(amqp_url, exchange), "cdr.closed.team1")
            return raised.value

    error = asyncio.run(run())

    assert "unroutable" in str(error)
    assert "'cdr.closed.team1'" in str(error)


def test_a_message_the_broker_nacks_is_an_error(amqp_url: str) -> None:
    async def run() -> AmqpError:
        exchange = exchange_name()
        async with listening(amqp_url, exchange) as _, connected(amqp_url) as channel:
            # A full queue that refuses new messages makes the broker nack the publish.
            full = await channel.declare_queue(
                exclusive=True,
                arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
            )
            await full.bind(exchange, "cdr.#")
            with pytest.raises(AmqpError) as raised:
                await publish_once(target(amqp_url, exchange))
            return raised.value

    assert "nacked" in str(asyncio.run(run()))


def test_an_unreachable_broker_is_an_error_within_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(AmqpError) as raised:
        asyncio.run(publish_once("amqp://guest:secretpw@127.0.0.1:1/?exchange=cdr", timeout=2))

    assert time.monotonic() - started < 3
    assert "unreachable" in str(raised.value)
    assert "127.0.0.1:1 vhost '/' exchange 'cdr'" in str(raised.value)
    assert "secretpw" not in str(raised.value)


def test_a_broker_that_never_answers_times_out() -> None:
    async def run() -> float:
        # Takes the connection and says nothing: the publish waits on the handshake.
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        url = f"amqp://guest:guest@127.0.0.1:{server.sockets[0].getsockname()[1]}/?exchange=x"
        started = time.monotonic()
        try:
            # Bounded here too: a publisher ignoring its timeout fails, not hangs.
            with pytest.raises(AmqpError, match=r"within 0\.5 s"):
                await asyncio.wait_for(publish_once(url, timeout=0.5), 10)
            return time.monotonic() - started
        finally:
            server.close()

    assert asyncio.run(run()) < 2


def test_a_connection_closed_under_the_publisher_is_opened_again(amqp_url: str) -> None:
    async def run() -> list[str | None]:
        exchange = exchange_name()
        async with listening(amqp_url, exchange, "cdr.#") as [queue]:
            publisher = AmqpPublisher(target(amqp_url, exchange))
            try:
                await publisher.publish("cdr.closed.a", BODY, headers={}, message_id="first")
                assert publisher._connection is not None
                await publisher._connection.close()
                await publisher.publish("cdr.closed.a", BODY, headers={}, message_id="second")
            finally:
                await publisher.close()
                await publisher.close()
            got = [await queue.get(no_ack=True, fail=False) for _ in range(2)]
            return [message.message_id if message else None for message in got]

    assert asyncio.run(run()) == ["first", "second"]


def test_concurrent_publishes_share_the_publisher(amqp_url: str) -> None:
    async def run() -> list[str]:
        exchange = exchange_name()
        async with listening(amqp_url, exchange, "cdr.#") as [queue]:
            publisher = AmqpPublisher(target(amqp_url, exchange))
            try:
                await asyncio.gather(
                    *(
                        publisher.publish("cdr.closed.a", BODY, headers={}, message_id=f"m{n:02}")
                        for n in range(20)
                    )
                )
                opened = publisher._connection
                await publisher.publish("cdr.closed.a", BODY, headers={}, message_id="m20")
                assert publisher._connection is opened  # the first one, kept for later ones
            finally:
                await publisher.close()
            got = [await queue.get(no_ack=True, fail=False) for _ in range(22)]
            return sorted(message.message_id or "" for message in got if message)

    assert asyncio.run(run()) == [f"m{n:02}" for n in range(21)]


def test_an_exchange_of_another_type_is_an_error(amqp_url: str) -> None:
    async def run() -> AmqpError:
        exchange = exchange_name()
        async with connected(amqp_url) as channel:
            await channel.declare_exchange(exchange, aio_pika.ExchangeType.FANOUT, durable=True)
            try:
                with pytest.raises(AmqpError) as raised:
                    await publish_once(target(amqp_url, exchange))
            finally:
                await channel.exchange_delete(exchange)
            return raised.value

    error = asyncio.run(run())

    assert "wrong exchange type" in str(error)
    assert "fanout" in str(error)


def test_a_refused_login_never_shows_the_password(amqp_url: str) -> None:
    url = target(with_password(amqp_url, "secretpw"), "cdr")

    with pytest.raises(AmqpError) as raised:
        asyncio.run(publish_once(url))

    assert "login refused" in str(raised.value)
    assert f"{urlsplit(amqp_url).hostname}:" in str(raised.value)
    assert "secretpw" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "broker", "exchange"),
    [
        (
            "amqp://guest:guest@127.0.0.1:5672/%2F?exchange=cdr",
            "amqp://guest:guest@127.0.0.1:5672/%2F",
            "cdr",
        ),
        (
            "amqps://u:p@mq.example.com/calls?heartbeat=30&exchange=cdr.events&x=a%26b",
            "amqps://u:p@mq.example.com/calls?heartbeat=30&x=a%26b",
            "cdr.events",
        ),
        ("amqp://h/?exchange=cdr%2Fteam%201", "amqp://h/", "cdr/team 1"),
    ],
)
def test_a_target_splits_into_broker_and_exchange(url: str, broker: str, exchange: str) -> None:
    assert parse_amqp_target(url) == (broker, exchange)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "exchange"),
        ("amqp://guest:guest@127.0.0.1:5672/?exchange=", "exchange"),
        ("amqp://h/?heartbeat=30&exchange=", "exchange"),
        ("amqp://h/?exchange=a&exchange=b", "one exchange"),
        ("http://guest:guest@127.0.0.1:5672/?exchange=cdr", "'http'"),
    ],
)
def test_a_bad_target_is_refused_before_connecting(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_amqp_target(url)
    with pytest.raises(ValueError, match=problem):
        AmqpPublisher(url)
