"""The HTTP side of an upgrade on the sync path: what the request must say to be a
WebSocket upgrade, the client behind trusted proxies, and the responses that accept or
refuse it."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable, Sequence
from http import HTTPStatus

from crdt_server.codec.websocket_frames import accept_key
from crdt_server.wire.gate import Refusal

__all__ = [
    "TrustedProxies",
    "accept_response",
    "client_address",
    "check_upgrade",
    "parse_head",
    "refusal_response",
]

_PHRASES = {status.value: status.phrase for status in HTTPStatus}


def parse_head(head: str) -> tuple[str, str, dict[str, str]]:
    """A request head (without its blank line): its method, its target and its headers,
    names in lower case, the first line of each name kept (``X-Forwarded-For``: all)."""
    request_line, *header_lines = head.split("\r\n")
    method, _, rest = request_line.partition(" ")
    target = rest.rpartition(" ")[0]
    headers: dict[str, str] = {}
    forwarded: list[str] = []
    for line in header_lines:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "x-forwarded-for":
            forwarded.append(value.strip())
        headers.setdefault(name, value.strip())
    if forwarded:
        # A proxy that finds an X-Forwarded-For line already there may add its own line
        # instead of extending it (HAProxy's ``option forwardfor`` does): the lines are
        # one list in order (RFC 9110 5.3), and only its right end, which the trusted
        # proxy wrote, is believed. The first line alone is what the client forged.
        headers["x-forwarded-for"] = ", ".join(forwarded)
    return method, target, headers


def check_upgrade(method: str, headers: dict[str, str]) -> Refusal | None:
    """Why the request is no WebSocket upgrade (RFC 6455 4.2.1), or ``None``: it is one."""
    if method != "GET":
        return Refusal(400, "a WebSocket upgrade is a GET")
    if "websocket" not in headers.get("upgrade", "").lower():
        return Refusal(400, "missing Upgrade: websocket")
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if "upgrade" not in tokens:
        return Refusal(400, "missing Connection: Upgrade")
    if headers.get("sec-websocket-version") != "13":
        return Refusal(426, "WebSocket version 13 only")
    try:
        key = base64.b64decode(headers.get("sec-websocket-key", ""), validate=True)
    except ValueError:
        key = b""
    if len(key) != 16:
        return Refusal(400, "missing or invalid Sec-WebSocket-Key")
    return None


class TrustedProxies:
    """uvicorn's ``forwarded_allow_ips``: addresses and networks, or ``*``."""

    def __init__(self, spec: Sequence[str] | str) -> None:
        items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
        self.everyone = "*" in items
        self._hosts: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in filter(None, items):
            try:
                self._networks.append(ipaddress.ip_network(item))
            except ValueError:
                self._hosts.add(item)

    def __contains__(self, host: str) -> bool:
        if self.everyone or host in self._hosts:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def client(self, forwarded_for: str) -> str | None:
        """The nearest untrusted address in ``X-Forwarded-For`` (else the farthest one)."""
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if hop not in self:
                return hop
        return hops[0] if hops else None


def refusal_response(refusal: Refusal) -> bytes:
    """The whole HTTP response that refuses an upgrade (the connection closes after it)."""
    body = refusal.body()
    lines = [
        f"HTTP/1.1 {refusal.status} {_PHRASES.get(refusal.status, '')}",
        *(f"{name}: {value}" for name, value in refusal.headers()),
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if refusal.status == 426:
        lines.append("sec-websocket-version: 13")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def accept_response(key: str) -> bytes:
    """The response that accepts an upgrade whose ``Sec-WebSocket-Key`` is ``key``."""
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: " + accept_key(key).encode() + b"\r\n\r\n"
    )


def client_address(
    peer: object, forwarded: str | None, trusted: Callable[[], TrustedProxies] | None
) -> tuple[str, int]:
    """Who sent a request that came from ``peer`` (the socket's peer name): when ``peer`` is
    a trusted proxy, the nearest untrusted address of its ``X-Forwarded-For`` (port 0);
    else ``peer`` itself. ``trusted`` gives the trusted proxies (``None``: none are)."""
    host, port = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
    if forwarded and trusted is not None:
        proxies = trusted()
        if host in proxies:
            client = proxies.client(forwarded)
            if client is not None:
                return client, 0
    return host, port
