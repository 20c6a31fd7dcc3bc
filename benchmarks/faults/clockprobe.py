"""What a server whose wall clock jumped makes of tokens (``server-clock-jump``): after
each jump, the server's own clock as its ``Date`` header says, and whether it lets in a
fresh token and one with five minutes left, both minted by the real clock with the
cluster's shared secret. One JSON line per jump in ``<server>.clock.jsonl``."""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import connect

if TYPE_CHECKING:
    from benchmarks.faults.cluster import Cluster

__all__ = ["probe"]

WEDDING = "clockprobe"
TOKENS = {"fresh": 3600, "five minutes left": 300}
"""Seconds each probe token has left by the real clock (it was minted an hour long)."""
DATE_READS_FOR = 10.0
"""Seconds the probe reads the server's ``Date`` header again until it shows the jump."""


def _token(secret: str, left: int) -> str:
    now = int(time.time())
    payload = {
        "sub": "probe", "name": "probe", "role": "couple", "wedding": WEDDING,
        "iat": now + left - 3600, "exp": now + left,
    }  # fmt: skip
    return jwt.encode(payload, secret, algorithm="HS256")


def _let_in(url: str, token: str) -> str:
    """``open`` when the server answers the sync handshake, else how it refused."""
    try:
        with connect(f"{url}/sync/{WEDDING}/guests?token={token}", open_timeout=5) as ws:
            ws.recv(timeout=5)
            return "open"
    except ConnectionClosed as exc:
        return f"closed {exc.rcvd.code if exc.rcvd else '?'} {exc.rcvd.reason if exc.rcvd else ''}"
    except InvalidStatus as exc:
        return f"HTTP {exc.response.status_code}"
    except (WebSocketException, OSError, TimeoutError) as exc:
        return f"failed: {exc!r}"[:200]


def _server_ahead(url: str, offset: int) -> tuple[int | str, int]:
    """How far the server's clock is ahead of the real one by its ``Date`` header, and how
    many reads that took. uvicorn writes the header once a second from its loop, so a
    loop that just stalled (4 s at the jump itself in one run) still sends the date of
    before the jump for up to a second after it turns again: read again, every half second
    for up to :data:`DATE_READS_FOR` seconds (the jump lasts until the probe returns),
    until it shows the offset."""
    deadline = time.time() + DATE_READS_FOR
    reads = 0
    ahead: int | str
    time.sleep(1.2)  # a header written since the jump
    while True:
        reads += 1
        try:
            date = httpx.get(f"{url}/healthz", timeout=5).headers.get("date", "")
            ahead = round(parsedate_to_datetime(date).timestamp() - time.time())
        except (httpx.HTTPError, ValueError, TypeError) as exc:
            ahead = f"no answer: {exc!r}"[:200]
        if (isinstance(ahead, int) and abs(ahead - offset) <= 2) or time.time() > deadline:
            return ahead, reads
        time.sleep(0.5)


def probe(cluster: Cluster, target: str, offset: int) -> dict[str, Any]:
    server = cluster.server(target)
    found: dict[str, Any] = {"at": round(time.time(), 1), "offset": offset}
    ws = server.url.replace("http://", "ws://")
    for name, left in TOKENS.items():
        found[name] = _let_in(ws, _token(cluster.secret, left))
    found["server_ahead_s"], found["date_reads"] = _server_ahead(server.url, offset)
    with (cluster.dir / f"{target}.clock.jsonl").open("a") as out:
        out.write(json.dumps(found) + "\n")
    return found
