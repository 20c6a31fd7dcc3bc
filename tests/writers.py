"""Writers for crash campaigns: edit and flush in a loop with a bounded window of edits not
echoed yet, and remember exactly what they wrote, so what the server confirmed can be checked
after a kill."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pycrdt import Map, Text
from websockets.exceptions import ConnectionClosed

from tests.yclient import YClient

TEXT_EVERY = 4
"""Every this many map edits, a writer also appends a unique token to the text."""
IN_FLIGHT = 512
"""Clock units a writer may have sent but not seen echoed before it waits for echoes (so
the server is kept busy, yet its echoes keep up and every round confirms edits)."""
WINDOW_WAIT = 10.0
MAP_NAME = "kv"
TEXT_NAME = "notes"


@dataclass
class Writer:
    """One writer client in one room: edits and flushes in a loop, waiting for echoes only
    when more than ``IN_FLIGHT`` clock units are unconfirmed."""

    name: str
    room: str
    client: YClient
    keys: dict[str, str] = field(default_factory=dict)
    """Every key written (in order), with its value."""
    tokens: list[str] = field(default_factory=list)
    """Every text token written, in order."""

    async def run(self, round_no: int, stop: asyncio.Event) -> None:
        kv = self.client.doc.get(MAP_NAME, type=Map)
        notes = self.client.doc.get(TEXT_NAME, type=Text)
        n = 0
        try:
            while not stop.is_set():
                key = f"{self.name}-{round_no}-{n}"
                kv[key] = str(n)
                self.keys[key] = str(n)
                if n % TEXT_EVERY == 0:
                    token = f"<{key}>"
                    notes.insert(len(notes), token)
                    self.tokens.append(token)
                await self.client.flush()
                n += 1
                if self.client.unconfirmed() > IN_FLIGHT:
                    await self._wait_for_echoes(stop)
                # Not synchronisation: a send does not always yield, and the clients'
                # readers must get to run to receive the echoes.
                await asyncio.sleep(0)
        except ConnectionClosed:
            return  # the server died under us: that is the experiment

    async def _wait_for_echoes(self, stop: asyncio.Event) -> None:
        client = self.client
        try:
            await client.wait(
                lambda: (
                    client.unconfirmed() <= IN_FLIGHT // 2
                    or stop.is_set()
                    or client.closed.is_set()
                ),
                timeout=WINDOW_WAIT,
            )
        except TimeoutError:
            pass  # a stalled server is the kill's business; keep writing

    def confirmed(self) -> tuple[dict[str, str], list[str]]:
        """This writer's keys and tokens that the server sent back to it."""
        kv = self.client.confirmed.get(MAP_NAME, type=Map).to_py()
        text = str(self.client.confirmed.get(TEXT_NAME, type=Text))
        keys = {k: v for k, v in self.keys.items() if k in kv}
        tokens = [t for t in self.tokens if t in text]
        return keys, tokens

    def received_keys(self) -> set[str]:
        """Every key the server sent this client (anyone's)."""
        return {str(k) for k in self.client.confirmed.get(MAP_NAME, type=Map).to_py()}
