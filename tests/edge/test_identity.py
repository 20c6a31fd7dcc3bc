"""Identity once: every credentialed route takes only the credential kinds it declares.

Each kind a route does not take (a token, the admin key, a calendar token, a stream ticket,
a webhook signature, a native app's device secret, no credential at all) is refused with 401
naming it, before the handler runs: nothing is read, nothing changes. Against a real server,
for every route of the table (the features' included)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from crdt_server.app import http_routes
from crdt_server.edge.identity import KINDS, CredentialKind
from crdt_server.edge.routing import ApiRoute
from crdt_server.testing.server import ServerProcess
from crdt_server.testing.tokens import TokenMinter

pytestmark = [pytest.mark.timeout(120)]

SECRET = "identity-test-secret-at-least-32-bytes!!"
ADMIN_KEY = "identity-test-admin-key-0123456789"
MINT = TokenMinter(SECRET)
ENV = {
    "CRDT_SERVER_AUTH_SECRET": SECRET,
    "CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY,
    **{f"CRDT_SERVER_RATE_{f}_PER_MINUTE": "100000" for f in ("READ", "WRITE", "ADMIN")},
    "CRDT_SERVER_RATE_EVENTS_PER_MINUTE": "100000",
    "CRDT_SERVER_RATE_THREADS_PER_MINUTE": "100000",
}
PATH_VALUES = {
    "wedding_id": "w1",
    "doc": "guests",
    "guest_id": "g1",
    "source": "crm",
    "token_id": "ct_0123456789abcdef",
    "name": "app.js",
    "conflict_id": "capacity.table:0123456789ab",
    "hook": "wh_" + "0" * 24,
    "delivery": "msg_" + "0" * 24,
    "thread_id": "t1",
    "message_id": "m1",
    "sub": "ada",
    "invitation_id": "0123456789abcdef",
    "device_id": "d_0123456789abcdef",
    "household_id": "h1",
    "calendar_id": "cd_0123456789abcdef",
    "code": "w1.h1." + "A" * 22,
    "seq": "1",
    "vendor_id": "v1",
    "link_id": "rsl_0123456789abcdef",
    "subscription_id": "ps_" + "0" * 24,
}


def credential(kind: CredentialKind) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters presenting one kind of credential."""
    if kind == "jwt":
        return MINT.headers(role="couple", wedding="w1"), {}
    if kind == "admin":
        return {"Authorization": f"Bearer {ADMIN_KEY}"}, {}
    if kind == "calendar":
        return {}, {"token": "cal_" + "x" * 43}
    if kind == "runsheet":
        return {}, {"token": "rs_" + "x" * 43}
    if kind == "ticket":
        return {}, {"ticket": "t" * 32}
    if kind == "signature":
        return {
            "webhook-id": "msg_1",
            "webhook-timestamp": "1700000000",
            "webhook-signature": "v1,AAAA",
        }, {}
    if kind == "session":
        return {"Cookie": "crdt_session=" + "s" * 43}, {}
    if kind == "device":
        return {"Authorization": "Device " + "d" * 43}, {}
    return {}, {}


def concrete(route: ApiRoute) -> str:
    return re.sub(r"{(\w+)}", lambda m: PATH_VALUES[m.group(1)], route.path)


def refusals() -> list[tuple[str, str, CredentialKind]]:
    cases = []
    for route in http_routes():
        kinds = route.kinds
        if kinds is None:
            continue  # a public route reads no credential
        for kind in KINDS:
            if kind == "rsvp" or (kind == "none" and "rsvp" in kinds):
                continue  # a code is a path segment of its own routes: always presented
            if kind == "session" and kinds & {"none", "rsvp"}:
                continue  # only /api/session/ reads the cookie: elsewhere it is no credential
            if kind not in kinds:
                cases.append((route.method, route.path, kind))
    return cases


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    home = tmp_path_factory.mktemp("identity")
    async with ServerProcess(home, env=ENV, anonymous=False) as started:
        yield started


def test_every_credentialed_route_declares_its_kinds() -> None:
    routes = [r for r in http_routes() if r.kinds is not None]
    assert len(routes) > 40
    assert {k for r in routes for k in r.kinds or ()} == set(KINDS)
    by_id = {r.operation_id: r.kinds for r in http_routes()}
    assert by_id["calendarFeed"] == {"jwt", "calendar"}
    assert by_id["runSheet"] == {"runsheet"}
    assert by_id["streamEvents"] == {"jwt", "ticket"}
    assert by_id["receiveWebhook"] == {"signature", "none"}
    assert by_id["exportWedding"] == {"jwt", "admin"}
    assert by_id["revokeSessions"] == {"admin"}
    assert by_id["createWedding"] == {"admin", "jwt", "none"}
    assert by_id["readRsvp"] == by_id["answerRsvp"] == {"rsvp"}
    assert by_id["refreshDeviceSession"] == by_id["renameDevice"] == {"session", "device"}


@pytest.mark.asyncio(loop_scope="module")
async def test_every_route_refuses_every_kind_it_does_not_take(server: ServerProcess) -> None:
    cases = refusals()
    assert len(cases) > 200
    routes = {(r.method, r.path): r for r in http_routes()}
    wrong = []
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        for method, path, kind in cases:
            route = routes[(method, path)]
            headers, params = credential(kind)
            if "session" in (route.kinds or ()):
                # A cookie-reading route checks the origin first (403 from elsewhere).
                headers = {**headers, "Origin": server.url}
            content = None
            if route.body == "json":
                headers = {**headers, "content-type": "application/json"}
                content = b"{}"
            elif route.body == "update":
                headers = {**headers, "content-type": "application/octet-stream"}
                content = b"\x00\x00"
            answer = await http.request(
                method, concrete(route), headers=headers, params=params, content=content
            )
            problem = answer.json() if answer.status_code == 401 else {}
            fields = {e.get("field") for e in problem.get("errors", [])}
            if answer.status_code != 401 or not fields & {"Authorization", "token"}:
                wrong.append((method, path, kind, answer.status_code, answer.text[:120]))
            elif "WWW-Authenticate" not in answer.headers:
                wrong.append((method, path, kind, 401, "no WWW-Authenticate challenge"))
    assert wrong == []


def test_every_401_carries_the_challenge() -> None:
    """Whoever refuses with 401 (the resolver, a handler asking for a principal, a
    feature's ``Unauthenticated``), the answer challenges (RFC 9110 15.5.2)."""
    from crdt_server.edge.problems import ApiError, problem_response, translate
    from crdt_server.errors import Unauthenticated

    for error in (ApiError(401, "a token is required"), translate(Unauthenticated("no"))):
        assert error is not None
        answer = problem_response(error)
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="crdt-server"'
    assert "WWW-Authenticate" not in problem_response(ApiError(403, "no")).headers
