"""Operability routes: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio

from starlette.responses import Response

from crdt_server.core.metrics import CONTENT_TYPE_LATEST
from crdt_server.edge.bodies import Health, NotReady, Readiness
from crdt_server.edge.problems import PROBLEM_JSON
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.storage import StoreError

__all__ = ["status_routes"]

status_routes = Routes()


@status_routes.get(
    "/healthz", "health", "Liveness", family="public", security="none", response_model=Health
)
async def healthz(call: ApiCall) -> Response:
    """Liveness: the process answers."""
    return json_response(Health(status="ok"))


@status_routes.get(
    "/readyz",
    "readiness",
    "Readiness: the store answers and its last commit succeeded (503 otherwise)",
    family="public",
    security="none",
    response_model=Readiness,
    error_models={503: NotReady},
)
async def readyz(call: ApiCall) -> Response:
    """Readiness: the store answers, and its last commit did not fail."""
    registry = call.state.registry
    rooms = len(registry.rooms)
    bus = registry.bus.status
    limit = call.state.settings.readiness_timeout_seconds
    try:
        # Within its own timeout: a store cut off would otherwise hold the probe (and the
        # proxy's health check) for as long as TCP takes to give up.
        async with asyncio.timeout(limit):
            await call.state.store.last_seq()
    except (StoreError, TimeoutError) as exc:
        why = str(exc) if isinstance(exc, StoreError) else f"no answer within {limit:g} s"
        registry.health.probed(why)
        return _not_ready(why, bus, rooms)
    registry.health.probed(None)
    if not registry.health.healthy:
        return _not_ready(registry.health.last_error or "the last commit failed", bus, rooms)
    # A degraded bus is reported, not fatal: this process still serves its own clients
    # durably, and catches up from the store once the bus is back.
    return json_response(Readiness(status="ok", rooms=rooms, bus=bus))


def _not_ready(store: str, bus: str, rooms: int) -> Response:
    detail = f"not ready: the store: {store}"
    problem = NotReady(
        type="about:blank",
        title="Service Unavailable",
        status=503,
        detail=detail,
        error=detail,
        store=store,
        bus=bus,
        rooms=rooms,
    )
    response = json_response(problem, 503)
    response.headers["content-type"] = PROBLEM_JSON
    response.headers["retry-after"] = "1"
    return response


@status_routes.get(
    "/metrics",
    "metrics",
    "Prometheus metrics",
    family="public",
    security="none",
    media_type="text/plain",
)
async def metrics(call: ApiCall) -> Response:
    """Prometheus metrics."""
    return Response(call.state.registry.metrics.render(), media_type=CONTENT_TYPE_LATEST)
