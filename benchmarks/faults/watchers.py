"""Who else watches a schedule's weddings, and what they must have seen by its end:

- **webhook deliveries, at least once**: each wedding has an endpoint (made by its couple)
  on a receiver in the machine's own namespace, on the campaign's bridge; every event the
  store holds for the wedding must have reached it at least once (a delivery cut off by a
  fault is attempted again: the servers run with a short retry schedule), each one signed
  with the endpoint's secret and carrying the wedding's own events only; the receiver
  verifies each request as a real one does (signature, and a timestamp within five
  minutes of its clock) and answers 400 to what fails, which the sender attempts again;
- **a vendor's device**: a reader of each wedding's guest list with a vendor's token,
  through HAProxy, reconnecting whenever a fault cuts it; what it holds must be that
  wedding's guests only, and none of a field its role may not read (the writers type into
  each guest's ``notes``, which vendors do not read: they receive a projection).

Each check has a deadline; what is still missing then is a finding of the schedule."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from pycrdt import Doc, Map
from standardwebhooks import Webhook, WebhookVerificationError

from crdt_server.codec.protocol import (
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_sync_step1,
)
from crdt_server.errors import ProtocolError
from crdt_server.testing.receiver import Received, WebhookReceiver
from crdt_server.testing.tokens import TokenMinter

__all__ = ["WEBHOOK_ENV", "Deliveries", "VendorReader", "Watch"]

WEBHOOK_ENV = {
    "CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE": "1",
    # Attempts again within the heal window (the default waits 5 s, then 5 minutes).
    "CRDT_SERVER_WEBHOOK_RETRY_SCHEDULE": "0,1,2,4,8,15,30",
}
"""What the campaign's servers run with so that a receiver on the bridge is allowed and a
delivery cut off by a fault is attempted again within the schedule's heal window."""

VENDOR_HIDDEN = ("notes", "contact", "mailing_address", "rsvp_note", "rsvp_note_at")
"""Guest fields a vendor may not read (docs/reference/permissions.md, "Fields")."""


@dataclass
class DeliveryCheck:
    undelivered: int = 0
    foreign: int = 0
    repeated: int = 0
    """Deliveries that came again with a webhook-id already received (allowed: at least
    once; counted to show that retries happened)."""
    notes: list[str] = field(default_factory=list)


class Deliveries:
    """The campaign's webhook receiver and the endpoints it made, one per wedding."""

    def __init__(self, host: str) -> None:
        self.receiver = WebhookReceiver(host=host, judge=self._verify)
        self.secrets: dict[str, str] = {}
        self.accepted: dict[str, list[tuple[str, Any]]] = {}
        """Per wedding, the deliveries its endpoint accepted: (webhook id, event)."""
        self.refused = 0
        """Requests answered 400: a signature that does not verify, or a timestamp more
        than five minutes from the receiver's clock (a sender whose clock jumped)."""

    def _verify(self, got: Received) -> int | None:
        """400 for what a real receiver refuses (the sender tries again), else ``None``,
        the event kept for its wedding as it arrived (its freshness is the arrival's)."""
        wedding = got.path.rsplit("/", 1)[-1]
        secret = self.secrets.get(wedding)
        try:
            if secret is None:
                raise WebhookVerificationError("no endpoint")
            event: Any = Webhook(secret).verify(got.body, got.headers)
        except WebhookVerificationError:
            self.refused += 1
            return 400
        self.accepted.setdefault(wedding, []).append((got.id, event))
        return None

    async def __aenter__(self) -> Deliveries:
        await self.receiver.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.receiver.__aexit__(None, None, None)

    async def subscribe(self, url: str, secret: str, wedding: str) -> None:
        """An endpoint for ``wedding`` (every event), made by its couple through
        ``url`` (HAProxy); tried again while a fault is still healing."""
        token = TokenMinter(secret).headers("couple", "campaign", wedding)
        body = {"url": f"{self.receiver.url}/{wedding}", "description": "fault campaign"}
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            while True:
                try:
                    answer = await http.post(
                        f"/api/weddings/{wedding}/webhooks", json=body, headers=token
                    )
                    if answer.status_code == 201:
                        self.secrets[wedding] = answer.json()["secret"]
                        return
                    failure = f"{answer.status_code} {answer.text[:200]}"
                except httpx.HTTPError as exc:
                    failure = repr(exc)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no webhook endpoint for {wedding}: {failure}")
                await asyncio.sleep(1)

    def _received(self, wedding: str, check: DeliveryCheck) -> dict[int, int]:
        """Seq -> how many deliveries of it reached ``wedding``'s endpoint."""
        seen: dict[int, int] = {}
        ids: set[str] = set()
        for webhook_id, event in self.accepted.get(wedding, []):
            if webhook_id in ids:
                check.repeated += 1
            ids.add(webhook_id)
            data = event.get("data") or {}
            of = str(data.get("id", "")).rpartition(":")[0]
            if of != wedding:
                check.foreign += 1
                check.notes.append(f"{wedding}'s endpoint got an event of {of!r}")
                continue
            seq = data.get("seq")
            if isinstance(seq, int):
                seen[seq] = seen.get(seq, 0) + 1
        return seen

    async def check(
        self, events: dict[str, list[int]], wait: float, reread: Any = None
    ) -> DeliveryCheck:
        """Every event seq in ``events`` (per wedding) delivered at least once, waiting up
        to ``wait`` seconds for retries (``reread``: an async callable giving ``events``
        again, for events derived after the first read)."""
        deadline = time.monotonic() + wait
        while True:
            check = DeliveryCheck()
            for wedding, seqs in events.items():
                seen = self._received(wedding, check)
                missing = [s for s in seqs if s not in seen]
                check.undelivered += len(missing)
                if missing:
                    check.notes.append(
                        f"{wedding}: {len(missing)} events never delivered, e.g. seqs {missing[:5]}"
                    )
            if not check.undelivered or time.monotonic() > deadline:
                return check
            await asyncio.sleep(1)
            if reread is not None:
                events = await reread()


class VendorReader:
    """A vendor's device reading one wedding's guest list through HAProxy for the whole
    schedule, reconnecting (with its own state vector) whenever a fault cuts it."""

    def __init__(self, url: str, secret: str, wedding: str) -> None:
        token = TokenMinter(secret)("campaign-vendor", "vendor", wedding)
        self.url = url.replace("http://", "ws://", 1) + f"/sync/{wedding}/guests?token={token}"
        self.wedding = wedding
        self.doc: Doc[Any] = Doc()
        self.connects = 0
        self.skipped = 0
        self.closes: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:  # until stopped (cancelled) at the schedule's end
            try:
                async with websockets.connect(
                    self.url, open_timeout=5, ping_interval=5, ping_timeout=5
                ) as socket:
                    self.connects += 1
                    await socket.send(encode_sync_step1(self.doc.get_state()))
                    async for message in socket:
                        if not isinstance(message, bytes):
                            continue
                        try:
                            decoded = decode_message(message)
                        except ProtocolError:
                            self.skipped += 1  # a message of the server's own: not content
                            continue
                        if isinstance(decoded, SyncStep2 | SyncUpdate):
                            self.doc.apply_update(decoded.update)
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                self.closes.append(type(exc).__name__)
            except Exception as exc:  # noqa: BLE001 (a reader that stops would pass for a stale one)
                self.closes.append(repr(exc)[:200])
            await asyncio.sleep(0.5)

    def findings(self) -> list[str]:
        """What it holds that a vendor of this wedding may not: another wedding's guests,
        a field vendors do not read. Empty when it is right."""
        guests = self.doc.get("guests", type=Map)
        found: list[str] = []
        for gid, entry in guests.items():
            if not str(gid).startswith(f"g-{self.wedding}-"):
                found.append(f"vendor of {self.wedding} holds guest {gid} of another wedding")
            if isinstance(entry, Map):
                hidden = sorted(set(entry.keys()) & set(VENDOR_HIDDEN))
                if hidden:
                    found.append(f"vendor of {self.wedding} holds {hidden} of {gid}")
        return found

    def guest_ids(self) -> set[str]:
        return set(self.doc.get("guests", type=Map).keys())


class Watch:
    """A schedule's watchers: an endpoint and a vendor's reader for each wedding."""

    def __init__(self, deliveries: Deliveries, readers: list[VendorReader]) -> None:
        self.deliveries = deliveries
        self.readers = readers

    @classmethod
    async def start(
        cls, deliveries: Deliveries, url: str, secret: str, weddings: list[str]
    ) -> Watch:
        for wedding in weddings:
            await deliveries.subscribe(url, secret, wedding)
        readers = [VendorReader(url, secret, w) for w in weddings]
        for reader in readers:
            reader.start()
        return cls(deliveries, readers)

    async def stop(self) -> None:
        for reader in self.readers:
            await reader.stop()

    async def judge(
        self,
        events: dict[str, list[int]],
        reread: Any,
        wait: float,
        guests: dict[str, set[str]] | None = None,
        deliveries_wait: float | None = None,
    ) -> dict[str, Any]:
        """``undelivered`` (events never delivered), ``unreadable`` (what a watcher received
        that it may not: another wedding's events or guests, a field its role does not
        read), ``vendors_behind`` (vendors' devices still without
        every guest the store holds after ``wait`` seconds: a projection's writer that died
        leaves it unwritten for up to a lease), ``vendor_lag_s`` (how long the vendors took
        once the deliveries were checked), ``repeated`` (deliveries that came again),
        ``refused`` (requests the receiver refused so far: a jumped clock's timestamps),
        and notes."""
        check = await self.deliveries.check(
            events, wait if deliveries_wait is None else deliveries_wait, reread
        )
        want = guests or {}
        started = time.monotonic()
        while True:
            behind = [r for r in self.readers if want.get(r.wedding, set()) - r.guest_ids()]
            if not behind or time.monotonic() > started + wait:
                break
            await asyncio.sleep(1)
        lag = round(time.monotonic() - started, 1)
        found = [f for reader in self.readers for f in reader.findings()]
        notes = [
            f"vendor of {r.wedding} lacks {len(want[r.wedding] - r.guest_ids())} of the "
            f"store's {len(want[r.wedding])} guests ({r.connects} connects, {r.skipped} "
            f"messages skipped, closes {r.closes[-3:]})"
            for r in behind
        ]
        return {
            "undelivered": check.undelivered,
            "unreadable": check.foreign + len(found),
            "vendors_behind": len(behind),
            "repeated": check.repeated,
            "refused": self.deliveries.refused,
            "vendor_guests": sum(len(reader.guest_ids()) for reader in self.readers),
            "vendor_lag_s": lag if not behind else None,
            "vendor_connects": sum(reader.connects for reader in self.readers),
            "notes": check.notes[:5] + found[:5] + notes,
        }
