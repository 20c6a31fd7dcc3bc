"""Webhook connections: kept alive and pooled per receiver, only to the address its name
was checked at, re-checked at most every 30 s, the pool dropped when the name resolves
elsewhere or is refused; over TLS, the certificate verified for the URL's own name. Real
HTTP receivers on loopback addresses (a small HTTP/1.1 server that counts its connections);
only name resolution is replaced, as a rebinding DNS server would answer."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from crdt_server.features.webhooks.domain import Endpoint
from crdt_server.features.webhooks.domain_safety import UnsafeTarget
from crdt_server.features.webhooks.service_sender import (
    RECHECK_SECONDS,
    Senders,
    SendFailed,
    post_signed,
)

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DEADLINE = 10.0


@dataclass
class Receiver:
    """A keep-alive HTTP/1.1 receiver on one address: connections and requests as seen."""

    host: str
    connections: int = 0
    closed: int = 0
    requests: list[tuple[dict[str, str], bytes, float]] = field(default_factory=list)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the sender closed a connection."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[1:]
                headers = {
                    k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((headers, body, time.time()))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed += 1
            self.gone.set()
        finally:
            writer.close()


@asynccontextmanager
async def receivers(*hosts: str) -> AsyncIterator[tuple[int, list[Receiver]]]:
    """One receiver per loopback address, all on the same port."""
    made: list[Receiver] = []
    servers: list[asyncio.Server] = []
    port = 0
    try:
        for host in hosts:
            r = Receiver(host)
            server = await asyncio.start_server(r.handle, host, port)
            port = server.sockets[0].getsockname()[1]
            made.append(r)
            servers.append(server)
        yield port, made
    finally:
        for server in servers:
            server.close()


def endpoint(url: str) -> Endpoint:
    return Endpoint("hook1", "w1", url, "", ["*"], SECRET, "", 0.0, "", "", 0.0, 0.0)


def resolving(monkeypatch: pytest.MonkeyPatch, answer: list[str], calls: list[str]) -> None:
    """The name resolves to ``answer[0]`` (changed by the test), every lookup counted."""
    loop = asyncio.get_running_loop()

    async def resolve(host: str, port: int, **_: Any) -> list[Any]:
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer[0], port))]

    monkeypatch.setattr(loop, "getaddrinfo", resolve)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_connections_are_kept_alive_and_dropped_when_the_name_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    answer, calls = ["127.0.0.1"], list[str]()
    resolving(monkeypatch, answer, calls)
    senders = Senders(timeout=5.0, allow_private=True, max_connections=4, clock=lambda: now[0])
    try:
        async with receivers("127.0.0.1", "127.0.0.2") as (port, (first, second)):
            hook = endpoint(f"http://hooks.test:{port}/in")
            before = int(time.time())
            for i in range(3):
                assert (await post_signed(senders, hook, f"msg_{i}", f'{{"i":{i}}}'))[0] == 200
            # One connection for the three, one lookup, every request signed at send time.
            assert (first.connections, len(first.requests), len(calls)) == (1, 3, 1)
            for i, (headers, body, arrived) in enumerate(first.requests):
                assert headers["host"] == f"hooks.test:{port}"
                assert headers["webhook-id"] == f"msg_{i}"
                # Whole seconds, taken between the first post's start and the arrival.
                assert before <= int(headers["webhook-timestamp"]) <= arrived
                Webhook(SECRET).verify(body, headers)

            # The name moves: within the re-check period the checked address is kept.
            answer[0] = "127.0.0.2"
            now[0] += RECHECK_SECONDS - 1
            await post_signed(senders, hook, "msg_3", "{}")
            assert (len(first.requests), len(calls), senders.made) == (4, 1, 1)

            # After it, the name is checked again: a new pool to the new address, and the
            # old pool's connection is closed.
            now[0] += 2
            await post_signed(senders, hook, "msg_4", "{}")
            assert (len(second.requests), second.connections, len(calls)) == (1, 1, 2)
            assert senders.made == 2
            await asyncio.wait_for(first.gone.wait(), DEADLINE)
            assert first.closed == 1

            # Unchanged at the next check: the same pool and connection.
            now[0] += RECHECK_SECONDS
            await post_signed(senders, hook, "msg_5", "{}")
            assert (len(second.requests), second.connections, senders.made) == (2, 1, 2)
    finally:
        await senders.aclose()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_refused_address_gets_no_connection_and_its_pool_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer, calls = ["127.0.0.1"], list[str]()
    resolving(monkeypatch, answer, calls)
    senders = Senders(timeout=5.0, allow_private=False, max_connections=4)
    try:
        async with receivers("127.0.0.1") as (port, (receiver,)):
            hook = endpoint(f"http://hooks.test:{port}/in")
            with pytest.raises(UnsafeTarget, match="resolves to 127.0.0.1"):
                await post_signed(senders, hook, "msg_1", "{}")
            assert (receiver.connections, senders.made) == (0, 0)
    finally:
        await senders.aclose()


def certificate(tmp: Path, name: str) -> tuple[Path, Path, Path]:
    """A certificate authority and a server certificate it signed for ``name``: the CA's
    PEM, the server's certificate and key PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def subject(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(subject("test CA"))
        .issuer_name(subject("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(subject(name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = (tmp / "ca.pem", tmp / "server.pem", tmp / "server.key")
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_tls_goes_to_the_checked_address_and_verifies_the_url_s_own_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The pinning holds over TLS: the connection goes to the address the name was checked
    at, with the URL's name as the server name (SNI) and in ``Host``, and the certificate
    is verified against that name, never the address: a certificate for another name is
    refused before any request is sent."""
    ca, cert, key = certificate(tmp_path, "hooks.test")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_tls.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment,misc,func-returns-value]
    client_tls = ssl.create_default_context(cafile=str(ca))
    answer, calls = ["127.0.0.1"], list[str]()
    resolving(monkeypatch, answer, calls)
    receiver = Receiver("127.0.0.1")
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    senders = Senders(timeout=5.0, allow_private=True, max_connections=4, tls=client_tls)
    try:
        hook = endpoint(f"https://hooks.test:{port}/in")
        for i in range(2):
            status, _ = await post_signed(senders, hook, f"msg_{i}", "{}")
            assert status == 200
        # One TLS connection, kept alive; the name sent and looked up once.
        assert (receiver.connections, len(receiver.requests)) == (1, 2)
        assert (names, calls) == (["hooks.test"], ["hooks.test"])
        assert receiver.requests[0][0]["host"] == f"hooks.test:{port}"

        # The same address under another name: its certificate does not match.
        other = endpoint(f"https://other.test:{port}/in")
        with pytest.raises(SendFailed, match="could not reach the receiver"):
            await post_signed(senders, other, "msg_other", "{}")
        assert len(receiver.requests) == 2
        assert names[-1] == "other.test"

        # A bare address in the URL is checked as an address, and no certificate names it.
        bare = endpoint(f"https://127.0.0.1:{port}/in")
        with pytest.raises(SendFailed):
            await post_signed(senders, bare, "msg_bare", "{}")
        assert len(receiver.requests) == 2
    finally:
        await senders.aclose()
        server.close()


def test_signatures_are_the_standard_webhooks_library_s() -> None:
    """The sender's own HMAC writes what ``standardwebhooks`` writes, for a ``whsec_``
    secret and a bare base64 one."""
    senders = Senders(timeout=5.0, allow_private=True, max_connections=1)
    for secret in (SECRET, SECRET.removeprefix("whsec_")):
        for payload in ('{"i":1}', '{"name":"Zoë ✓"}'):
            ours = senders.sign(secret, "msg_1", 1795000000, payload)
            when = datetime.fromtimestamp(1795000000, UTC)
            assert ours == Webhook(secret).sign("msg_1", when, payload)
