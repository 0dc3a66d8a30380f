"""Where a webhook may go: the guard against server-side request forgery.

A subscription names any URL, and Chancery then makes requests to it from inside its own
network. So a target is checked twice against `TargetPolicy`:

- when the subscription is created (the API): the scheme is http or https, and every address
  the host resolves to is public, or in `CHANCERY_WEBHOOK_ALLOWED_NETWORKS`; else a 422;
- at every connection the delivery worker makes (`GuardedTransport`): the host is resolved
  again, every address checked again, and the connection made to the very address checked,
  so a name that resolved to a public address at creation and to 10.0.0.1 later (DNS
  rebinding) is refused, and there is no window between the check and the connection.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

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
            reason = self.refusal(address)
            if reason is not None:
                shown = host if host == str(address) else f"{host} -> {address}"
                raise TargetRefusedError(f"{shown}: {reason.split(' is ', 1)[1]}; refused")
        return found

    async def check(self, url: str) -> None:
        """Raise `TargetRefusedError` unless `url` may be a webhook target now."""
        host, port = self.check_url(url)
        await self.addresses(host, port)


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


class GuardedTransport(httpx.AsyncBaseTransport):
    """httpx's transport, connecting only to addresses the policy allows.

    Each request's host is resolved and checked here, and the request is sent to the first
    address checked (the `Host` header and, for https, the TLS server name and certificate
    check keep the name), so what is checked is what is connected to."""

    def __init__(self, policy: TargetPolicy, inner: httpx.AsyncBaseTransport) -> None:
        self._policy = policy
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        addresses: Sequence[IpAddress] = await self._policy.addresses(host, port)
        chosen = str(addresses[0])
        if chosen != host:
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
            request.url = request.url.copy_with(host=chosen)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
