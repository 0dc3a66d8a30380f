"""Where a webhook may go: the guard against server-side request forgery.

A subscription names any URL, and Chancery then makes requests to it from inside its own
network. So a target is checked twice against `TargetPolicy`:

- when the subscription is created (the API): the scheme is http or https, and every address
  the host resolves to is public, or in `CHANCERY_WEBHOOK_ALLOWED_NETWORKS`; else a 422;
- at every connection the delivery worker opens (`guarded_connector`): the host is resolved
  again, every address checked again, and the connection made to the very address checked,
  so a name that resolved to a public address at creation and to 10.0.0.1 later (DNS
  rebinding) is refused, and there is no window between the check and the connection. A
  connection kept alive goes on to the address it was opened to.

Refused by default: loopback, private (RFC 1918), link-local (169.254.0.0/16, the cloud
metadata address among them), unique-local (fc00::/7), unspecified, multicast, and every
other address Python's `ipaddress` does not call global (shared, reserved, documentation
ranges). An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is judged as the IPv4 address.
Redirects are never followed (the worker's client does not), so a public target cannot
bounce a request inward either.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import AddrInfoType, TCPConnector
from aiohttp.abc import AbstractResolver, ResolveResult

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048


class TargetRefusedError(Exception):
    """The URL may not be a webhook target; the message says why."""


def _judged(address: IpAddress) -> IpAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _kind(address: IpAddress) -> str:
    """What a refused address is, for the message."""
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7"):
        return "a unique-local address"
    if address.is_private:
        return "a private address"
    if address.is_multicast:
        return "a multicast address"
    return "not a public address"


@dataclass(frozen=True)
class TargetPolicy:
    allowed: tuple[IpNetwork, ...] = ()

    @classmethod
    def of(cls, networks: Iterable[str]) -> TargetPolicy:
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def refusal(self, address: IpAddress) -> str | None:
        """Why `address` may not be reached, or None if it may."""
        judged = _judged(address)
        if any(judged in network for network in self.allowed):
            return None
        if judged.is_global and not judged.is_multicast:
            return None
        return f"{address} is {_kind(judged)}"

    def check_url(self, url: str) -> tuple[str, int]:
        """The host and port of an acceptable URL's shape (addresses are checked apart)."""
        if len(url) > MAX_URL_LENGTH:
            raise TargetRefusedError(f"the URL is longer than {MAX_URL_LENGTH} characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise TargetRefusedError(f"not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise TargetRefusedError("the URL must be http:// or https://")
        if not parts.hostname:
            raise TargetRefusedError("the URL has no host")
        if parts.username is not None or parts.password is not None:
            raise TargetRefusedError(
                "the URL must not carry credentials (the signature is the proof)"
            )
        if parts.fragment:
            raise TargetRefusedError("the URL must not have a fragment")
        return parts.hostname, port or (443 if parts.scheme == "https" else 80)

    async def addresses(self, host: str, port: int) -> list[IpAddress]:
        """Every address `host` stands for, each one allowed; raises `TargetRefusedError`
        if the host does not resolve or any address is refused (a name that mixes public
        and internal addresses is refused whole)."""
        found = await _resolve(host, port)
        if not found:
            raise TargetRefusedError(f"{host} resolves to no address")
        for address in found:
            _refuse_unless_allowed(self, host, address)
        return found

    async def check(self, url: str) -> None:
        """Raise `TargetRefusedError` unless `url` may be a webhook target now."""
        host, port = self.check_url(url)
        await self.addresses(host, port)


def _refuse_unless_allowed(policy: TargetPolicy, host: str, address: IpAddress) -> None:
    reason = policy.refusal(address)
    if reason is not None:
        shown = host if host == str(address) else f"{host} -> {address}"
        raise TargetRefusedError(f"{shown}: {reason.split(' is ', 1)[1]}; refused")


async def _resolve(host: str, port: int) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefusedError(f"{host} does not resolve ({exc})") from None
    seen: dict[str, IpAddress] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]  # an IPv6 scope id is not part of it
        seen.setdefault(text, ipaddress.ip_address(text))
    return list(seen.values())


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for the delivery worker: every name resolved and checked.

    The connector (`guarded_connector`) asks it at each new connection, never from a cache,
    and connects to the addresses it returns; the name stays the request's `Host` and, for
    https, its TLS server name and the name the certificate is checked against."""

    def __init__(self, policy: TargetPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._policy.addresses(host, port)
        results = [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=_family(address),
                proto=socket.IPPROTO_TCP,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in found
            if family in (socket.AF_UNSPEC, _family(address))
        ]
        if not results:
            raise OSError(f"{host} has no {family.name} address")
        return results

    async def close(self) -> None:
        return None


def _family(address: IpAddress) -> socket.AddressFamily:
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def guarded_connector(
    policy: TargetPolicy, *, limit: int, limit_per_host: int, keepalive_s: float
) -> TCPConnector:
    """A connector that connects only where `policy` allows.

    A name goes through `GuardedResolver`, resolved anew for each connection (no DNS cache).
    A URL whose host is an address is never given to a resolver by aiohttp, so the socket
    each connection opens is checked too: that covers addresses written in the URL, and it
    is the very address connected to."""

    def checked_socket(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        written = str(sockaddr[0])
        _refuse_unless_allowed(policy, written, ipaddress.ip_address(written))
        return socket.socket(family=family, type=type_, proto=proto)

    return TCPConnector(
        resolver=GuardedResolver(policy),
        use_dns_cache=False,
        socket_factory=checked_socket,
        limit=limit,
        limit_per_host=limit_per_host,
        keepalive_timeout=keepalive_s,
    )
