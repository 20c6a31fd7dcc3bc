"""Drive real, stock JavaScript Yjs clients (``yjs`` + ``y-websocket``) from pytest.

Each :class:`JsClient` is one Node process running ``tests/js/client.mjs``: one ``Y.Doc``
plus one ``WebsocketProvider`` (y-websocket 2.1.0 or 3.1.x), remote-controlled through
line-delimited JSON over stdin/stdout.  Node must be installed and ``scripts/setup-js`` must
have been run (it installs ``tests/js/node_modules`` from the committed lockfile).

Typical use::

    async with JsClientGroup() as group:
        a = await group.start(version=2)
        b = await group.start(version=3)
        await a.connect(url, "w42/guests")
        await b.connect(url, "w42/guests")
        await a.wait_synced()
        await a.edit(map_set("guests", "g1", {"name": "Ada"}))
        await b.wait_for({"guests": {"g1": {"name": "Ada"}}}, roots={"guests": "map"})

Every wait in this module has a deadline; nothing sleeps.  A "dropped socket" is simulated
with :meth:`JsClient.kill` (SIGKILL of the Node process: the kernel closes the TCP connection
without a WebSocket close frame).  Node also exits by itself when its stdin closes, so a
crashed test run cannot leave client processes behind.
"""

# The ``timeout`` parameters are deadlines forwarded to the Node process (which enforces them
# itself and reports the state it saw), so asyncio.timeout() around the call is no substitute.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import itertools
import json
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

from tests.tier import needs_node

__all__ = [
    "CLIENT_SCRIPT",
    "JS_DIR",
    "JsClient",
    "JsClientError",
    "JsClientGroup",
    "JsCommandError",
    "JsProcessDiedError",
    "JsTimeoutError",
    "RootType",
    "array_delete",
    "array_insert",
    "array_push",
    "js_client",
    "map_delete",
    "map_set",
    "text_delete",
    "text_insert",
    "xml_insert",
    "xml_paragraph",
    "yarray",
    "ymap",
    "ytext",
]

log = logging.getLogger(__name__)

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
JS_DIR: Final = REPO_ROOT / "tests" / "js"
CLIENT_SCRIPT: Final = JS_DIR / "client.mjs"

RootType = Literal["map", "array", "text", "xml"]
"""A root's type; ``xml`` is a rich text (``Y.XmlFragment``, what Tiptap edits): its JSON is
its XML string."""
JsonObject = dict[str, Any]
Op = dict[str, Any]

#: Extra seconds the Python side waits beyond a Node-side ``timeout_ms`` so that the Node
#: process reports its own (more descriptive) timeout first.
_GRACE: Final = 5.0
#: Max length of one protocol line (``state`` returns the whole document as base64).
_LINE_LIMIT: Final = 64 * 1024 * 1024
_STDERR_LINES: Final = 400
_MISSING: Final[Any] = object()


class JsClientError(Exception):
    """Base class for every harness failure."""


class JsCommandError(JsClientError):
    """The Node client answered ``{"ok": false}``."""

    def __init__(self, message: str, *, cmd: str, error: str) -> None:
        super().__init__(message)
        self.cmd = cmd
        self.error = error


class JsTimeoutError(JsCommandError, TimeoutError):
    """A wait (Node-side deadline or Python-side reply deadline) expired."""


class JsProcessDiedError(JsClientError):
    """The Node process exited (or was killed) while a reply was expected."""


# --------------------------------------------------------------------------------------------
# edit-op builders (plain dicts; see tests/js/client.mjs for the full list)


def ymap(value: Mapping[str, Any] | None = None) -> JsonObject:
    """A value that becomes a nested ``Y.Map`` (instead of a plain JSON object)."""
    return {"$ytype": "map", "value": dict(value or {})}


def yarray(values: Sequence[Any] = ()) -> JsonObject:
    """A value that becomes a nested ``Y.Array``."""
    return {"$ytype": "array", "value": list(values)}


def ytext(text: str = "") -> JsonObject:
    """A value that becomes a nested ``Y.Text``."""
    return {"$ytype": "text", "value": text}


def _with_path(op: Op, path: Sequence[str | int] | None) -> Op:
    if path:
        op["path"] = list(path)
    return op


def map_set(name: str, key: str, value: Any, *, path: Sequence[str | int] | None = None) -> Op:
    return _with_path({"type": "map.set", "name": name, "key": key, "value": value}, path)


def map_delete(name: str, key: str, *, path: Sequence[str | int] | None = None) -> Op:
    return _with_path({"type": "map.delete", "name": name, "key": key}, path)


def array_push(name: str, values: Sequence[Any], *, path: Sequence[str | int] | None = None) -> Op:
    return _with_path({"type": "array.push", "name": name, "values": list(values)}, path)


def array_insert(
    name: str, index: int, values: Sequence[Any], *, path: Sequence[str | int] | None = None
) -> Op:
    op = {"type": "array.insert", "name": name, "index": index, "values": list(values)}
    return _with_path(op, path)


def array_delete(
    name: str, index: int, length: int = 1, *, path: Sequence[str | int] | None = None
) -> Op:
    op = {"type": "array.delete", "name": name, "index": index, "length": length}
    return _with_path(op, path)


def text_insert(name: str, index: int, text: str, *, path: Sequence[str | int] | None = None) -> Op:
    return _with_path({"type": "text.insert", "name": name, "index": index, "text": text}, path)


def xml_paragraph(name: str, index: int, text: str) -> Op:
    """A new block ``<paragraph>text</paragraph>`` at ``index`` of the rich text ``name``."""
    return {"type": "xml.paragraph", "name": name, "index": index, "text": text}


def xml_insert(name: str, index: int, offset: int, text: str) -> Op:
    """``text`` typed into block ``index`` of the rich text ``name``, at ``offset``."""
    return {"type": "xml.insert", "name": name, "index": index, "offset": offset, "text": text}


def text_delete(
    name: str, index: int, length: int = 1, *, path: Sequence[str | int] | None = None
) -> Op:
    op = {"type": "text.delete", "name": name, "index": index, "length": length}
    return _with_path(op, path)


# --------------------------------------------------------------------------------------------


def _check_environment(node: str) -> str:
    needs_node("a stock JavaScript Yjs client (tests/jsclient.py)")
    resolved = shutil.which(node)
    if resolved is None:
        raise JsClientError(
            f"Node.js executable {node!r} not found on PATH; install Node >= 18 to run the "
            "JavaScript interop tests"
        )
    for package in ("yjs", "y-websocket", "y-websocket-v3", "ws"):
        if not (JS_DIR / "node_modules" / package / "package.json").is_file():
            raise JsClientError(
                f"{JS_DIR / 'node_modules' / package} is missing: run scripts/setup-js "
                "(npm ci in tests/js) first"
            )
    return resolved


class JsClient:
    """One Node process = one stock Yjs client (``Y.Doc`` + ``WebsocketProvider``)."""

    def __init__(self, proc: asyncio.subprocess.Process, *, version: int, name: str) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self._proc = proc
        self._stdin = proc.stdin
        self.version = version
        self.name = name
        #: clientID of the current ``Y.Doc`` (set by :meth:`connect`).
        self.client_id: int | None = None
        #: Every unsolicited event line received so far, in order.
        self.events: list[JsonObject] = []
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[JsonObject]] = {}
        self._event_waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self._exit_reason: str | None = None
        self._stdout_task = asyncio.create_task(
            self._read_stdout(proc.stdout), name=f"{name}-stdout"
        )
        self._stderr_task = asyncio.create_task(
            self._read_stderr(proc.stderr), name=f"{name}-stderr"
        )

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    async def start(
        cls,
        *,
        version: int = 2,
        name: str | None = None,
        node: str = "node",
        startup_timeout: float = 20.0,
    ) -> JsClient:
        """Spawn ``node tests/js/client.mjs --version N`` and wait until it is ready."""
        if version not in (2, 3):
            raise ValueError(f"y-websocket version must be 2 or 3, not {version!r}")
        node_exe = _check_environment(node)
        proc = await asyncio.create_subprocess_exec(
            node_exe,
            str(CLIENT_SCRIPT),
            "--version",
            str(version),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        client = cls(proc, version=version, name=name or f"js-v{version}-{proc.pid}")
        try:
            await client.wait_event("ready", timeout=startup_timeout)
        except BaseException:
            await client.kill()
            raise
        return client

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @property
    def alive(self) -> bool:
        return self._proc.returncode is None and not self._stdout_task.done()

    def stderr_tail(self, lines: int = 40) -> str:
        return "\n".join(list(self._stderr)[-lines:])

    async def kill(self) -> None:
        """SIGKILL the Node process (the server sees the TCP connection drop, no close frame)."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        if self._exit_reason is None:
            self._exit_reason = "killed (SIGKILL) by the test"
        await self._reap()

    async def close(self, timeout: float = 10.0) -> None:
        """Graceful shutdown: destroy the provider (clean WebSocket close), then exit.

        Always ends the process (falls back to SIGKILL) and is idempotent.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self.alive:
                with contextlib.suppress(JsClientError):
                    await self.call("exit", timeout=timeout, timeout_ms=int(timeout * 500))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._proc.wait()
        finally:
            if self._exit_reason is None:
                self._exit_reason = "closed by the test"
            await self.kill()

    async def _reap(self) -> None:
        self._closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10.0):
                await self._proc.wait()
        if not self._stdin.is_closing():
            self._stdin.close()
        with contextlib.suppress(ConnectionError, BrokenPipeError):
            await self._stdin.wait_closed()
        for task in (self._stdout_task, self._stderr_task):
            try:
                async with asyncio.timeout(5.0):
                    await task
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---------------------------------------------------------------- protocol plumbing

    def _describe(self) -> str:
        state = (
            f"running (pid {self._proc.pid})"
            if self._proc.returncode is None
            else f"exited with code {self._proc.returncode}"
        )
        tail = self.stderr_tail()
        return f"[{self.name}, {state}]" + (
            f"\n--- node stderr (tail) ---\n{tail}" if tail else " (node stderr empty)"
        )

    async def _read_stdout(self, stream: asyncio.StreamReader) -> None:
        try:
            while True:
                line = await stream.readline()
                if not line:
                    break
                self._handle_line(line.decode("utf-8", "replace").rstrip("\n"))
        except Exception as exc:  # reported to every waiter below
            self._stderr.append(f"[jsclient] stdout reader failed: {exc!r}")
        finally:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self._proc.wait()
            reason = self._exit_reason or "Node process exited unexpectedly"
            err = JsProcessDiedError(f"{reason} {self._describe()}")
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(err)
            self._pending.clear()
            self._wake_event_waiters()

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\n")
            self._stderr.append(text)
            log.debug("%s: %s", self.name, text)

    def _handle_line(self, line: str) -> None:
        if not line.strip():
            return
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            self._stderr.append(f"[jsclient] non-JSON stdout line: {line[:500]}")
            return
        if not isinstance(msg, dict):
            self._stderr.append(f"[jsclient] unexpected stdout line: {line[:500]}")
            return
        if "event" in msg and "id" not in msg:
            self.events.append(msg)
            log.debug("%s event: %s", self.name, line[:500])
            self._wake_event_waiters()
            return
        msg_id = msg.get("id")
        fut = self._pending.pop(msg_id, None) if isinstance(msg_id, int) else None
        if fut is None:
            self._stderr.append(f"[jsclient] reply for unknown id: {line[:500]}")
        elif not fut.done():
            fut.set_result(msg)

    def _wake_event_waiters(self) -> None:
        waiters, self._event_waiters = self._event_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def call(self, cmd: str, timeout: float = 10.0, **args: Any) -> JsonObject:
        """Send one command and return its result (without ``id``/``ok``).

        Raises :class:`JsCommandError` if Node reports a failure, :class:`JsTimeoutError` if
        no reply arrives within ``timeout`` seconds (or a Node-side wait timed out) and
        :class:`JsProcessDiedError` if the process is gone.  Messages include the stderr tail.
        """
        if not self.alive:
            reason = self._exit_reason or "Node process is not running"
            raise JsProcessDiedError(f"cannot send {cmd!r}: {reason} {self._describe()}")
        msg_id = next(self._ids)
        fut: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        line = json.dumps({**args, "id": msg_id, "cmd": cmd}, separators=(",", ":")) + "\n"
        try:
            self._stdin.write(line.encode())
            await self._stdin.drain()
        except (ConnectionError, BrokenPipeError, RuntimeError) as exc:
            self._pending.pop(msg_id, None)
            raise JsProcessDiedError(f"cannot send {cmd!r} ({exc!r}) {self._describe()}") from exc
        try:
            async with asyncio.timeout(timeout):
                reply = await fut
        except TimeoutError:
            self._pending.pop(msg_id, None)
            raise JsTimeoutError(
                f"no reply to {cmd!r} within {timeout:g}s {self._describe()}",
                cmd=cmd,
                error="python-side reply timeout",
            ) from None
        if not reply.get("ok"):
            error = str(reply.get("error"))
            exc_type = JsTimeoutError if error.startswith("timed out after") else JsCommandError
            raise exc_type(f"{cmd!r} failed: {error} {self._describe()}", cmd=cmd, error=error)
        return {k: v for k, v in reply.items() if k not in ("id", "ok")}

    # ---------------------------------------------------------------- events

    def event_mark(self) -> int:
        """Current position in :attr:`events`; pass it as ``after=`` to wait for newer events."""
        return len(self.events)

    async def wait_event(
        self,
        name: str,
        predicate: Callable[[JsonObject], bool] | None = None,
        timeout: float = 10.0,
        *,
        after: int = 0,
    ) -> JsonObject:
        """Return the first event ``name`` (at index >= ``after``) matching ``predicate``.

        Events already received count (``after=0`` searches the whole history); take
        ``m = client.event_mark()`` *before* triggering an action and pass ``after=m`` to only
        accept events caused by it.
        """
        index = after
        try:
            async with asyncio.timeout(timeout):
                while True:
                    while index < len(self.events):
                        event = self.events[index]
                        index += 1
                        if event.get("event") == name and (predicate is None or predicate(event)):
                            return event
                    if self._stdout_task.done():
                        raise JsProcessDiedError(
                            f"process ended while waiting for event {name!r} {self._describe()}"
                        )
                    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    self._event_waiters.append(waiter)
                    await waiter
        except TimeoutError:
            seen = [e.get("event") for e in self.events[after:]][-30:]
            raise JsTimeoutError(
                f"event {name!r} not received within {timeout:g}s (events since #{after}: "
                f"{seen}) {self._describe()}",
                cmd="wait_event",
                error="timeout",
            ) from None

    # ---------------------------------------------------------------- commands

    async def ping(self) -> JsonObject:
        """``{"version": 2|3, "yWebsocket": "2.1.0", "yjs": "13.6.x"}``."""
        return await self.call("ping")

    async def connect(
        self,
        url: str,
        room: str,
        *,
        params: Mapping[str, str] | None = None,
        connect: bool = True,
        client_id: int | None = None,
        resync_interval: int | None = None,
        max_backoff_time: int | None = None,
        gc: bool | None = None,
    ) -> int:
        """Create a ``Y.Doc`` and ``WebsocketProvider(url, room, doc, ...)``; returns clientID.

        The provider connects to ``url + "/" + room`` (+ ``?`` + url-encoded ``params``).
        """
        args: JsonObject = {"url": url, "room": room, "connect": connect}
        if params is not None:
            args["params"] = dict(params)
        if client_id is not None:
            args["clientID"] = client_id
        if resync_interval is not None:
            args["resyncInterval"] = resync_interval
        if max_backoff_time is not None:
            args["maxBackoffTime"] = max_backoff_time
        if gc is not None:
            args["gc"] = gc
        result = await self.call("connect", **args)
        self.client_id = int(result["clientID"])
        return self.client_id

    async def wait_synced(self, timeout: float = 10.0) -> None:
        await self.call("waitSynced", timeout=timeout + _GRACE, timeout_ms=int(timeout * 1000))

    async def edit(self, *ops: Op) -> None:
        """Apply all ``ops`` in ONE ``doc.transact`` (i.e. one Yjs update)."""
        await self.call("edit", ops=list(ops))

    async def state(
        self, roots: Mapping[str, RootType] | None = None, *, since: str | None = None
    ) -> JsonObject:
        """``{"json": {root: value}, "stateVector": b64, "update": b64}``.

        ``json`` covers every root this client edited plus ``roots``; ``since`` (a base64
        state vector) makes ``update`` a diff instead of the full state.
        """
        args: JsonObject = {}
        if roots is not None:
            args["roots"] = dict(roots)
        if since is not None:
            args["since"] = since
        return await self.call("state", **args)

    async def json(self, roots: Mapping[str, RootType] | None = None) -> JsonObject:
        """Shortcut for ``(await state(roots))["json"]``."""
        result = await self.state(roots)
        json_value: JsonObject = result["json"]
        return json_value

    async def relative_position(
        self, name: str, index: int, *, path: Sequence[str | int] = (), assoc: int = 0
    ) -> str:
        """Base64 of ``Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(text,
        index, assoc))`` for the text at root ``name`` / ``path``."""
        result = await self.call(
            "relativePosition", name=name, path=list(path), index=index, assoc=assoc
        )
        return str(result["position"])

    async def wait_for(
        self,
        expected: Mapping[str, Any],
        *,
        roots: Mapping[str, RootType] | None = None,
        timeout: float = 10.0,
    ) -> JsonObject:
        """Wait until the JSON of the roots named in ``expected`` ({root: json}) deep-equals
        ``expected`` (object key order is irrelevant).

        Root types default to those known from this client's edits; pass ``roots``
        ({name: "map"|"array"|"text"}, extra names are ignored) for roots it never edited.
        Raises :class:`JsTimeoutError` showing the last state seen on timeout.
        """
        args: JsonObject = {"expected": dict(expected), "timeout_ms": int(timeout * 1000)}
        if roots is not None:
            args["roots"] = dict(roots)
        result = await self.call("waitFor", timeout=timeout + _GRACE, **args)
        json_value: JsonObject = result["json"]
        return json_value

    async def set_awareness(self, state: Mapping[str, Any] | None) -> None:
        await self.call("setAwareness", state=None if state is None else dict(state))

    async def set_awareness_field(self, field: str, value: Any) -> None:
        await self.call("setAwarenessField", field=field, value=value)

    async def awareness(self) -> dict[int, Any]:
        """All awareness states this client knows, keyed by clientID (incl. its own)."""
        result = await self.call("awareness")
        return {int(k): v for k, v in result["states"].items()}

    async def wait_awareness(
        self,
        client_id: int,
        *,
        present: bool = True,
        field: str | Sequence[str] | None = None,
        equals: Any = _MISSING,
        timeout: float = 10.0,
    ) -> dict[int, Any]:
        """Wait until ``client_id``'s awareness entry is present (optionally with ``field``
        (a key or key path) equal to ``equals``) or absent.  Returns all states."""
        predicate: JsonObject = {"clientID": client_id, "present": present}
        if field is not None:
            predicate["field"] = field if isinstance(field, str) else list(field)
        if equals is not _MISSING:
            predicate["equals"] = equals
        result = await self.call(
            "waitAwareness",
            timeout=timeout + _GRACE,
            predicate=predicate,
            timeout_ms=int(timeout * 1000),
        )
        return {int(k): v for k, v in result["states"].items()}

    async def disconnect(self, timeout: float = 5.0) -> JsonObject:
        """``provider.disconnect()`` and wait for the socket to be closed.  The doc stays
        editable offline.  Returns ``{"socket": "closed"|"terminated"|"none", ...}``."""
        return await self.call(
            "disconnect", timeout=timeout + _GRACE, timeout_ms=int(timeout * 1000)
        )

    async def reconnect(self) -> None:
        """``provider.connect()`` (use :meth:`wait_synced` afterwards)."""
        await self.call("reconnect")

    async def destroy(self, timeout: float = 5.0) -> JsonObject:
        """``provider.destroy()`` (clean close, awareness removal broadcast); the process and
        the doc stay alive, so :meth:`state` still works."""
        return await self.call("destroy", timeout=timeout + _GRACE, timeout_ms=int(timeout * 1000))

    async def apply_update(self, update_b64: str) -> None:
        """``Y.applyUpdate(doc, update)``; the provider forwards it to the server."""
        await self.call("applyUpdate", update=update_b64)

    async def received(self) -> bytes:
        """Every binary frame this client's sockets received so far, concatenated: the raw
        bytes it was sent (sync steps, updates, awareness), whatever its doc kept."""
        result = await self.call("received")
        return base64.b64decode(str(result["bytes"]))

    async def status(self) -> JsonObject:
        """``{"wsconnected", "wsconnecting", "synced", "shouldConnect", "url"}``."""
        return await self.call("status")


class JsClientGroup:
    """Owns any number of :class:`JsClient` and always ends all of them on exit."""

    def __init__(self) -> None:
        self.clients: list[JsClient] = []

    async def start(self, *, version: int = 2, name: str | None = None) -> JsClient:
        client = await JsClient.start(version=version, name=name)
        self.clients.append(client)
        return client

    async def aclose(self) -> None:
        clients, self.clients = self.clients, []
        results = await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@contextlib.asynccontextmanager
async def js_client(*, version: int = 2, name: str | None = None) -> AsyncIterator[JsClient]:
    """``async with js_client(version=3) as c: ...`` -- the process always ends on exit."""
    client = await JsClient.start(version=version, name=name)
    try:
        yield client
    finally:
        await client.close()
