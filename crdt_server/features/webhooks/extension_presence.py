"""Presence changes to the webhook endpoints that ask for them: a path of their own.

The webhook outbox is the events table, and presence is never stored there, so a presence
change (:class:`~crdt_server.features.presence.PresenceChange`) goes straight from the
presence directory to the endpoints that subscribe to ``presence.*`` or
``presence.changed`` by name (``*`` does not include them: presence is chatty, a receiver
asks for it). Changes are coalesced per person: the first goes out at once, and the
changes in the :data:`COALESCE_SECONDS` after a delivery wait for that window's end,
where only the newest goes out.

Best effort: each delivery is signed like every delivery, with a ``webhook-id`` of its own,
and sent once; no retries, no dead letters, no replay, nothing recorded but a log line
when it fails. An endpoint gets a person's change only when its creator could read one of
the person's documents (``documents`` is cut to those). Only the process that speaks for
the cluster of a change (:attr:`PresenceChange.sender`) sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from crdt_server.core.hooks import Extension
from crdt_server.features.presence import CHANGED, PresenceChange
from crdt_server.features.webhooks.domain import Endpoint, new_id
from crdt_server.features.webhooks.domain_safety import UnsafeTarget
from crdt_server.features.webhooks.extension import Webhooks
from crdt_server.features.webhooks.service_sender import SendFailed, post_signed
from crdt_server.storage import StoreError
from crdt_server.times import rfc3339

__all__ = ["COALESCE_SECONDS", "PresenceWebhooks", "wants_presence"]

log = logging.getLogger("crdt_server.webhooks.presence")

COALESCE_SECONDS = 30.0
"""At most one presence delivery per person in this long (the newest change of it)."""
_MOST_ENDPOINTS = 100
_MOST_PEOPLE = 10_000
"""People whose last delivery time is kept (the oldest windows are forgotten first)."""


def wants_presence(endpoint: Endpoint) -> bool:
    """Whether the endpoint asked for presence by name (``*`` alone is not asking)."""
    return not endpoint.disabled and any(
        pattern in ("presence.*", CHANGED) for pattern in endpoint.events
    )


class PresenceWebhooks(Extension):
    """Sends presence changes to the endpoints that subscribe to them (see the module
    docstring); given to the presence directory as a listener."""

    name = "webhooks-presence"

    def __init__(self, webhooks: Webhooks, *, window: float = COALESCE_SECONDS) -> None:
        self._webhooks = webhooks
        self._window = window
        self._last: dict[tuple[str, str], float] = {}
        """(wedding, person) -> when their last change went out (the loop's clock)."""
        self._held: dict[tuple[str, str], PresenceChange] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def told(self, change: PresenceChange) -> None:
        """A presence change this process noticed (the directory's listener)."""
        if not change.sender:
            return
        key = (change.wedding, change.user_id)
        if key in self._held:
            self._held[key] = change  # the window's newest is what goes out
            return
        loop = asyncio.get_running_loop()
        last = self._last.get(key)
        if last is None or loop.time() - last >= self._window:
            self._send(key, change)
            return
        self._held[key] = change
        self._timers[key] = loop.call_at(last + self._window, self._release, key)

    def _release(self, key: tuple[str, str]) -> None:
        self._timers.pop(key, None)
        change = self._held.pop(key, None)
        if change is not None:
            self._send(key, change)

    def _send(self, key: tuple[str, str], change: PresenceChange) -> None:
        now = asyncio.get_running_loop().time()
        self._last[key] = now
        if len(self._last) > _MOST_PEOPLE:
            for old, at in list(self._last.items()):
                if now - at >= self._window or len(self._last) > _MOST_PEOPLE:
                    del self._last[old]
        task = asyncio.create_task(self._deliver(change), name="webhook-presence")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _deliver(self, change: PresenceChange) -> None:
        try:
            found = await self._webhooks.manage.endpoints(
                change.wedding, after="", limit=_MOST_ENDPOINTS
            )
        except StoreError as exc:  # a full disk, a lost database: one line, not a trace
            log.warning("a presence change was not sent to webhooks, the store failed: %s", exc)
            return
        except Exception:
            log.exception("could not read the webhook endpoints of a presence change")
            return
        sends = [self._post(e, change) for e in found if wants_presence(e)]
        await asyncio.gather(*sends)

    async def _post(self, endpoint: Endpoint, change: PresenceChange) -> None:
        data = change.data()
        if endpoint.docs is not None:
            data["documents"] = [d for d in change.documents if d in endpoint.docs]
            if not data["documents"]:
                return  # its creator may read none of the person's documents
        body = {"type": CHANGED, "timestamp": rfc3339(change.at), "data": data}
        payload = json.dumps(body, separators=(",", ":"))
        try:
            status, _ = await post_signed(self._webhooks.senders, endpoint, new_id("msg"), payload)
        except (UnsafeTarget, SendFailed, TimeoutError) as exc:
            log.warning(
                "presence delivery to webhook endpoint %s not made (best effort, not retried): %s",
                endpoint.id,
                type(exc).__name__,
            )
            return
        if not 200 <= status < 300:
            log.warning(
                "webhook endpoint %s answered a presence delivery with %d (not retried)",
                endpoint.id,
                status,
            )

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._held.clear()
        for task in list(self._sending):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
