"""SSRF guard: webhook URLs must resolve to public addresses (unless the operator allows private).

The check runs when a webhook is subscribed and again before every attempt; the dispatcher then
connects to the very address that passed, so a DNS answer that changes in between (rebinding)
cannot redirect a delivery to an internal service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_SECONDS = 5.0  # a name not resolved by then is refused, as one with no address


class UnsafeUrl(Exception):
    """The URL is malformed, cannot be resolved, or leads to a refused address."""


class Unresolved(UnsafeUrl):
    """The host name has no address: unknown to the resolver, or not answered in time."""


# IPv6 ranges that carry an IPv4 address the network may route to: NAT64 (well-known and
# local-use prefixes), the deprecated IPv4-compatible ::/96 (::127.0.0.1) and the
# IPv4-translated ::ffff:0:0:0/96 of SIIT (::ffff:0:7f00:1 is 127.0.0.1).
_IPV4_CARRIERS = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("::/96"),
    ipaddress.ip_network("::ffff:0:0:0/96"),
)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses a 6to4 or Teredo address wraps (Teredo: server and client)."""
    found: list[ipaddress.IPv4Address] = []
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def is_public(address: IPAddress) -> bool:
    """False for loopback, private, link-local (cloud metadata), shared, reserved, multicast,
    and IPv6 site-local (fec0::/10: deprecated, yet still routed inside some networks).

    An IPv6 address that wraps an IPv4 one (mapped, 6to4, Teredo) passes only when the IPv4
    address does too; NAT64 and IPv4-compatible addresses are refused outright.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in _IPV4_CARRIERS):
            return False
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if not all(is_public(v4) for v4 in _embedded_ipv4(address)):
            return False
        if address.is_site_local:
            return False
    return address.is_global and not address.is_multicast


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute http(s) URL, or UnsafeUrl.

    The URL must parse for httpx too, which sends it: Python's IDNA codec takes a host that
    httpx refuses (a full-width digit, a zero-width space: `http://\uff18.8.8.8/` resolves to
    8.8.8.8), and every delivery to it would fail before it was even tried.
    """
    if url != url.strip():
        # urlsplit drops a leading space (as WHATWG's parser does), httpx reads the URL as a
        # relative one: " http://host/" passed here, and no delivery could ever be sent.
        raise UnsafeUrl("invalid URL: it starts or ends with a space")
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise UnsafeUrl(f"invalid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("URL must be absolute http:// or https://")
    if parts.username or parts.password:
        raise UnsafeUrl("URL must not carry credentials")
    if port == 0:  # no service listens there; read as "no port", it was checked as 80 or 443
        raise UnsafeUrl("invalid URL: port 0")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to (a literal address resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    # The resolver's own words are not passed on: the API is no probe of internal DNS.
    try:
        # Bounded: with a dead name server glibc takes 15 s and more, and a subscription
        # (POST /v1/webhooks, `webhooks create`) waited that long for its 400.
        async with asyncio.timeout(RESOLVE_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        raise Unresolved(f"cannot resolve {host}") from None
    except UnicodeError:  # IDNA refuses the name: an empty or over-long label ("a..com")
        raise UnsafeUrl(f"invalid host name {host!r}") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Unresolved(f"cannot resolve {host}")
    return addresses


async def checked_address(url: str, *, allow_private: bool) -> IPAddress:
    """The address to connect to for this URL, or UnsafeUrl when any answer is refused.

    Every answer must be public, not only the first: a name that resolves to both a public and
    a private address would otherwise be a way in.
    """
    _scheme, host, port = split_url(url)
    # One answer for a name that has no address and one that has a private one, and which
    # address is not said: the API is no probe of internal DNS ("cannot resolve vault" and
    # "vault resolves to a non-public address" told a tenant which internal names exist).
    not_public = UnsafeUrl(f"{host} does not resolve to a public address")
    try:
        addresses = await resolve(host, port)
    except Unresolved:
        if allow_private:
            raise
        raise not_public from None
    if not allow_private and not all(is_public(a) for a in addresses):
        raise not_public
    return addresses[0]
