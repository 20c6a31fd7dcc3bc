"""Routes declared once: a handler's typed path, query and body parameters are decoded before
it runs (404 / 400 / 422 naming the parameter), generate its OpenAPI parameters, and a
declaration that does not fit its path fails at import; features' domain errors become
problem+json only at the edge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import msgspec
import pytest
import pytest_asyncio
from msgspec import Meta
from starlette.responses import Response

from crdt_server.app import http_routes
from crdt_server.edge.openapi import openapi_document
from crdt_server.edge.params import DocPath, DocumentKind, RoomKind, WeddingPath
from crdt_server.edge.problems import DOMAIN_STATUS, translate
from crdt_server.edge.routing import ApiCall, Routes
from crdt_server.errors import DomainError, NotFound, TooMany, Unavailable
from crdt_server.names import ROOM_KINDS
from crdt_server.storage import StoreError
from crdt_server.testing.tokens import TokenMinter
from tests.server import ServerProcess

pytestmark = pytest.mark.timeout(60)

SECRET = "routes-test-secret-at-least-32-bytes-long"
MINT = TokenMinter(SECRET)


class Query(msgspec.Struct):
    limit: Annotated[int, Meta(ge=1, le=9, description="how many")] = 3
    tag: list[str] = []


class Body(msgspec.Struct):
    name: str


async def _handler(call: ApiCall, path: WeddingPath, query: Query, body: Body) -> Response:
    return Response()


def test_a_declaration_records_its_typed_parameters_and_generates_openapi() -> None:
    routes = Routes()
    routes.post("/api/weddings/{wedding_id}/things", "makeThing", "Make a thing", family="write")(
        _handler
    )
    (route,) = routes()
    assert (route.path_model, route.query_model, route.request_model) == (WeddingPath, Query, Body)
    assert route.body == "json" and route.body_param
    operation = openapi_document([route], version="t")["paths"][route.path]["post"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["wedding_id"]["in"] == "path" and parameters["wedding_id"]["required"]
    assert parameters["limit"] == {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 9, "default": 3},
        "description": "how many",
    }
    assert parameters["tag"]["schema"]["type"] == "array"
    assert "requestBody" in operation and "400" in operation["responses"]


def test_a_declaration_that_does_not_fit_fails_at_import() -> None:
    routes = Routes()

    async def wrong_path(call: ApiCall, path: DocPath) -> Response:
        return Response()

    async def unknown(call: ApiCall, params: WeddingPath) -> Response:
        return Response()

    async def untyped(call: ApiCall, query: dict[str, Any]) -> Response:
        return Response()

    with pytest.raises(TypeError, match="path parameters"):
        routes.get("/api/weddings/{wedding_id}", "a", "a", family="read")(wrong_path)
    with pytest.raises(TypeError, match="unknown parameters"):
        routes.get("/api/weddings/{wedding_id}", "b", "b", family="read")(unknown)
    with pytest.raises(TypeError, match="msgspec Struct"):
        routes.get("/api/weddings/{wedding_id}", "c", "c", family="read")(untyped)

    async def pathless(call: ApiCall) -> Response:
        return Response()

    with pytest.raises(TypeError, match="takes a path Struct"):
        routes.get("/api/weddings/{wedding_id}", "d", "d", family="read")(pathless)
    assert routes() == []


class Picky(msgspec.Struct):
    limit: Annotated[int, Meta(ge=1, le=500)] = 50
    status: Literal["open", "resolved"] | None = None
    code: Annotated[str, Meta(pattern="^[a-z]+$", max_length=5)] = "a"
    unread: bool = False


def test_a_parameter_that_does_not_fit_is_said_in_words() -> None:
    from crdt_server.edge.routing import _field_at

    said = {}
    for raw in ({"limit": "0"}, {"limit": "x"}, {"status": "gone"}, {"code": "abcdefg"},
                {"code": "AB"}, {"unread": "maybe"}):  # fmt: skip
        try:
            msgspec.convert(raw, Picky, strict=False)
        except msgspec.ValidationError as exc:
            name, message = _field_at(exc, Picky)
            said[(name, next(iter(raw.values())))] = message
    assert said == {
        ("limit", "0"): "must be a whole number at least 1",
        ("limit", "x"): "must be a whole number",
        ("status", "gone"): "must be one of open, resolved",
        ("code", "abcdefg"): "must be at most 5 characters",
        ("code", "AB"): "must match ^[a-z]+$",
        ("unread", "maybe"): "must be true or false",
    }


def test_the_shared_kinds_are_the_servers() -> None:
    from typing import get_args

    from crdt_server.documents import DOCUMENT_KINDS

    assert set(get_args(DocumentKind)) == set(DOCUMENT_KINDS)
    assert set(get_args(RoomKind)) == set(ROOM_KINDS)


def test_every_path_parameter_of_the_api_is_documented_with_a_schema() -> None:
    document = openapi_document(http_routes(), version="t")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            named = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "path"}
            in_path = {part[1:-1] for part in path.split("/") if part.startswith("{")}
            assert named == in_path, (method, path)


def test_domain_errors_become_problems_only_at_the_edge() -> None:
    error = translate(NotFound("no state is kept that far back", field="seq"))
    assert error is not None
    assert (error.status_code, error.message) == (404, "seq: no state is kept that far back")
    assert [(p.field, p.message) for p in error.errors] == [
        ("seq", "no state is kept that far back")
    ]
    busy = translate(TooMany("too many open streams", retry_after=5))
    assert busy is not None and (busy.status_code, busy.headers) == (429, {"Retry-After": "5"})
    assert all(issubclass(kind, DomainError) for kind in DOMAIN_STATUS)

    class Unkept(NotFound):
        """A feature's own kind is its base's status."""

    unkept = translate(Unkept("gone"))
    assert unkept is not None and unkept.status_code == 404


def test_a_store_that_cannot_commit_is_unavailable_with_retry_after() -> None:
    """Issue 47: a store failure on a feature's route was a 500; it is ``Unavailable``, as
    the documents' commit failures are: 503 with ``Retry-After``."""
    for exc in (Unavailable("the disk is full"), StoreError("database or disk is full")):
        error = translate(exc)
        assert error is not None, exc
        assert (error.status_code, error.headers) == (503, {"Retry-After": "1"}), exc
    later = translate(Unavailable("maintenance", retry_after=30))
    assert later is not None and later.headers == {"Retry-After": "30"}
    # The store's reason is for the operator's log, not the client.
    hidden = translate(StoreError("database or disk is full"))
    assert hidden is not None and "disk" not in hidden.message


@pytest_asyncio.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    env = {"CRDT_SERVER_AUTH_SECRET": SECRET}
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10, headers=MINT.headers()) as client,
    ):
        yield client


@pytest.mark.asyncio
async def test_typed_parameters_refuse_what_does_not_fit_naming_it(http: httpx.AsyncClient) -> None:
    versions = "/api/weddings/w1/docs/guests/versions"
    assert (await http.get(versions, params={"limit": "2"})).status_code == 200
    # an empty value (a form's empty field) is no value: the default
    assert (await http.get(versions, params={"limit": "", "after": ""})).status_code == 200
    for value in ("0", "501", "ten", "1.5"):
        answer = await http.get(versions, params={"limit": value})
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in answer.json()["errors"]] == ["limit"]
    # the conflicts room keeps no versions; a wedding id that cannot be one is no wedding
    for path, name in (
        ("/api/weddings/w1/docs/conflicts/versions", "doc"),
        ("/api/weddings/-w1/docs/guests/versions", "wedding_id"),
        ("/api/weddings/w1%0A/docs/guests/versions", None),
    ):
        answer = await http.get(path)
        assert answer.status_code == 404, (path, answer.text)
        if name is not None:
            assert [e["field"] for e in answer.json()["errors"]] == [name]
    restore = "/api/weddings/w1/docs/guests/restore"
    for body, status in (({"seq": "one"}, 422), ({}, 422), ({"seq": 1, "x": 1}, 422)):
        answer = await http.post(restore, json=body)
        assert answer.status_code == status, answer.text
        assert answer.json()["errors"], answer.text
    answer = await http.post(restore, json={"seq": 10**6})
    assert answer.status_code == 404 and answer.json()["errors"][0]["field"] == "seq"
