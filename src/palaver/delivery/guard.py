"""Refusing webhook targets inside the operator's network.

A `callback_url` is chosen by an API client; without this check, Palaver would
POST wherever it is told, including loopback admin ports and cloud metadata
addresses. The host is resolved at delivery time and every address it resolves
to must be public, unless the operator allows private targets
(`palaver serve --allow-private-callbacks`, for local development and tests).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class RefusedTarget(Exception):
    pass


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_loopback or address.is_link_local
    )


async def check_target(url: str, *, allow_private: bool) -> None:
    """Raise RefusedTarget unless every address `url`'s host resolves to may be called."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise RefusedTarget(f"not an http(s) URL: {url!r}")
    if allow_private:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal = ipaddress.ip_address(host)
        addresses = [literal]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise RefusedTarget(f"cannot resolve {host}: {exc}") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    refused = [str(a) for a in addresses if not _is_public(a)]
    if refused or not addresses:
        raise RefusedTarget(
            f"refused callback target {host}: resolves to non-public address(es) {', '.join(refused)} "
            "(start the server with --allow-private-callbacks to allow them)"
        )
