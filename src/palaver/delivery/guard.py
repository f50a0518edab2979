"""Refusing webhook targets inside the operator's network.

A `callback_url` is chosen by an API client; without this check, Palaver would
POST wherever it is told, including loopback admin ports and cloud metadata
addresses. Every address Palaver connects to must be public, unless the operator
allows private targets (`palaver serve --allow-private-callbacks`, for local
development and tests).

The sender enforces this in two places, because aiohttp resolves names itself:
`check_url` refuses bad schemes and non-public IP literals before a request (aiohttp
never asks a resolver about a literal), and `GuardedResolver` filters what a host
name resolves to inside aiohttp's connector, so the addresses checked are exactly the
addresses connected to. Resolving, checking and then connecting by name would leave
a gap: DNS may answer differently the second time (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

_FLAG_HINT = "(start the server with --allow-private-callbacks to allow them)"


class RefusedTarget(OSError):
    """A target Palaver will not call: final, unlike a failed connection.

    An OSError so that `GuardedResolver` can raise it from inside aiohttp: the connector
    wraps a resolver's OSError in ClientConnectorDNSError and keeps it as `os_error`,
    where the sender finds it again.
    """


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_loopback or address.is_link_local
    )


def _is_public_text(address: str) -> bool:
    try:
        return _is_public(ipaddress.ip_address(address))
    except ValueError:  # not an address at all: nothing to connect to that we could vouch for
        return False


def _refused(host: str, addresses: list[str]) -> RefusedTarget:
    return RefusedTarget(
        f"refused callback target {host}: resolves to non-public address(es) {', '.join(addresses)} {_FLAG_HINT}"
    )


def _looks_like_ip(host: str) -> bool:
    """aiohttp's own test for "this host is an address, not a name" (it skips the resolver for these)."""
    return ":" in host or host.replace(".", "").isdigit()


def check_url(url: str, *, allow_private: bool) -> URL:
    """Parse `url` as aiohttp will and refuse what must never be called; names are left to GuardedResolver.

    Synchronous and cheap: no DNS. Refused regardless of `allow_private`: schemes other than
    http(s), URLs without a host, and hosts aiohttp would treat as an IP address that are not
    a canonical one (`127.1`, `2130706433`): aiohttp would refuse to connect to those anyway,
    and they are a classic way around address checks.
    """
    try:
        parsed = URL(url)
    except (TypeError, ValueError) as exc:
        raise RefusedTarget(f"not an http(s) URL: {url!r}") from exc
    host = parsed.raw_host
    if parsed.scheme not in ("http", "https") or not host:
        raise RefusedTarget(f"not an http(s) URL: {url!r}")
    if _looks_like_ip(host):
        try:
            literal = ipaddress.ip_address(host)
        except ValueError as exc:
            raise RefusedTarget(f"not a canonical IP address in URL: {url!r}") from exc
        if not allow_private and not _is_public(literal):
            raise _refused(host, [str(literal)])
    return parsed


async def check_target(url: str, *, allow_private: bool) -> None:
    """Raise RefusedTarget unless every address `url`'s host resolves to may be called.

    Resolves separately from any later connection, so it cannot rule out DNS rebinding;
    the sender relies on `check_url` and `GuardedResolver` instead.
    """
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
        raise _refused(host, refused)


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that hands the connector only public addresses.

    Non-public addresses are dropped; if that leaves none, RefusedTarget is raised (aiohttp
    reports it as ClientConnectorDNSError with the RefusedTarget as `os_error`). Lookup
    failures of the wrapped resolver pass through unchanged: they are worth retrying, a
    refusal is not. Only for `allow_private=False`; otherwise use aiohttp's resolver as is.
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        # DefaultResolver wants a running loop (ThreadedResolver) or aiodns (AsyncResolver).
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        public = [r for r in results if _is_public_text(r["host"])]
        if results and not public:
            raise _refused(host, list(dict.fromkeys(r["host"] for r in results)))
        return public

    async def close(self) -> None:
        await self._inner.close()
