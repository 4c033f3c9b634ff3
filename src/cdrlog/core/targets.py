"""Where a hook may send: the forms of a target, what of it may be shown, and which
addresses are off limits unless the operator allows them.

A hook's URL is given by whoever holds an admin token, and cdrlog then connects to it
from inside the operator's network: without a check, a hook pointed at
`http://127.0.0.1:...`, a cloud's metadata address or an internal service would turn
cdrlog into a way in. Every address a target's host resolves to is checked, at
subscription and again before each connection (a name may resolve elsewhere later).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HTTP_SCHEMES = frozenset({"http", "https"})
AMQP_SCHEMES = frozenset({"amqp", "amqps"})
# Query parameters whose values are credentials, never shown.
SECRET_PARAMETERS = frozenset({"token", "key", "secret", "password", "sig", "signature"})


def check_target(target: str) -> str:
    """The target if it has a form cdrlog sends to; ValueError naming what is wrong."""
    if len(target) > 1024:
        raise ValueError("target: longer than 1024 characters")
    parts = urlsplit(target)
    scheme = parts.scheme.lower()
    if scheme not in HTTP_SCHEMES | AMQP_SCHEMES:
        raise ValueError(
            f"target: scheme {parts.scheme or '(none)'!r} is not http, https, amqp or amqps"
        )
    if not parts.hostname:
        raise ValueError("target: no host")
    if parts.fragment:
        raise ValueError("target: a fragment (#...) is never sent; leave it out")
    try:
        parts.port  # noqa: B018 - a port out of range raises here
    except ValueError as error:
        raise ValueError(f"target: {error}") from None
    if scheme in AMQP_SCHEMES and not dict(parse_qsl(parts.query)).get("exchange"):
        raise ValueError("target: an amqp target names its exchange: ...?exchange=NAME")
    return target


def host_of(target: str) -> tuple[str, int]:
    """The host and port a target connects to."""
    parts = urlsplit(target)
    default = {"http": 80, "https": 443, "amqp": 5672, "amqps": 5671}[parts.scheme.lower()]
    return parts.hostname or "", parts.port or default


def shown(target: str) -> str:
    """The target with its password and secret query values masked, for lists and logs."""
    parts = urlsplit(target)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        netloc = f"{user}:***@" + netloc.rsplit("@", 1)[1]
    query = urlencode(
        [
            (name, "***" if name.lower() in SECRET_PARAMETERS else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def private_address(address: str) -> bool:
    """Whether an IP address is one a hook may not reach unless allowed: loopback,
    link-local (cloud metadata lives there), private, shared (CGNAT), unspecified,
    multicast or reserved; an IPv6 address that carries an IPv4 one is judged by it."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        carried = ip.ipv4_mapped or ip.sixtofour
        if carried is None and ip in ipaddress.ip_network("64:ff9b::/96"):
            carried = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if carried is not None:
            return private_address(str(carried))
    return bool(
        ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"))
    )
