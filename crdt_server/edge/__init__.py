"""The HTTP and WebSocket edge: routes, the upgrade gate, the native WebSocket protocol, OpenAPI."""
