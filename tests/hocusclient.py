"""Drive Tiptap's own provider, ``@hocuspocus/provider`` 4.8.0, from pytest.

Each :class:`HocusClient` is one Node process running ``tests/js/hocus.mjs``: one shared
``HocuspocusProviderWebsocket`` and any number of ``HocuspocusProvider`` documents on it,
each with its own ``Y.Doc`` (root map ``m``), remote-controlled through line-delimited JSON.
Every wait has a deadline, enforced by Node (``timeout_ms``) and again here.
"""

# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any, Self

from tests.jsclient import JS_DIR, REPO_ROOT
from tests.tier import needs_node

__all__ = ["HOCUS_SCRIPT", "Y14_SCRIPT", "HocusClient"]

HOCUS_SCRIPT = JS_DIR / "hocus.mjs"
Y14_SCRIPT = JS_DIR / "y14.mjs"
"""yjs 14 (``@y/y``) over ``@y/websocket``, driven the same way (its commands in the script)."""
_GRACE = 5.0


class HocusClient:
    """One Node process: a shared Hocuspocus socket and its documents."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self._proc = proc
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stderr: collections.deque[str] = collections.deque(maxlen=200)
        self._reader = asyncio.create_task(self._read(proc.stdout))
        self._errors = asyncio.create_task(self._read_stderr(proc.stderr))

    @classmethod
    async def start(cls, url: str | None = None, *, script: Path = HOCUS_SCRIPT) -> HocusClient:
        """Start the process (``script``: another driver of the same line protocol); with
        ``url``, open its shared socket there."""
        needs_node("@hocuspocus/provider (tests/hocusclient.py)")
        node = shutil.which("node")
        if node is None or not (JS_DIR / "node_modules" / "@hocuspocus" / "provider").is_dir():
            raise RuntimeError("node or tests/js/node_modules missing: run scripts/setup-js")
        proc = await asyncio.create_subprocess_exec(
            node,
            str(script),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        client = cls(proc)
        try:
            async with asyncio.timeout(20):
                await client._ready
            if url is not None:
                await client.call("socket", url=url)
        except BaseException:
            await client.kill()
            raise
        return client

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("event") == "ready" and not self._ready.done():
                self._ready.set_result(None)
                continue
            future = self._pending.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RuntimeError(f"node exited\n{self.stderr_tail()}"))
        if not self._ready.done():
            self._ready.set_exception(RuntimeError(f"node exited\n{self.stderr_tail()}"))

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self._stderr.append(line.decode(errors="replace").rstrip())

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    async def call(self, cmd: str, *, timeout: float = 20.0, **args: Any) -> dict[str, Any]:
        """Run one command; raise ``RuntimeError`` with Node's message if it failed."""
        number = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        assert self._proc.stdin is not None
        self._proc.stdin.write((json.dumps({"id": number, "cmd": cmd, **args}) + "\n").encode())
        await self._proc.stdin.drain()
        async with asyncio.timeout(timeout + _GRACE):
            reply = await future
        if not reply.get("ok"):
            raise RuntimeError(f"{cmd}: {reply.get('error')}\n{self.stderr_tail()}")
        return reply

    async def attach(
        self,
        doc: str,
        name: str,
        token: str,
        *,
        session_awareness: bool = False,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return await self.call(
            "attach",
            doc=doc,
            name=name,
            token=token,
            sessionAwareness=session_awareness,
            user=user,
        )

    async def wait(self, doc: str, until: str, *, timeout: float = 15.0, **args: Any) -> Any:
        """Wait (deadline ``timeout``) until ``until`` holds for ``doc``; its info."""
        ms = int(timeout * 1000)
        return await self.call("wait", doc=doc, until=until, timeout_ms=ms, timeout=timeout, **args)

    async def info(self, doc: str) -> dict[str, Any]:
        return await self.call("info", doc=doc)

    async def kill(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self._proc.wait()
        for task in (self._reader, self._errors):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()
