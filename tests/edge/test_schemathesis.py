"""Schemathesis against the live server's own /openapi.json: generated requests, valid and
invalid, to every operation; no answer may be a 5xx or break the document (undocumented
status, wrong content type, a body that does not match its schema)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crdt_server.auth.tokens import TokenCodec
from tests import tier
from tests.server import ServerProcess

SECRET = "schemathesis-test-secret-at-least-32-bytes"
ADMIN = "schemathesis-admin-key"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _fuzz_operation(operation: Any, url: str, auth: dict[str, str], examples: int) -> None:
    strategies = [
        # Valid requests against the wedding the token is for, and then anything at all.
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters={"wedding_id": "w1"})
        if "{wedding_id}" in operation.path
        else operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=url, headers=auth, checks=CHECKS, timeout=10)

    run()


def _fuzz(url: str, spec: dict[str, Any], examples: int) -> list[str]:
    """Run every operation ``examples`` times; the failures found."""
    token = TokenCodec(algorithms=["HS256"], secret=SECRET.encode()).mint(
        sub="fuzz", role="planner", wedding="w1", ttl=3600
    )
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        answers = operation.definition.raw.get("responses", {}).get("200", {})
        if "text/event-stream" in answers.get("content", {}):
            continue  # a stream never ends; tests/features/events/test_events.py covers it
        admin = operation.definition.raw.get("security") == [{"adminKey": []}]
        auth = {"Authorization": f"Bearer {ADMIN if admin else token}"}
        try:
            _fuzz_operation(operation, url, auth, examples)
        # Schemathesis groups check failures in a BaseExceptionGroup; every failing
        # operation is reported, not just the first.
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])
    return failures


async def _run(tmp_path: Path, examples: int) -> None:
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_ADMIN_API_KEY": ADMIN,
        # The limiter has its own tests; here it would only hide answers behind 429s.
        "CRDT_SERVER_RATE_READ_PER_MINUTE": "0",
        "CRDT_SERVER_RATE_WRITE_PER_MINUTE": "0",
        "CRDT_SERVER_RATE_ADMIN_PER_MINUTE": "0",
        # The calendars keep passwords only with a key (else their routes answer a
        # documented 503, tested in tests/features/calendars): here they run.
        "CRDT_SERVER_CREDENTIALS_KEY": base64.b64encode(bytes(range(32))).decode(),
        # Texts go out only with a gateway (else adding a phone answers a documented 503,
        # tested in tests/features/sms): one nobody listens on, so nothing is sent.
        "CRDT_SERVER_SMS_URL": "http://127.0.0.1:9/cgi-bin/sendsms?username=u&password=p",
        "CRDT_SERVER_SMS_COUNTRIES": "44",
    }
    async with ServerProcess(tmp_path / "data", env=env, anonymous=False) as server:
        async with httpx.AsyncClient() as http:
            spec = (await http.get(f"{server.url}/openapi.json")).json()
        # Schemathesis calls are blocking: run them off the loop, which keeps draining the
        # server's log pipe meanwhile.
        failures = await asyncio.to_thread(_fuzz, server.url, spec, examples)
        assert server.alive
        log = bytes(server.log).decode(errors="replace")
    assert not failures, "\n\n".join(failures)
    assert "Traceback" not in log and "unhandled" not in log


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_live_api_matches_its_openapi_document(tmp_path: Path) -> None:
    # Every operation, a few examples each (the full tier also runs 100 each, below).
    await _run(tmp_path, examples=tier.examples(full=12, fast=6))


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(900)
async def test_live_api_matches_its_openapi_document_at_length(tmp_path: Path) -> None:
    # 100 examples of every operation: 200 took 7 minutes alone on 2 cores once the API
    # reached its present size, and passed its 15-minute limit in a loaded full tier.
    await _run(tmp_path, examples=100)
