"""The OpenAPI 3.1 description of the HTTP API, served at ``GET /openapi.json``."""

from __future__ import annotations

from typing import Any

from crdt_server.edge.webapp import OPENAPI_PATHS as WEBAPP_PATHS

__all__ = ["OPENAPI"]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_WEDDING = {
    "name": "wedding_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"},
}
_DOC = {
    "name": "doc",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "enum": ["timeline", "budget", "guests", "seating", "conflicts"]},
}
_AUTH_ERRORS = {
    "401": _error("missing, invalid, expired or revoked token"),
    "403": _error("the token's role may not do this"),
    "404": _error("no such wedding or document"),
}
_B64 = {"type": "string", "contentEncoding": "base64"}
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_OBJECT = {"type": "object", "additionalProperties": True}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "crdt-server",
        "version": "0.1.0",
        "description": "HTTP API beside the y-websocket rooms: read, write and sync wedding "
        "documents, run domain operations, see presence and conflicts. Every change is "
        "answered only after it is committed.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            },
            "Conflict": {
                "type": "object",
                "required": ["code", "paths", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "paths": {"type": "array", "items": {"type": "string"}},
                    "message": {"type": "string"},
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/healthz": {
            "get": {"summary": "Liveness", "security": [], "responses": {"200": _json(_OBJECT)}}
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the store answers and its last commit succeeded",
                "security": [],
                "responses": {"200": _json(_OBJECT), "503": _json(_OBJECT, "not ready")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {"200": {"description": "OK", "content": {"text/plain": {}}}},
            }
        },
        "/api/weddings/{wedding_id}/docs/{doc}": {
            "get": {
                "summary": "Read a document: JSON, or a binary Yjs update with "
                "Accept: application/octet-stream",
                "parameters": [_WEDDING, _DOC],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": _OBJECT}, **_BINARY},
                    },
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/weddings/{wedding_id}/docs/{doc}/update": {
            "post": {
                "summary": "Apply a binary Yjs update (answered once committed, then broadcast)",
                "parameters": [_WEDDING, _DOC],
                "requestBody": {"required": True, "content": _BINARY},
                "responses": {
                    "200": _json(_OBJECT),
                    "400": _error("not a valid Yjs update"),
                    "413": _error("the document would grow past its limit"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/weddings/{wedding_id}/docs/{doc}/sync": {
            "post": {
                "summary": "Offline-first sync: send a state vector and a pending update, "
                "receive what is missing (JSON with base64, or binary: two lib0 "
                "varUint8Arrays each way)",
                "parameters": [_WEDDING, _DOC],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"state_vector": _B64, "update": _B64},
                            }
                        },
                        **_BINARY,
                    },
                },
                "responses": {
                    "200": {
                        "description": "what the client is missing, and the server's state vector",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"update": _B64, "state_vector": _B64},
                                }
                            },
                            **_BINARY,
                        },
                    },
                    "400": _error("malformed body or update"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/weddings/{wedding_id}/docs/{doc}/ops": {
            "post": {
                "summary": 'Run a domain operation, e.g. {"op": "add_guest", "name": "Ann"}',
                "parameters": [_WEDDING, _DOC],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["op"],
                                "properties": {"op": {"type": "string"}},
                                "additionalProperties": True,
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_OBJECT),
                    "400": _error("malformed operation"),
                    "422": _error("well-formed but impossible operation (nothing changed)"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/weddings/{wedding_id}/docs/{doc}/history": {
            "get": {
                "summary": "Who changed the document, when (newest first)",
                "parameters": [
                    _WEDDING,
                    _DOC,
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {"200": _json(_OBJECT), **_AUTH_ERRORS},
            }
        },
        "/api/weddings/{wedding_id}/presence": {
            "get": {
                "summary": "Who is online in which document",
                "parameters": [_WEDDING],
                "responses": {"200": _json(_OBJECT), **_AUTH_ERRORS},
            }
        },
        "/api/weddings/{wedding_id}/conflicts": {
            "get": {
                "summary": "Conflicts the CRDT cannot prevent (over-capacity tables, overlaps…)",
                "parameters": [_WEDDING],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "conflicts": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Conflict"},
                                }
                            },
                        }
                    ),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/weddings/{wedding_id}/sessions": {
            "post": {
                "summary": "Mint a short-lived token for an app's user (admin API key)",
                "parameters": [_WEDDING],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["sub", "role"],
                                "properties": {
                                    "sub": {"type": "string"},
                                    "name": {"type": "string"},
                                    "role": {
                                        "type": "string",
                                        "enum": ["couple", "planner", "vendor", "family", "friend"],
                                    },
                                    "ttl": {"type": "integer"},
                                    "docs": _OBJECT,
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(_OBJECT, "created"),
                    "422": _error("invalid"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/weddings/{wedding_id}": {
            "delete": {
                "summary": "Delete a wedding with its history; its rooms close with 4404",
                "parameters": [_WEDDING],
                "responses": {"200": _json(_OBJECT), **_AUTH_ERRORS},
            }
        },
        "/api/admin/revoke": {
            "post": {
                "summary": "Close a user's sessions with 4401 and refuse their older tokens",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["sub"],
                                "properties": {
                                    "sub": {"type": "string"},
                                    "wedding": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {"200": _json(_OBJECT), **_AUTH_ERRORS},
            }
        },
    },
}
OPENAPI["paths"].update(WEBAPP_PATHS)
