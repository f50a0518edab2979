"""Refusing webhook targets inside the operator's network.

A `callback_url` is chosen by an API client; without this check, Palaver would
POST wherever it is told, including loopback admin ports and cloud metadata
addresses. Every address Palaver connects to must be public, unless the operator
allows private targets (`palaver serve --allow-private-callbacks`, for local
development and tests).

Two steps, both before any connection: `parse_target` refuses bad schemes and
non-public IP literals (no DNS), and `GuardedResolver` resolves a host name and
keeps only the addresses that may be called. The sender then connects to one of
those addresses, never to the name again (delivery/http1.py), so the addresses
checked are exactly the addresses connected to: a second DNS answer (DNS
rebinding) never comes into it.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

_FLAG_HINT = "(start the server with --allow-private-callbacks to allow them)"
# What inet_aton would read as an address although ipaddress does not (127.1, 2130706433, 0x7f.1).
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
# Left as they are in a request target: RFC 3986's reserved and unreserved characters, and '%' (already escaped).
_TARGET_SAFE = "/?#[]@!$&'()*+,;=:%-._~"


class RefusedTarget(Exception):
    """A target Palaver will not call: final, unlike a failed connection."""


class LookupFailed(Exception):
    """The name did not resolve (or not in time): worth trying again later, unlike a refusal."""


@dataclass(frozen=True, slots=True)
class Target:
    """A callback URL taken apart once: where to connect, and the request's first lines."""

    scheme: str
    host: str  # a name (IDNA-encoded) or an IP address, without brackets
    port: int
    is_address: bool  # the URL names an IP address: no DNS
    request_target: str  # path and query, as sent on the request line
    host_header: str
    authorization: str | None  # Basic credentials from the URL's user info, if any


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_loopback or address.is_link_local
    )


def _is_public_text(address: str) -> bool:
    try:
        return is_public(ipaddress.ip_address(address))
    except ValueError:  # not an address at all: nothing to connect to that we could vouch for
        return False


def _refused(host: str, addresses: list[str]) -> RefusedTarget:
    return RefusedTarget(
        f"refused callback target {host}: resolves to non-public address(es) {', '.join(addresses)} {_FLAG_HINT}"
    )


def parse_target(url: str, *, allow_private: bool) -> Target:
    """Take `url` apart and refuse what must never be called; names are left to `GuardedResolver`.

    Synchronous and cheap: no DNS. Refused regardless of `allow_private`: schemes other than
    http(s), URLs without a host, and hosts that would be read as an IP address without being
    a canonical one (`127.1`, `2130706433`), a classic way around address checks.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
        raw_host = parts.hostname
    except ValueError as exc:
        raise RefusedTarget(f"not an http(s) URL: {url!r}") from exc
    if parts.scheme not in ("http", "https") or not raw_host:
        raise RefusedTarget(f"not an http(s) URL: {url!r}")
    literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    if ":" in raw_host or _NUMERIC_HOST.match(raw_host):
        try:
            literal = ipaddress.ip_address(raw_host.split("%", 1)[0] if ":" in raw_host else raw_host)
        except ValueError as exc:
            raise RefusedTarget(f"not a canonical IP address in URL: {url!r}") from exc
        if not allow_private and not is_public(literal):
            raise _refused(str(literal), [str(literal)])
        host = str(literal)
    else:
        try:
            host = raw_host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise RefusedTarget(f"not a valid host name in URL: {url!r}") from exc
    default_port = 443 if parts.scheme == "https" else 80
    port = port or default_port
    shown = f"[{host}]" if ":" in host else host
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
    path = parts.path or "/"
    request_target = quote(path + (f"?{parts.query}" if parts.query else ""), safe=_TARGET_SAFE)
    return Target(
        scheme=parts.scheme,
        host=host,
        port=port,
        is_address=literal is not None,
        request_target=request_target,
        host_header=shown if port == default_port else f"{shown}:{port}",
        authorization=authorization,
    )


class GuardedResolver:
    """Resolves names to the addresses that may be called, and remembers the answer briefly.

    Non-public addresses are dropped (unless `allow_private`); a name that leaves none is
    refused for good (RefusedTarget). A failed or slow lookup raises LookupFailed, which is
    worth retrying. Answers are kept `ttl` seconds: a webhook burst to one receiver
    resolves its name once, and a receiver's DNS change still takes effect soon.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        ttl: float = 5.0,
        timeout: float = 5.0,
        lookup: Callable[[str, int], Awaitable[list[str]]] | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._ttl = ttl
        self._timeout = timeout
        self._lookup_addresses = lookup or _getaddrinfo
        self._cache: dict[tuple[str, int], tuple[float, list[str] | RefusedTarget]] = {}

    async def resolve(self, host: str, port: int) -> list[str]:
        key = (host, port)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is None or cached[0] < now:
            cached = (now + self._ttl, self._vet(host, await self._lookup(host, port)))
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = cached
        answer = cached[1]
        if isinstance(answer, RefusedTarget):
            raise answer
        return answer

    async def _lookup(self, host: str, port: int) -> list[str]:
        try:
            async with asyncio.timeout(self._timeout):
                addresses = await self._lookup_addresses(host, port)
        except TimeoutError as exc:
            raise LookupFailed(f"DNSError: no answer for {host} within {self._timeout:g} s") from exc
        except OSError as exc:
            raise LookupFailed(f"DNSError: cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise LookupFailed(f"DNSError: no address for {host}")
        return addresses

    def _vet(self, host: str, addresses: list[str]) -> list[str] | RefusedTarget:
        if self._allow_private:
            return addresses
        public = [a for a in addresses if _is_public_text(a)]
        if not public:
            return _refused(host, addresses)
        return public


async def _getaddrinfo(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in the system resolver's order of preference, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
