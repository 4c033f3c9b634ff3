"""Resolving a hook's host and refusing it when any of its addresses is private
(`core.targets`), unless the operator allows private targets."""

from __future__ import annotations

import asyncio
import socket

from cdrlog.core.targets import host_of, private_address


class TargetRefused(Exception):
    """The target may not be sent to; the message says why (no secrets in it)."""


def resolve_and_check(target: str, allow_private: bool) -> None:
    """Raises TargetRefused when the host does not resolve or resolves to an address a
    hook may not reach."""
    host, port = host_of(target)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise TargetRefused(f"{host} does not resolve: {error}") from None
    if allow_private:
        return
    for *_, address in found:
        ip = str(address[0])
        if private_address(ip):
            raise TargetRefused(
                f"{host} resolves to {ip}, a loopback, link-local or private address; "
                "allow it with --allow-private-targets (CDRLOG_ALLOW_PRIVATE_TARGETS)"
            )


async def checked(target: str, allow_private: bool) -> None:
    """`resolve_and_check` off the event loop (name resolution blocks)."""
    await asyncio.to_thread(resolve_and_check, target, allow_private)
