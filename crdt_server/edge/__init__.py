"""The HTTP edge: routes, the upgrade gate, the ASGI WebSocket endpoint, OpenAPI."""
