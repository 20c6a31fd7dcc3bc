"""The OpenAPI 3.1 document, generated from the route table and its msgspec models.

Nothing here describes a route by hand: paths, methods, ``operationId``, summaries, path and
query parameters, request and response bodies (JSON schemas from
``msgspec.json.schema_components``), the error answers (``application/problem+json``) and
the security schemes all come from :class:`crdt_server.edge.routing.ApiRoute` values.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import msgspec

from crdt_server.edge.problems import PROBLEM_JSON, Problem
from crdt_server.edge.routing import BINARY, JSON, ApiRoute, takes_parameters

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{name}"
_SECURITY_SCHEMES = {
    "token": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A token from the sessions endpoint or `crdt-server token`; the "
        "`token` query parameter is accepted too (the header wins).",
    },
    "tokenQuery": {"type": "apiKey", "in": "query", "name": "token"},
    "deviceSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "crdt_session",
        "description": "A device session's cookie (set by `POST /api/sign-in/complete`; "
        "`HttpOnly; Secure; SameSite=Strict`, path `/api/session`). Its routes answer 403 "
        "to a request whose `Origin` is not the server's own.",
    },
    "deviceSecret": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Device <secret>`: a native app's device session secret (the "
        "`device_secret` of `POST /api/sign-in/complete` or `POST /api/invitations/accept` "
        "with `client` `app`). Taken by the `/api/session` routes only (no `Origin` rule); "
        "401 on every other route.",
    },
    "adminKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin API key (`CRDT_SERVER_ADMIN_API_KEY`).",
    },
}
_ERROR_TEXT = {
    400: "malformed input (the fields at fault are in `errors`)",
    401: "missing, invalid, expired or revoked credentials",
    403: "not allowed",
    404: "no such wedding, document or route",
    409: "conflict with the current state (an Idempotency-Key reused with another body)",
    410: "gone for good (an erased wedding)",
    413: "body over this route's limit",
    415: "the body is not of the media type this route reads",
    422: "well formed but impossible (nothing changed)",
    429: "rate limited (see Retry-After)",
    503: "the store could not commit or the server is overloaded (see Retry-After)",
}


def _schema(model: Any, index: dict[Any, int], schemas: list[dict[str, Any]]) -> dict[str, Any]:
    return schemas[index[model]]


def _struct_parameters(model: Any, where: str) -> list[dict[str, Any]]:
    """OpenAPI parameters from a Struct of path or query parameters: each field's schema
    (its ``Meta`` description becomes the parameter's)."""
    (ref,), components = msgspec.json.schema_components([model], ref_template=_REF)
    struct = components[ref["$ref"].rsplit("/", 1)[1]]
    required = set(struct.get("required", ()))
    parameters = []
    for name, schema in struct.get("properties", {}).items():
        schema = dict(schema)
        description = schema.pop("description", "")
        parameter: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": schema,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _operation(
    route: ApiRoute, index: dict[Any, int], schemas: list[dict[str, Any]]
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    if route.path_model is not None:
        parameters += _struct_parameters(route.path_model, "path")
    if route.query_model is not None:
        parameters += _struct_parameters(route.query_model, "query")
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.family],
    }
    if route.description:
        operation["description"] = route.description
    if parameters:
        operation["parameters"] = parameters
    content: dict[str, Any] = {}
    if route.request_model is not None:
        content[JSON] = {"schema": _schema(route.request_model, index, schemas)}
    if route.binary_request:
        content[BINARY] = {"schema": {"type": "string", "format": "binary"}}
    if content:
        operation["requestBody"] = {"required": True, "content": content}
    success: dict[str, Any] = {}
    if route.response_model is not None:
        success[JSON] = {"schema": _schema(route.response_model, index, schemas)}
    if route.binary_response:
        success[BINARY] = {"schema": {"type": "string", "format": "binary"}}
    if route.media_type is not None:
        success[route.media_type] = {"schema": {"type": "string"}}
    responses: dict[str, Any] = {
        str(status): {"description": HTTPStatus(status).phrase, "content": success}
        for status in sorted((route.status, *route.also))
    }
    problem = {PROBLEM_JSON: {"schema": {"$ref": _REF.format(name="Problem")}}}
    errors = set(route.errors)
    if route.family != "public":
        errors.add(429)
    if route.body != "none":
        errors |= {400, 413}
    if takes_parameters(route):
        errors.add(400)  # a NUL character in a parameter, at least
    if route.family != "public":
        errors.add(503)  # the store could not do it (a full disk): any route that uses it
    if route.path.startswith("/api/weddings/{wedding_id}") and "erasure" not in route.path:
        errors.add(410)  # an erased wedding (crdt_server.edge.erasure.TombstoneGuard)
    for status in sorted(errors | set(route.error_models)):
        content = problem
        if status in route.error_models:
            content = {
                PROBLEM_JSON: {"schema": _schema(route.error_models[status], index, schemas)}
            }
        responses[str(status)] = {"description": _ERROR_TEXT[status], "content": content}
    operation["responses"] = responses
    if route.security == "none":
        operation["security"] = []
    elif route.security == "admin":
        operation["security"] = [{"adminKey": []}]
    elif route.security == "session":
        operation["security"] = [{"deviceSession": []}, {"deviceSecret": []}]
    else:
        operation["security"] = [{"token": []}, {"tokenQuery": []}]
    return operation


def openapi_document(routes: Sequence[ApiRoute], *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    shown = [r for r in routes if r.in_schema]
    models: list[Any] = [Problem]
    for route in shown:
        for model in (route.request_model, route.response_model, *route.error_models.values()):
            if model is not None and model not in models:
                models.append(model)
    generated, components = msgspec.json.schema_components(models, ref_template=_REF)
    index = {model: i for i, model in enumerate(models)}
    paths: dict[str, dict[str, Any]] = {}
    for route in shown:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            route, index, list(generated)
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crdt-server",
            "version": version,
            "description": "HTTP API beside the y-websocket rooms: read, write and sync "
            "wedding documents, run domain operations, see presence and conflicts. Every "
            "change is answered only after it is committed. Every error is an RFC 9457 "
            "problem (`application/problem+json`).",
        },
        "components": {"schemas": components, "securitySchemes": _SECURITY_SCHEMES},
        "paths": paths,
    }
