"""The deployment files, checked statically (images cannot be pulled or built here), plus
the container's health check run for real against a real server."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from crdt_server.app import FEATURES
from crdt_server.features import fragments_of
from crdt_server.settings import Settings, variables
from tests.server import ServerProcess

KNOWN = variables(fragments_of(FEATURES))
"""Every setting's variable, the features' included."""

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Instruction:
    keyword: str
    args: str
    stage: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comments dropped, continuation lines joined."""
    instructions: list[Instruction] = []
    stage = -1
    logical = ""
    for line in text.splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        keyword, _, args = logical.strip().partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), args.strip(), stage))
        logical = ""
    assert not logical, "the Dockerfile ends inside a continued line"
    return instructions


DOCKERFILE = parse_dockerfile((ROOT / "Dockerfile").read_text())
FINAL = max(i.stage for i in DOCKERFILE)


def _final(keyword: str) -> list[str]:
    return [i.args for i in DOCKERFILE if i.stage == FINAL and i.keyword == keyword]


def _env(stage: int) -> dict[str, str]:
    env: dict[str, str] = {}
    for i in DOCKERFILE:
        if i.stage == stage and i.keyword == "ENV":
            for pair in shlex.split(i.args):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_the_dockerfile_is_multi_stage_and_the_runtime_copies_only_the_build() -> None:
    stages = [i.args for i in DOCKERFILE if i.keyword == "FROM"]
    assert len(stages) >= 2, stages
    names = [s.split()[-1] for s in stages if " as " in s.lower()]
    copies = _final("COPY")
    assert copies and all(c.startswith(f"--from={names[0]} ") for c in copies), copies


def test_the_image_runs_as_a_non_root_user() -> None:
    users = _final("USER")
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    # Nothing after the last USER switches back.
    last_user = max(n for n, i in enumerate(DOCKERFILE) if i.keyword == "USER")
    assert all(i.keyword != "USER" for i in DOCKERFILE[last_user + 1 :])


def test_data_lives_in_a_volume_the_server_uses() -> None:
    env = _env(FINAL)
    data_dir = env["CRDT_SERVER_DATA_DIR"]
    volumes = [v for args in _final("VOLUME") for v in yaml.safe_load(args)]
    assert data_dir in volumes
    assert env["CRDT_SERVER_HOST"] == "0.0.0.0"
    # The settings the image sets are real settings.
    Settings.from_env(
        {k: v for k, v in env.items() if k.startswith("CRDT_SERVER_")},
        fragments=fragments_of(FEATURES),
    )


def test_every_file_the_dockerfile_copies_exists_and_is_not_ignored() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for i in DOCKERFILE:
        if i.keyword not in ("COPY", "ADD") or i.args.startswith("--from="):
            continue
        *sources, _ = shlex.split(i.args)
        for source in sources:
            assert (ROOT / source).exists(), f"{i.keyword} {source}: no such file"
            assert source not in ignored, f"{source} is in .dockerignore"
    # pyproject's packages are what the image installs.
    for package in ("crdt_server", "documents", "storage"):
        assert any(package in i.args.split() for i in DOCKERFILE if i.keyword == "COPY")


def _healthcheck_command() -> list[str]:
    (check,) = _final("HEALTHCHECK")
    assert "--interval=" in check and "--timeout=" in check
    exec_form = check[check.index("CMD") + 3 :].strip()
    command: list[str] = yaml.safe_load(exec_form)  # a JSON array is YAML too
    return command


def test_the_health_check_asks_healthz() -> None:
    assert "/healthz" in " ".join(_healthcheck_command())
    assert _final("ENTRYPOINT") == ['["crdt-server"]'] and _final("CMD") == ['["serve"]']
    assert _final("STOPSIGNAL") == ["SIGTERM"]


async def _health(port: int) -> int:
    command = _healthcheck_command()
    assert command[0] == "python"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *command[1:],
        env={**os.environ, "CRDT_SERVER_PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(20):
        return await process.wait()


@pytest.mark.asyncio
async def test_the_health_check_command_passes_on_a_live_server_and_fails_without(
    tmp_path: Path,
) -> None:
    async with ServerProcess(tmp_path / "data") as server:
        assert await _health(server.port) == 0
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    assert await _health(free) != 0


# -- compose.yaml and the proxy ----------------------------------------------------------


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def _servers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("build") == "."}


def test_compose_runs_two_servers_on_postgres_and_redis() -> None:
    compose = _compose()
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    servers = _servers(compose)
    assert len(servers) >= 2
    for name, server in servers.items():
        env = server["environment"]
        assert env["CRDT_SERVER_DATABASE_URL"].startswith("postgresql://"), name
        assert "@postgres:" in env["CRDT_SERVER_DATABASE_URL"]
        assert env["CRDT_SERVER_REDIS_URL"].startswith("redis://redis:")
        # One secret for all, required (compose refuses to start without it).
        assert env["CRDT_SERVER_AUTH_SECRET"].startswith("${CRDT_SERVER_AUTH_SECRET:?")
        assert set(server["depends_on"]) == {"postgres", "redis"}
        assert "ports" not in server, f"{name} must be reached through the proxy only"
        assert server["ulimits"]["nofile"]["soft"] >= 65536
        (volume,) = server["volumes"]
        assert volume.split(":")[1] == _env(FINAL)["CRDT_SERVER_DATA_DIR"]
        for key in env:
            if key.startswith("CRDT_SERVER_"):
                assert key in KNOWN, key


def test_the_proxy_terminates_tls_and_balances_every_server() -> None:
    compose = _compose()
    proxy = compose["services"]["proxy"]
    assert proxy["image"].startswith("caddy:")
    assert "443:443" in proxy["ports"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in proxy["volumes"]}
    config = mounts["./deploy/Caddyfile"]
    assert config == "/etc/caddy/Caddyfile"
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    upstreams = re.search(r"^\s*reverse_proxy\s+(.+?)\s*\{", caddyfile, re.MULTILINE)
    assert upstreams is not None
    port = _env(FINAL)["CRDT_SERVER_PORT"]
    assert set(upstreams.group(1).split()) == {f"{name}:{port}" for name in _servers(compose)}
    assert re.search(r"^\s*health_uri /readyz$", caddyfile, re.MULTILINE)
    # A site address with a host name: Caddy serves it over HTTPS with a certificate.
    assert re.search(r"^\{\$DOMAIN:localhost\} \{$", caddyfile, re.MULTILINE)
    # No access log: query strings carry tokens.
    assert not re.search(r"^\s*log\b", caddyfile, re.MULTILINE)
    assert caddyfile.count("{") == caddyfile.count("}")


def test_deploy_readme_covers_what_an_operator_needs() -> None:
    text = (ROOT / "deploy" / "README.md").read_text()
    for topic in (
        "## Sizing",
        "## File descriptors",
        "## Settings that matter in production",
        "## TLS",
        "## Backups",
        "## Upgrades and rolling restarts",
        "## Several processes on one host, and across hosts",
        "1012",
        "pg_dump",
        "8.1 KiB",  # memory per connection, from docs/performance/2026-11-22.md
    ):
        assert topic in text, topic
    assert "8.1 KiB" in (ROOT / "docs" / "performance" / "2026-11-22.md").read_text()
    for name in re.findall(r"`(CRDT_SERVER_[A-Z_]+)`", text):
        assert name in KNOWN, name


def test_the_license_is_the_one_pyproject_names() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
