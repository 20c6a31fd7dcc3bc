"""Start ``python -m crdt_server ...`` children without paying the interpreter's start-up each
time: a fork server for the tests' real server processes.

Starting a server as ``python -m crdt_server serve`` spends about 1.3 s of CPU before it
listens, nearly all of it importing the server and its libraries; a test suite that starts
hundreds of servers spends most of its CPU there. A fork server imports them once, then
forks a child per request: the child is a real, separate process (its own PID, its own
SQLite connections, killed by ``SIGKILL`` like any other), that runs the same
``python -m MODULE ARGS`` entry point with the caller's environment, working directory,
umask and standard streams, and exits through the interpreter's normal shutdown. Only the
imports are shared, as they would be read from the same files.

Before it forks, the fork server freezes what its imports made (``gc.freeze``): a child's
collections then never walk those objects, which would copy every page of the inherited
heap on the child's first full collection and bill that to its measured CPU (a test of a
server's CPU per round saw 2.7x where a new interpreter gives 1.8x; frozen, 1.9x). They are
module-level objects that live as long as the process in a new interpreter too.

One fork server per calling process, started on first use (:func:`spawn`); it is a
single-threaded process that never runs an event loop or opens a store, so what a child
inherits is what a fresh interpreter would have after its imports. It ends (killing any
child still running) when its caller's end of the control socket closes.

``CRDT_TEST_FORK=0`` turns it off: :func:`enabled` is then false and callers start the
interpreter as before.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import resource
import runpy
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = ["ForkedProcess", "enabled", "run", "spawn"]

PRELOAD = ("crdt_server.cli", "crdt_server.app")
"""What the fork server imports before it forks anything."""

LIMITS = (
    "RLIMIT_NOFILE",
    "RLIMIT_CORE",
    "RLIMIT_FSIZE",
    "RLIMIT_AS",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
)
"""The caller's resource limits a child takes, as an exec'd child inherits them (a test
that lowers the open-files limit before it starts a server, as ``ulimit -Sn`` would)."""

_PID = struct.Struct("!q")
_STATUS = struct.Struct("!i")
_MAX_REQUEST = 1 << 20


def enabled() -> bool:
    """Whether children are forked (``CRDT_TEST_FORK`` is not ``0``) on a system with
    ``fork``."""
    return os.environ.get("CRDT_TEST_FORK", "1") != "0" and hasattr(os, "fork")


@dataclass
class ForkedProcess:
    """A child of the fork server, with the part of :class:`subprocess.Popen` that the
    tests use (``pid``, ``returncode``, ``poll``, ``wait``, ``send_signal``, ``terminate``,
    ``kill``, ``stdout``, ``stderr``)."""

    pid: int
    _status: socket.socket
    stdout: IO[bytes] | None = None
    stderr: IO[bytes] | None = None
    returncode: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _read_status(self, timeout: float | None) -> int | None:
        with self._lock:
            if self.returncode is not None:
                return self.returncode
            ready, _, _ = select.select([self._status], [], [], timeout)
            if not ready:
                return None
            data = self._status.recv(_STATUS.size)
            self._status.close()
            if len(data) != _STATUS.size:
                raise RuntimeError(f"the fork server ended before child {self.pid} did")
            self.returncode = os.waitstatus_to_exitcode(_STATUS.unpack(data)[0])
            return self.returncode

    def poll(self) -> int | None:
        return self._read_status(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._read_status(timeout)
        if code is None:
            raise subprocess.TimeoutExpired([str(self.pid)], timeout or 0.0)
        return code

    def send_signal(self, sig: int) -> None:
        # Only while it has not been reaped: its PID is not another process's yet.
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Client:
    """The calling process's end of its fork server."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control = ours
        self.lock = threading.Lock()
        self.server = subprocess.Popen(
            [sys.executable, "-m", "crdt_server.testing.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.owner = os.getpid()
        atexit.register(self.close)

    def close(self) -> None:
        """End the fork server (it kills any child still running) and reap it."""
        if self.owner != os.getpid():
            return
        self.control.close()
        try:
            self.server.wait(10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()

    def spawn(self, request: dict[str, Any], fds: list[int]) -> int:
        with self.lock:
            socket.send_fds(self.control, [json.dumps(request).encode()], fds)
            reply = self.control.recv(_MAX_REQUEST)
        if len(reply) != _PID.size:
            raise RuntimeError(f"the fork server could not start the child: {reply!r}")
        return int(_PID.unpack(reply)[0])


_client: _Client | None = None
_client_lock = threading.Lock()


def _the_client() -> _Client:
    global _client
    with _client_lock:
        if _client is None or _client.owner != os.getpid() or _client.server.poll() is not None:
            _client = _Client()
        return _client


def spawn(
    module: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None = None,
    stdin: int | IO[Any] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
) -> ForkedProcess:
    """``python -m MODULE ARGS`` as a child of the fork server. ``stdin``, ``stdout`` and
    ``stderr`` are as for :class:`subprocess.Popen`: ``None`` (this process's own),
    ``subprocess.PIPE``, ``subprocess.DEVNULL``, ``subprocess.STDOUT`` (``stderr`` only),
    a descriptor or a file."""
    closing: list[int] = []
    parents: dict[str, IO[bytes]] = {}

    def child_end(name: str, spec: int | IO[Any] | None, default: int) -> int:
        if spec is None:
            return default
        if spec == subprocess.PIPE:
            read, write = os.pipe()
            closing.append(write if name != "stdin" else read)
            parents[name] = os.fdopen(write, "wb") if name == "stdin" else os.fdopen(read, "rb")
            return write if name != "stdin" else read
        if spec == subprocess.DEVNULL:
            fd = os.open(os.devnull, os.O_RDWR)
            closing.append(fd)
            return fd
        return spec if isinstance(spec, int) else spec.fileno()

    ends = [
        child_end("stdin", stdin, 0),
        child_end("stdout", stdout, 1),
    ]
    ends.append(ends[1] if stderr == subprocess.STDOUT else child_end("stderr", stderr, 2))
    status, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    umask = os.umask(0o22)
    os.umask(umask)
    request = {
        "module": module,
        "args": list(args),
        "env": dict(env),
        "cwd": os.fspath(cwd) if cwd is not None else os.getcwd(),
        "umask": umask,
        "limits": {
            name: resource.getrlimit(getattr(resource, name))
            for name in LIMITS
            if hasattr(resource, name)
        },
    }
    try:
        pid = _the_client().spawn(request, [*ends, theirs.fileno()])
    except BaseException:
        status.close()
        for pipe in parents.values():
            pipe.close()
        raise
    finally:
        theirs.close()
        for fd in closing:
            os.close(fd)
    return ForkedProcess(
        pid=pid, _status=status, stdout=parents.get("stdout"), stderr=parents.get("stderr")
    )


def run(
    module: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None = None,
    input: bytes = b"",
    timeout: float = 60.0,
) -> tuple[int, bytes, bytes]:
    """Run ``python -m MODULE ARGS`` to completion (forked when :func:`enabled`, else a new
    interpreter): its exit code, standard output and standard error. It is killed past
    ``timeout`` seconds (:class:`subprocess.TimeoutExpired`)."""
    if not enabled():
        done = subprocess.run(
            [sys.executable, "-m", module, *args],
            env=dict(env),
            cwd=cwd,
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return done.returncode, done.stdout, done.stderr
    with (
        tempfile.TemporaryFile() as given,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        given.write(input)
        given.seek(0)
        child = spawn(module, args, env=env, cwd=cwd, stdin=given, stdout=out, stderr=err)
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            raise
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read()


# The fork server's side.


@dataclass
class _Request:
    module: str
    args: list[str]
    env: dict[str, str]
    cwd: str
    umask: int
    limits: dict[str, list[int]]
    fds: list[int]


def _serve(control: socket.socket) -> _Request:
    """Fork a child per request until the control socket closes (then kill the children
    left and exit); in a child, return its request."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    children: dict[int, socket.socket] = {}
    while True:
        ready, _, _ = select.select([control.fileno(), wake_read], [], [])
        if wake_read in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 4096)
        _reap(children)
        if control.fileno() not in ready:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(control, _MAX_REQUEST, 4)
        except OSError:
            data, fds = b"", []
        if not data:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os._exit(0)
        body = json.loads(data)
        request = _Request(fds=fds, **body)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(wake_read)
            os.close(wake_write)
            control.close()
            for sock in children.values():
                sock.close()
            return request
        children[pid] = socket.socket(fileno=fds[3])
        for fd in fds[:3]:
            os.close(fd)
        control.send(_PID.pack(pid))


def _reap(children: dict[int, socket.socket]) -> None:
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            sock = children.pop(pid)
            with contextlib.suppress(OSError):
                sock.send(_STATUS.pack(status))
            sock.close()


def _become(request: _Request) -> None:
    """In the child: take the request's streams, environment, directory and umask, then
    run ``python -m MODULE ARGS`` as the interpreter would."""
    stdin, stdout, stderr, status = request.fds
    os.close(status)
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        if fd != target:
            os.dup2(fd, target)
    for fd in {stdin, stdout, stderr} - {0, 1, 2}:
        os.close(fd)
    os.chdir(request.cwd)
    os.umask(request.umask)
    for name, (soft, hard) in request.limits.items():
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (ValueError, OSError) as exc:  # a hard limit above the fork server's
            print(f"forkserver: {name} stays as it was: {exc}", file=sys.stderr)
    os.environ.clear()
    os.environ.update(request.env)
    # Where ``python -m`` would look: the directory first, then PYTHONPATH's entries.
    extra = [p for p in request.env.get("PYTHONPATH", "").split(os.pathsep) if p]
    rest = sys.path[1:]
    sys.path[:] = [request.cwd, *(p for p in extra if p not in rest), *rest]
    sys.argv = [request.module, *request.args]
    runpy.run_module(request.module, run_name="__main__", alter_sys=True)


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    for name in PRELOAD:
        __import__(name)
    if threading.active_count() != 1:  # pragma: no cover - a preload started a thread
        raise RuntimeError("the fork server must stay single-threaded to fork")
    gc.collect()
    gc.freeze()
    _become(_serve(control))


if __name__ == "__main__":
    main()
