"""Where hooks may send: target forms, what is shown of them, which addresses are off
limits."""

from __future__ import annotations

import pytest

from cdrlog.core.targets import check_target, host_of, private_address, shown


@pytest.mark.parametrize(
    "target",
    [
        "https://crm.example.com/hooks/cdr",
        "http://crm.example.com:8080/x?a=1",
        "amqp://user:pw@mq.example.com:5672/%2F?exchange=cdrs",
        "amqps://mq.example.com/calls?exchange=cdrs&heartbeat=30",
    ],
)
def test_targets_of_each_form_are_taken(target: str) -> None:
    assert check_target(target) == target


@pytest.mark.parametrize(
    ("target", "named"),
    [
        ("ftp://example.com/x", "scheme 'ftp'"),
        ("crm.example.com/hook", r"scheme '\(none\)'"),
        ("https:///path", "no host"),
        ("https://example.com/x#part", "fragment"),
        ("https://example.com:99999/", "Port out of range"),
        ("amqp://mq.example.com/", "exchange"),
        ("amqp://mq.example.com/?exchange=", "exchange"),
        ("https://example.com/" + "x" * 1100, "longer than 1024"),
    ],
)
def test_a_bad_target_is_named(target: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        check_target(target)


def test_passwords_and_secret_values_are_never_shown() -> None:
    assert (
        shown("amqp://cdr:s3cret@mq:5672/%2F?exchange=x") == "amqp://cdr:***@mq:5672/%2F?exchange=x"
    )
    assert shown("https://crm/h?token=abc&team=1") == "https://crm/h?token=***&team=1"
    assert "s3cret" not in shown("https://u:s3cret@crm/h?Secret=s3cret")


def test_hosts_and_default_ports() -> None:
    assert host_of("https://crm.example.com/x") == ("crm.example.com", 443)
    assert host_of("http://crm:8080/") == ("crm", 8080)
    assert host_of("amqp://mq/?exchange=x") == ("mq", 5672)
    assert host_of("amqps://mq/?exchange=x") == ("mq", 5671)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared (CGNAT)
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1%eth0",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
    ],
)
def test_private_addresses_are_off_limits(address: str) -> None:
    assert private_address(address)


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_not(address: str) -> None:
    assert not private_address(address)
