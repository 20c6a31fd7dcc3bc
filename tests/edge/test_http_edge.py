"""The HTTP edge through a real server: problem+json everywhere, field errors, body limits,
the rate limiter, one way to read a token, the access log, metrics, public URLs, /docs."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets
from pycrdt import Doc, Map

from crdt_server.app import http_routes
from crdt_server.auth.tokens import TokenCodec
from crdt_server.cli import redact_tokens
from crdt_server.edge.problems import ApiError
from crdt_server.edge.ratelimit import HttpRateLimiter, RateKey, may_bypass
from tests.server import FreshWedding, ServerProcess

SECRET = "http-edge-test-secret-at-least-32-bytes!"
ADMIN = "edge-admin-key"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
CANARY = "Zebulon Canaryfeather"
PROBLEM_KEYS = {"type", "title", "status", "detail", "error"}


WEDDING = FreshWedding("edge")
"""The running test's wedding: a fresh one per test on the module's server."""


@pytest.fixture(autouse=True)
def fresh_wedding() -> None:
    WEDDING.renew()


def token(role: str = "planner", sub: str = "pat", wedding: str | None = None) -> str:
    return CODEC.mint(sub=sub, role=role, wedding=wedding or WEDDING.id, ttl=600)


def auth(role: str = "planner", sub: str = "pat", wedding: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, sub, wedding)}"}


ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}
BASE_ENV = {
    "CRDT_SERVER_AUTH_SECRET": SECRET,
    "CRDT_SERVER_ADMIN_API_KEY": ADMIN,
    "CRDT_SERVER_LOG_FORMAT": "json",
    "CRDT_SERVER_MAX_JSON_BODY_BYTES": "65536",
    "CRDT_SERVER_PUBLIC_URL": "https://plan.example.com/",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def edge(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    """One server for the module's tests, each on a wedding of its own (``WEDDING.id``)."""
    async with (
        ServerProcess(
            tmp_path_factory.mktemp("edge") / "data", env=BASE_ENV, anonymous=False
        ) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        yield server, http


@pytest_asyncio.fixture(loop_scope="module")
async def own_edge(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    """A server of the test's own: for exact request counts and the server's memory."""
    async with (
        ServerProcess(tmp_path / "data", env=BASE_ENV, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        yield server, http


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert PROBLEM_KEYS <= set(body), body
    assert body["status"] == status and body["error"] == body["detail"]
    if field is not None:
        assert body["errors"][0]["field"] == field, body
    return body


@pytest.mark.asyncio(loop_scope="module")
async def test_router_errors_are_problems(edge: tuple[ServerProcess, httpx.AsyncClient]) -> None:
    _, http = edge
    assert_problem(await http.get("/nope"), 404)
    # A room over plain HTTP: 426 naming the upgrade it needs; a name no room has: 404.
    plain = await http.get(f"/sync/{WEDDING.id}/guests")
    assert_problem(plain, 426)
    assert plain.headers["upgrade"] == "websocket"
    assert_problem(await http.get(f"/sync/{WEDDING.id}/menu"), 404)
    wrong = await http.put("/healthz")
    assert_problem(wrong, 405)
    assert "GET" in wrong.headers["allow"]
    assert_problem(await http.get(WEDDING.at("/docs/guests")), 401)
    assert_problem(await http.get(WEDDING.at("/docs/menu"), headers=auth()), 404)
    assert_problem(await http.post("/api/admin/revoke", json={"sub": "x"}), 401)


@pytest.mark.asyncio(loop_scope="module")
async def test_bad_fields_are_named(edge: tuple[ServerProcess, httpx.AsyncClient]) -> None:
    _, http = edge
    sessions = WEDDING.at("/sessions")
    cases: list[tuple[Any, int, str]] = [
        ({"sub": "a", "role": "family", "ttl": "long"}, 422, "ttl"),
        ({"sub": "a", "role": "family", "ttl": 10**9}, 422, "ttl"),
        ({"sub": "a", "role": "queen"}, 422, "role"),
        ({"sub": "a", "role": "family", "colour": "red"}, 422, "colour"),
        ({"role": "family"}, 422, "sub"),
        ({"sub": "a", "role": "family", "docs": {"guests": "maybe"}}, 422, "docs"),
        ([1, 2], 400, "body"),
    ]
    for body, status, field in cases:
        response = await http.post(sessions, json=body, headers=ADMIN_AUTH)
        assert_problem(response, status, field)
    assert_problem(await http.post(sessions, content=b"{", headers=ADMIN_AUTH), 400, "body")
    bad_wedding = await http.post(
        "/api/admin/revoke", json={"sub": "a", "wedding": "no way"}, headers=ADMIN_AUTH
    )
    assert_problem(bad_wedding, 422, "wedding")
    ops = await http.post(WEDDING.at("/docs/guests/ops"), json={"op": "add_guest"}, headers=auth())
    assert_problem(ops, 400, "name")


@pytest.mark.asyncio(loop_scope="module")
async def test_hostile_bodies_are_4xx_and_change_nothing(
    edge: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = edge
    doc = WEDDING.at("/docs/guests")
    # Non-ASCII base64 (a ValueError in base64.b64decode).
    sync = await http.post(f"{doc}/sync", json={"update": "ünïcode"}, headers=auth())
    assert_problem(sync, 400, "update")
    sync = await http.post(f"{doc}/sync", json={"state_vector": 5}, headers=auth())
    assert_problem(sync, 422, "state_vector")
    sync = await http.post(f"{doc}/sync", json={"update": "", "upadte": "AAA="}, headers=auth())
    assert_problem(sync, 422, "upadte")
    # JSON nested far past any recursion limit.
    nested = b'{"op": "add_guest", "name": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    assert_problem(await http.post(f"{doc}/ops", content=nested, headers=auth()), 400, "body")
    # A lone surrogate in a guest's name (pycrdt panics on it), with a canary beside it.
    surrogate = ('{"op": "add_guest", "name": "' + CANARY + ' \\ud800"}').encode()
    assert_problem(await http.post(f"{doc}/ops", content=surrogate, headers=auth()), 400, "name")
    notes = ('{"op": "add_guest", "name": "x", "notes": "' + CANARY + '\\udfff"}').encode()
    assert_problem(await http.post(f"{doc}/ops", content=notes, headers=auth()), 400, "notes")
    bad_limit = await http.get(f"{doc}/history", params={"limit": "9" * 5000}, headers=auth())
    assert_problem(bad_limit, 400, "limit")
    history = await http.get(f"{doc}/history", headers=auth())
    assert history.json() == {"history": []}
    assert server.alive


def _route_url(path: str) -> str:
    """A concrete URL of a route template (on the running test's wedding)."""
    return re.sub(
        r"\{(\w+)(?::\w+)?\}",
        lambda m: WEDDING.id if m.group(1) == "wedding_id" else "guests",
        path,
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_no_json_body_is_a_500_on_any_route(
    edge: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = edge
    before = len(_log_lines(server))
    not_utf8 = b'{"\xff\xfe": "\xc3"}'
    deep = b"[" * 1000 + b"]" * 1000
    nul = b'{"a\\u0000": "b\\u0000"}'
    sent = 0
    for route in http_routes():
        if route.body != "json":
            continue
        for body in (not_utf8, deep, nul):
            for headers in (auth(), {}):
                answer = await http.request(
                    route.method,
                    _route_url(route.path),
                    content=body,
                    headers={**headers, "content-type": "application/json"},
                )
                sent += 1
                assert 400 <= answer.status_code < 500, (route.path, body[:20], answer.text)
                assert_problem(answer, answer.status_code)
    # Each field is named: bytes that are not UTF-8, and NUL characters (PostgreSQL's
    # text cannot hold them; test_nul_characters_are_4xx_on_postgresql stores them there).
    doc = WEDDING.at("/docs/guests")
    ops = f"{doc}/ops"
    for content, field in (
        (b'{"op": "add_guest", "name": "Ann \xff"}', "name"),
        (b'{"op": "add_guest", "name": "Ann", "notes": "\xed\xa0\x80"}', "notes"),
        (b'{"op": "add_guest", "name": "Ann\\u0000"}', "name"),
        (b'{"op": "add_guest", "name": "Ann", "tags": ["a", "\\u0000"]}', "tags[1]"),
    ):
        assert_problem(await http.post(ops, content=content, headers=auth()), 400, field)
    event = b'{"type": "custom.x", "data": {"note": "\xff"}}'
    answer = await http.post(WEDDING.at("/events"), content=event, headers=auth())
    assert_problem(answer, 400, "data.note")
    session = b'{"sub": "ann\xff", "role": "couple"}'
    answer = await http.post(WEDDING.at("/sessions"), content=session, headers=ADMIN_AUTH)
    assert_problem(answer, 400, "sub")
    thread = b'{"subject": "\xff"}'
    answer = await http.post(WEDDING.at("/threads"), content=thread, headers=auth())
    assert_problem(answer, 400, "subject")
    assert (await http.get(doc, headers=auth())).json()["guests"] == {}
    # One access line per request, no error and no traceback.
    lines = _log_lines(server)[before:]
    assert not [line for line in lines if line["level"] not in ("info", "debug")], lines[-3:]
    assert len(lines) <= sent + 10
    assert "Traceback" not in bytes(server.log).decode(errors="replace")


@pytest.mark.asyncio(loop_scope="module")
async def test_a_deep_body_before_authentication_is_counted_by_the_rate_limiter(
    tmp_path: Path,
) -> None:
    env = {
        **BASE_ENV,
        "CRDT_SERVER_RATE_EVENTS_PER_MINUTE": "3",
        "CRDT_SERVER_RATE_THREADS_PER_MINUTE": "3",
    }
    deep = b"[" * 1000 + b"]" * 1000
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        # Every route asks who you are before it reads the body (401), counted all the same.
        for path, status in ((WEDDING.at("/events"), 401), (WEDDING.at("/threads"), 401)):
            for _ in range(3):
                assert_problem(await http.post(path, content=deep), status)
            assert_problem(await http.post(path, content=deep), 429)
            assert_problem(await http.post(path, content=b'{"priority": "\xff"}'), 429)

        def posts() -> list[dict[str, Any]]:
            return [line for line in _log_lines(server) if line.get("method") == "POST"]

        deadline = time.monotonic() + 5
        while len(posts()) < 10:
            assert time.monotonic() < deadline, "the access lines never came"
            await asyncio.sleep(0.02)
        lines = _log_lines(server)
        assert len(posts()) == 10  # one line per request
        assert not [line for line in lines if line["level"] not in ("info", "debug")]
        assert "Traceback" not in bytes(server.log).decode(errors="replace")


@pytest.mark.asyncio(loop_scope="module")
async def test_event_filters_and_resume_positions_are_bounded(
    edge: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = edge
    events = WEDDING.at("/events")
    many = ",".join(f"custom.t{i}" for i in range(1000))
    assert_problem(await http.get(events, params={"types": many}, headers=auth()), 400, "types")
    fifty = ",".join(f"custom.t{i}" for i in range(50))
    listed = await http.get(events, params={"types": fifty}, headers=auth())
    assert listed.status_code == 200, listed.text
    stream = f"{events}/stream"
    answer = await http.get(stream, params={"types": many}, headers=auth())
    assert_problem(answer, 400, "types")
    huge = "9" * 26
    answer = await http.get(stream, headers={**auth(), "Last-Event-ID": huge})
    assert_problem(answer, 400, "Last-Event-ID")
    answer = await http.get(stream, headers={**auth(), "Last-Event-ID": str(2**63)})
    assert_problem(answer, 400, "Last-Event-ID")
    assert_problem(await http.get(stream, params={"after": huge}, headers=auth()), 400, "after")
    assert_problem(await http.get(events, params={"after": huge}, headers=auth()), 400, "after")
    # A ticket is not used up by a refused request.
    ticket = (await http.post(f"{events}/stream-tickets", headers=auth())).json()["ticket"]
    answer = await http.get(stream, params={"ticket": ticket, "after": huge})
    assert_problem(answer, 400, "after")
    async with http.stream("GET", stream, params={"ticket": ticket, "after": "0"}) as live:
        assert live.status_code == 200
    assert server.alive


@pytest.mark.asyncio(loop_scope="module")
async def test_typed_parameters_name_the_one_at_fault(
    edge: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = edge
    doc = WEDDING.at("/docs/guests")
    for params, field in (
        ({"format": "html"}, "format"),
        ({"at": "x"}, "at"),
        ({"at": "-1"}, "at"),
        ({"at": str(2**63)}, "at"),
    ):
        assert_problem(await http.get(doc, params=params, headers=auth()), 400, field)
    assert_problem(await http.get(f"{doc}/history?limit=x", headers=auth()), 400, "limit")
    # The history's limit is clamped, not refused (as it always was).
    for limit in ("0", "5000"):
        clamped = await http.get(f"{doc}/history", params={"limit": limit}, headers=auth())
        assert clamped.status_code == 200, clamped.text
    events = WEDDING.at("/events")
    for params in ({"limit": "0"}, {"limit": "501"}, {"after": "-1"}):
        (field,) = params
        assert_problem(await http.get(events, params=params, headers=auth()), 400, field)
    # A path parameter that cannot be one is a 404 naming it.
    assert_problem(await http.get(WEDDING.at("/docs/menu"), headers=auth()), 404, "doc")
    bad_id = WEDDING.at("/conflicts/not-an-id/resolve")
    refused = await http.post(bad_id, json={"acknowledge": True}, headers=auth())
    assert_problem(refused, 404, "conflict_id")
    assert_problem(await http.get("/api/weddings/-w/presence", headers=auth()), 404, "wedding_id")


@pytest.mark.asyncio
async def test_nul_characters_are_4xx_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    env = {**BASE_ENV, "CRDT_SERVER_DATABASE_URL": postgres_url}
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        members = WEDDING.at("/members")
        for method, url, body, field in (
            ("PUT", f"{members}/bob", {"role": "vendor", "name": "Bob\x00"}, "name"),
            ("POST", "/api/admin/revoke", {"sub": "bob\x00"}, "sub"),
            ("POST", WEDDING.at("/threads"), {"subject": "Cake\x00"}, "subject"),
            ("POST", WEDDING.at("/events"), {"type": "custom.x", "data": {"a": "\x00"}}, "data.a"),
            ("PUT", f"{members}/bob%00", {"role": "vendor"}, "sub"),
        ):
            headers = ADMIN_AUTH if "admin" in url else auth()
            answer = await http.request(method, url, json=body, headers=headers)
            assert_problem(answer, 400, field)
        answer = await http.get(WEDDING.at("/threads"), params={"q": "a\x00"}, headers=auth())
        assert_problem(answer, 400, "q")
        added = await http.put(f"{members}/bob", json={"role": "vendor"}, headers=auth())
        assert added.status_code in (200, 201), added.text
        lines = _log_lines(server)
        assert not [line for line in lines if line["level"] not in ("info", "debug")]


@pytest.mark.asyncio(loop_scope="module")
async def test_header_token_wins_over_query_token(
    edge: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = edge
    doc = WEDDING.at("/docs/guests")
    good, wrong_wedding = token(), token(wedding="w2")
    both = await http.get(doc, params={"token": wrong_wedding}, headers=auth())
    assert both.status_code == 200, both.text
    assert_problem(await http.get(doc, params={"token": good}, headers=auth(wedding="w2")), 403)
    assert (await http.get(doc, params={"token": good})).status_code == 200
    # The upgrade gate reads it the same way.
    url = f"{server.ws_url}/{WEDDING.id}/guests?token={wrong_wedding}"
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {good}"}):
        pass
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            f"{server.ws_url}/{WEDDING.id}/guests?token={good}",
            additional_headers={"Authorization": f"Bearer {wrong_wedding}"},
        ):
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.asyncio(loop_scope="module")
async def test_body_limits_answer_413_before_parsing(
    edge: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = edge
    ops = WEDDING.at("/docs/guests/ops")
    big = b'{"op": "add_guest", "name": "' + b"a" * 70_000 + b'"}'
    assert_problem(await http.post(ops, content=big, headers=auth()), 413, "body")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 10_000

    # No Content-Length: the limit is counted while the chunks stream in.
    assert_problem(await http.post(ops, content=chunks(), headers=auth()), 413, "body")
    small = await http.post(ops, json={"op": "add_guest", "name": "Ann"}, headers=auth())
    assert small.status_code == 200, small.text


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.asyncio(loop_scope="module")
async def test_a_200_mb_chunked_post_is_refused_without_growing_the_server(
    own_edge: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = own_edge
    assert server.process is not None
    before = _rss_kib(server.process.pid)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        f"POST {WEDDING.at('/docs/guests/ops')} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {token()}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    writer.write(head.encode())
    chunk = b"%x\r\n" % (1 << 20) + b" " * (1 << 20) + b"\r\n"
    sent = 0
    answer = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
    slowest_health = 0.0
    try:
        async with asyncio.timeout(60):
            # Keep pushing after the answer, as a hostile client would: the server must
            # neither buffer nor parse what it refused.
            while sent < 200 << 20:
                writer.write(chunk)
                try:
                    await asyncio.wait_for(writer.drain(), 0.5)
                except TimeoutError:
                    pass  # the server stopped reading: as it should
                except ConnectionError:
                    break
                sent += 1 << 20
                if sent % (20 << 20) == 0:
                    started = time.perf_counter()
                    assert (await http.get("/healthz")).status_code == 200
                    slowest_health = max(slowest_health, time.perf_counter() - started)
            status_line = await answer
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    started = time.perf_counter()
    assert (await http.get("/healthz")).status_code == 200
    slowest_health = max(slowest_health, time.perf_counter() - started)
    assert slowest_health < 0.5
    grown_mib = (_rss_kib(server.process.pid) - before) / 1024
    print(f"sent {sent >> 20} MiB, RSS +{grown_mib:.1f} MiB, healthz {slowest_health:.3f} s")
    assert grown_mib < 20, grown_mib


async def _closed_by_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Keep writing body bytes until the server ends the connection; the bytes sent."""
    sent = 0
    chunk = b" " * (1 << 20)
    async with asyncio.timeout(20):
        while True:
            try:
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 0.5)
            except TimeoutError:
                pass  # the server stopped reading; it must also close
            except ConnectionError:
                return sent
            sent += len(chunk)
            if reader.at_eof():
                return sent


@pytest.mark.asyncio(loop_scope="module")
async def test_an_early_413_or_429_closes_the_connection_instead_of_reading_the_body(
    tmp_path: Path,
) -> None:
    env = {**BASE_ENV, "CRDT_SERVER_RATE_WRITE_PER_MINUTE": "2"}
    async with ServerProcess(tmp_path / "data", env=env, anonymous=False) as server:
        ops = WEDDING.at("/docs/guests/ops")
        for length, status in ((200 << 20, 413), (60_000, 200), (60_000, 429)):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                writer.write(
                    f"POST {ops} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token()}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()
                )
                if status == 200:
                    body = b'{"op": "add_guest", "name": "Ann"}'
                    writer.write(body + b" " * (length - len(body)))
                async with asyncio.timeout(10):
                    head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 %d" % status), head
                if status == 200:
                    continue
                # The server reads little more of it (1 MiB at most, for a client that reads
                # the answer once it has sent its body): pushing on meets a closed connection.
                assert await _closed_by_server(reader, writer) < 16 << 20
            finally:
                writer.close()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200


@pytest.mark.asyncio(loop_scope="module")
async def test_a_client_that_leaves_mid_body_is_one_info_line(
    own_edge: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, _ = own_edge
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            f"POST {WEDDING.at('/docs/guests/ops')} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token()}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        async with asyncio.timeout(10):  # 100 Continue: the server is reading the body
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
        writer.write(b'{"op": "add_guest", "name": "Ann')
        await writer.drain()
        writer.transport.abort()

    def left(line: dict[str, Any]) -> bool:
        return line.get("status") == 499

    deadline = time.monotonic() + 10
    while sum(1 for line in _log_lines(server) if left(line)) < 20:
        assert time.monotonic() < deadline, "the access lines never came"
        await asyncio.sleep(0.02)
    lines = _log_lines(server)
    assert not [line for line in lines if line["level"] not in ("info", "debug")], lines[-3:]
    assert "Traceback" not in bytes(server.log).decode(errors="replace")
    assert sum(1 for line in lines if left(line)) == 20
    assert [line["level"] for line in lines if left(line)] == ["info"] * 20


@pytest.mark.asyncio(loop_scope="module")
async def test_rate_limit_per_subject_and_family(tmp_path: Path) -> None:
    env = {**BASE_ENV, "CRDT_SERVER_RATE_READ_PER_MINUTE": "3"}
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        doc = WEDDING.at("/docs/guests")
        for _ in range(3):
            assert (await http.get(doc, headers=auth(sub="ann"))).status_code == 200
        limited = await http.get(doc, headers=auth(sub="ann"))
        assert_problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1
        # Another subject, another family and the health checks keep their own budgets.
        assert (await http.get(doc, headers=auth(sub="bob"))).status_code == 200
        write = await http.post(
            f"{doc}/ops", json={"op": "add_guest", "name": "A"}, headers=auth(sub="ann")
        )
        assert write.status_code == 200
        assert (await http.get("/healthz")).status_code == 200


def test_emergency_from_couple_or_planner_bypasses_the_limiter() -> None:
    limiter = HttpRateLimiter({"events": 1}, emergency_per_hour=2)
    planner, vendor = RateKey("sub:p", "planner"), RateKey("sub:v", "vendor")
    limiter.check("events", planner)
    limiter.check("events", vendor)
    for _ in range(5):
        limiter.check("events", planner, priority="emergency")
    with pytest.raises(ApiError) as refused:
        limiter.check("events", planner, priority="urgent")
    assert refused.value.status_code == 429 and "Retry-After" in refused.value.headers
    # Anyone else's emergency: never the family's budget, a budget of its own an hour.
    with pytest.raises(ApiError):
        limiter.check("events", vendor)
    limiter.check("events", vendor, priority="emergency")
    limiter.check("events", vendor, priority="emergency")
    with pytest.raises(ApiError) as over:
        limiter.check("events", vendor, priority="emergency")
    assert over.value.status_code == 429 and over.value.headers["Retry-After"] == "1800"
    unlimited = HttpRateLimiter({"events": 1})
    for _ in range(20):
        unlimited.check("events", vendor, priority="emergency")
    assert may_bypass(RateKey("sub:c", "couple"), "emergency")
    assert not may_bypass(RateKey("addr:1.2.3.4"), "emergency")


def test_redaction_works_on_the_decoded_name() -> None:
    for line in (
        "GET /sync/w1/guests?token=SECRET1 HTTP/1.1",
        "/sync/w1/guests?%74oken=SECRET1",
        "/sync/w1/guests?a=1&%2574%256Fken=SECRET1",
        "/sync?x=1%26token%3DSECRET1",
        "path='/x' query_string=b'ACCESS_TOKEN=SECRET1'",
    ):
        assert "SECRET1" not in redact_tokens(line), line
    assert redact_tokens("tokens=2&tok=3") == "tokens=2&tok=3"


def _log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    lines = []
    for raw in bytes(server.log).decode(errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


async def _wait_for_log(server: ServerProcess, predicate: Any, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not any(predicate(line) for line in _log_lines(server)):
        assert time.monotonic() < deadline, "log line never came"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio(loop_scope="module")
async def test_access_log_request_id_and_metrics(
    own_edge: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = own_edge
    response = await http.get(
        WEDDING.at("/docs/guests"), headers={**auth(), "X-Request-ID": "req-42"}
    )
    assert response.headers["x-request-id"] == "req-42"
    generated = await http.get("/healthz", headers={"X-Request-ID": "bad id\twith junk"})
    assert generated.headers["x-request-id"] != "bad id\twith junk"
    await http.get("/nope/at/all")
    await _wait_for_log(server, lambda line: line.get("status") == 404)
    access = [line for line in _log_lines(server) if line["logger"] == "crdt_server.access"]
    entry = next(line for line in access if line.get("request_id") == "req-42")
    assert entry["route"] == "/api/weddings/{wedding_id}/docs/{doc}"
    assert entry["method"] == "GET" and entry["status"] == 200 and entry["duration_ms"] >= 0
    assert any(line["route"] == "<unmatched>" and line["status"] == 404 for line in access)
    metrics = (await http.get("/metrics")).text
    assert (
        'crdt_http_requests_total{method="GET",route="/api/weddings/{wedding_id}/docs/{doc}",'
        'status="200"} 1.0' in metrics
    )
    assert 'route="<unmatched>",status="404"' in metrics
    assert "crdt_http_request_seconds_bucket" in metrics


@pytest.mark.asyncio(loop_scope="module")
async def test_no_token_and_no_document_content_reaches_the_log(
    edge: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = edge
    secret = token(sub="tok-owner")
    doc = WEDDING.at("/docs/guests")
    await http.get(f"{doc}?%74oken={secret}")
    await http.get(f"{doc}?token={secret}")
    hostile = ('{"op": "add_guest", "name": "' + CANARY + '\\ud800"}').encode()
    await http.post(f"{doc}/ops", content=hostile, headers=auth())
    await http.post(f"{doc}/ops", json={"op": "update_guest", "guest_id": CANARY}, headers=auth())
    await http.post(
        f"{doc}/ops", json={"op": "add_guest", "name": CANARY, "rsvp": CANARY}, headers=auth()
    )
    # And over the WebSocket: well-framed messages whose contents are hostile and carry the
    # canary (a broken Yjs update, a broken awareness state, a lone surrogate in a name).
    canary = CANARY.encode()
    update = b"\x01\x01\x05\x00\x04\x01\x05guests" + bytes([len(canary)]) + canary + b"\xff\xff"
    state = ('{"user": {"name": "' + CANARY + '\\ud800"}').encode()
    awareness = b"\x01\x01\x07\x01" + bytes([len(state)]) + state
    doc: Doc[Any] = Doc()
    doc.get("guests", type=Map)["g1"] = CANARY + " XYZ"
    # The same update with "XYZ" turned into a UTF-8-encoded lone surrogate.
    surrogate_update = doc.get_update().replace(b"XYZ", b"\xed\xa0\x80")
    frames = [
        b"\x00\x02" + bytes([len(surrogate_update)]) + surrogate_update,
        b"\x00\x02" + bytes([len(update)]) + update,
        b"\x01" + bytes([len(awareness)]) + awareness,
        b"\x00\x02" + bytes([len(canary) + 2]) + b"\x01\x00" + canary,
    ]
    for frame in frames:
        async with websockets.connect(
            f"{server.ws_url}/{WEDDING.id}/guests?%74oken={secret}"
        ) as ws:
            await ws.send(frame)
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(5):
                    while True:
                        await ws.recv()
    marker = "end-of-canary-test"
    await http.get("/healthz", headers={"X-Request-ID": marker})
    await _wait_for_log(server, lambda line: line.get("request_id") == marker)
    log = bytes(server.log).decode(errors="replace")
    assert CANARY not in log
    assert "Canaryfeather" not in log
    assert secret not in log and secret.split(".")[2] not in log


@pytest.mark.asyncio(loop_scope="module")
async def test_generated_urls_start_from_public_url(
    edge: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = edge
    response = await http.post(
        WEDDING.at("/sessions"), json={"sub": "may", "role": "family"}, headers=ADMIN_AUTH
    )
    assert response.status_code == 201, response.text
    assert response.json()["url"] == "wss://plan.example.com/sync"


@pytest.mark.asyncio(loop_scope="module")
async def test_docs_page_and_assets_are_served_locally(
    edge: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = edge
    page = await http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "://" not in page.text  # nothing from a CDN: every asset is on this server
    for asset in ("/docs/reference.js", "/docs/reference.css"):
        response = await http.get(asset)
        assert response.status_code == 200 and len(response.content) > 100, asset
    assert "openapi" in page.text
    assert_problem(await http.get("/docs/../../etc/passwd"), 404)
    assert_problem(await http.get("/docs/nothing.js"), 404)


@pytest.mark.asyncio(loop_scope="module")
async def test_openapi_is_generated_complete(
    edge: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = edge
    spec = (await http.get("/openapi.json")).json()
    assert spec["openapi"] == "3.1.0"
    schemes = spec["components"]["securitySchemes"]
    assert {"token", "adminKey"} <= set(schemes)
    ids = set()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op["operationId"] not in ids
            ids.add(op["operationId"])
            assert op["summary"] and "security" in op, (path, method)
            statuses = set(op["responses"])
            assert any(s.startswith("2") for s in statuses), (path, method)
            for status, answer in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert "application/problem+json" in answer["content"], (path, status)
    sessions = spec["paths"]["/api/weddings/{wedding_id}/sessions"]["post"]
    body = sessions["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/SessionRequest")
    assert spec["components"]["schemas"]["SessionRequest"]["additionalProperties"] is False
    assert {"400", "401", "413", "422", "429"} <= set(sessions["responses"])
