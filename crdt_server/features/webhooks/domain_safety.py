"""Where outgoing webhooks may go: server-side request forgery (SSRF) checks.

A webhook URL is chosen by a wedding's planner, not the operator, so by default the server
refuses to send anything to its own network: URLs that are not ``http``/``https``, and
hosts that resolve to a loopback, private, link-local (cloud metadata at 169.254.169.254),
shared, reserved, multicast or unspecified address, also when an IPv6 transition address
(NAT64, 6to4, IPv4-compatible, IPv4-mapped, SIIT) embeds one. The check runs when an endpoint is
created and again before attempts (when the receiver's last check is 30 s old, see
:mod:`~crdt_server.features.webhooks.service_sender`), on the addresses the name resolves to then
(DNS rebinding): :func:`resolve_target` answers the checked address, and the sender connects
only to that address, never resolving the name a second time. ``allow_private`` (the
``CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE`` setting, for tests and on-premises receivers) lifts
the address rule, never the scheme rule.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

__all__ = ["Target", "UnsafeTarget", "check_url", "embedded_ipv4", "forbidden", "resolve_target"]

MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(Exception):
    """The URL may not receive webhooks; the message says why (safe to show the caller)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked destination: connect to ``address`` and say ``host`` (Host header, TLS
    server name)."""

    url: str
    host: str
    address: str
    port: int

    @property
    def connect_url(self) -> str:
        """The URL with its host replaced by the checked address."""
        parts = urlsplit(self.url)
        address = f"[{self.address}]" if ":" in self.address else self.address
        netloc = f"{address}:{self.port}"
        return SplitResult(parts.scheme, netloc, parts.path or "/", parts.query, "").geturl()

    @property
    def host_header(self) -> str:
        default = 443 if urlsplit(self.url).scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def check_url(url: str) -> tuple[str, int]:
    """The host and port of a well-formed ``http(s)`` URL without a fragment (raises
    :class:`UnsafeTarget` otherwise). Addresses are checked by :func:`resolve_target`."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(f"at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise UnsafeTarget("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget("not a valid URL") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget("only http and https URLs receive webhooks")
    host = parts.hostname
    if not host:
        raise UnsafeTarget("the URL has no host")
    if parts.fragment:
        raise UnsafeTarget("a webhook URL has no fragment")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("credentials in the URL are not accepted (the signature proves us)")
    return host, port or (443 if parts.scheme == "https" else 80)


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
"""The well-known NAT64 prefix (RFC 6052): the last 32 bits are the IPv4 address."""
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
"""Local-use NAT64 (RFC 8215): its translator is on the operator's own network."""
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
"""IPv4-compatible addresses (``::a.b.c.d``, deprecated by RFC 4291)."""
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
"""SIIT IPv4-translated addresses (``::ffff:0:a.b.c.d``, RFC 2765)."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition address leads to (IPv4-mapped, NAT64, 6to4,
    IPv4-compatible, SIIT), or ``None``. A host that translates or tunnels them would
    deliver to that IPv4 address, so it is the one to judge."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in (_NAT64, _IPV4_COMPATIBLE, _IPV4_TRANSLATED)):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def forbidden(address: IPAddress) -> bool:
    """Whether ``address`` is one webhooks never reach by default (not a public unicast
    address: loopback, private, link-local, shared, reserved, multicast, unspecified),
    judging an IPv6 transition address by the IPv4 address it embeds."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _LOCAL_NAT64:
            return True
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return forbidden(embedded)
    return not address.is_global or address.is_multicast


async def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host now and check every address it has; the first one is where
    to connect. Raises :class:`UnsafeTarget` if the URL, or any address, is refused."""
    host, port = check_url(url)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UnsafeTarget(f"the host {host!r} does not resolve") from exc
        addresses = []
        for info in infos:
            text = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone
            address = ipaddress.ip_address(text)
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise UnsafeTarget(f"the host {host!r} does not resolve")
    if not allow_private:
        for address in addresses:
            if forbidden(address):
                raise UnsafeTarget(
                    f"{host!r} resolves to {address}, a private, loopback, link-local or "
                    "reserved address (set CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE=true to allow)"
                )
    return Target(url, host, str(addresses[0]), port)
