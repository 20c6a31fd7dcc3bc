"""``POST /api/sms/inbound/{secret}``: a text someone sent us, from Kannel's
``sms-service`` (``post-url``, with ``from=%p&to=%P&text=%a`` in the query).

The secret is ``CRDT_SERVER_SMS_INBOUND_SECRET`` (404 without it, or for another; the
access log names the route's template only, never the secret). A number nobody verified
gets nothing (an empty answer: with ``omit-empty = true`` Kannel sends no reply). From a
verified number: ``STOP`` ends every text to it, ``START`` turns them on again; a vendor's
``HERE`` checks their vendor in (the day feature), ``LATE 20`` reports them 20 minutes late
(a ``running_late`` check-in with its ETA) and puts the day's delay proposal for their
next item in the wedding's vendor thread; anything else lands in that thread, attributed
to the member who verified the number. The answer's body is the reply Kannel texts back.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from msgspec import Meta
from starlette.responses import Response

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.documents.model import zone_of
from crdt_server.documents.vendors import Vendor, read_directory
from crdt_server.edge.routing import ApiCall, Routes
from crdt_server.errors import DomainError, NotFound
from crdt_server.features.day import DayWatch
from crdt_server.features.delays import DayDelays
from crdt_server.features.people import People
from crdt_server.features.sms.domain import Command, parse_command
from crdt_server.features.sms.extension import Texts
from crdt_server.features.sms.settings import SmsSettings
from crdt_server.features.sms.tables import Phone
from crdt_server.features.threads import Threads, Viewer

__all__ = ["inbound_routes"]

log = logging.getLogger("crdt_server.sms")

inbound_routes = Routes()

_MAX_TEXT = 1600


class SecretPath(msgspec.Struct, frozen=True):
    secret: Annotated[str, Meta(max_length=128, description="CRDT_SERVER_SMS_INBOUND_SECRET")]


class InboundQuery(msgspec.Struct, frozen=True):
    from_: Annotated[str, Meta(max_length=32, description="the sender (Kannel's %p)")] = (
        msgspec.field(name="from", default="")
    )
    to: Annotated[str, Meta(max_length=32, description="our number (Kannel's %P)")] = ""
    text: Annotated[str, Meta(max_length=_MAX_TEXT, description="the text (Kannel's %a)")] = ""


def _plain(text: str) -> Response:
    return Response(text, media_type="text/plain; charset=utf-8")


@inbound_routes.post(
    "/api/sms/inbound/{secret}",
    "smsInbound",
    "A text from a phone, posted by Kannel's sms-service (post-url)",
    family="public",
    security="none",
    media_type="text/plain",
    errors=(400, 404),
    description="`from`, `to`, `text`: Kannel's `%p`, `%P`, `%a`. The answer's body is "
    "the reply (empty: none; set `omit-empty = true`). STOP, START, HERE, LATE <minutes>; "
    "anything else goes to the wedding's vendor thread. Unknown numbers get nothing.",
)
async def inbound(call: ApiCall, path: SecretPath, query: InboundQuery) -> Response:
    secret = call.state.settings.fragment(SmsSettings).sms_inbound_secret
    if not secret or not _same(secret, path.secret):
        raise NotFound("no such route", field="secret")
    texts = call.state.extension(Texts)
    sender = "+" + query.from_.strip().lstrip("+") if query.from_.strip() else ""
    rows = await texts.numbers(sender) if sender else []
    if not rows:
        return _plain("")  # a number nobody verified: nothing, not even a reply
    command = parse_command(query.text)
    phone = await texts.chosen(rows)
    if command.kind == "stop":
        await texts.stop(sender, True)
        reply = "You will get no more texts from your wedding planner. Reply START for more."
    elif command.kind == "start":
        await texts.stop(sender, False)
        reply = "Texts from your wedding planner are on again. Reply STOP to end them."
    elif not command.text and command.kind == "say":
        reply = ""
    else:
        try:
            reply = await _act(call, phone, command)
        except DomainError as exc:
            log.info("an inbound text could not be acted on: %s", type(exc).__name__)
            reply = "Sorry, that could not be done now. Please use the app."
    # A reply is a text too: it counts against the day's caps (over one: none).
    if reply and not await texts.reply_allowed(phone.wedding):
        reply = ""
    return _plain(reply)


def _same(a: str, b: str) -> bool:
    """Constant time, whatever the lengths and characters."""
    digest = hashlib.sha256
    return hmac.compare_digest(
        digest(a.encode(errors="replace")).digest(), digest(b.encode(errors="replace")).digest()
    )


async def _act(call: ApiCall, phone: Phone, command: Command) -> str:
    wedding, sub = phone.wedding, phone.sub
    member = await call.state.extension(People).member(wedding, sub)
    if member is None:
        return ""
    actor = Actor(sub, member.role)
    vendor = await _vendor_of(call, wedding, sub)
    if command.kind in ("here", "late"):
        if vendor is None:
            return "Only a vendor in the wedding's vendor directory can check in by text."
        return await _check_in(call, wedding, vendor, actor, command.minutes)
    await _to_thread(call, wedding, actor, vendor, command.text)
    return ""


async def _vendor_of(call: ApiCall, wedding: str, sub: str) -> Vendor | None:
    watch = call.state.find(DayWatch)
    if watch is None:
        return None
    directory = read_directory(await watch.timeline(wedding))
    return next((v for v in directory.values() if sub in v.members), None)


async def _check_in(call: ApiCall, wedding: str, vendor: Vendor, actor: Actor, minutes: int) -> str:
    watch = call.state.extension(DayWatch)
    now = clock.now()
    eta = None
    view = await watch.timeline(wedding)
    zone = (view.get("profile") or {}).get("time_zone")
    when = datetime.fromtimestamp(now, zone_of(zone))
    if minutes:
        eta = (when + timedelta(minutes=minutes)).isoformat()
    status = "running_late" if minutes else "arrived"
    fingerprint = hashlib.sha256(f"sms\0{status}\0{minutes}".encode()).hexdigest()
    await watch.check_in(
        wedding, vendor.id, vendor.name, status, eta, now, actor, None, fingerprint
    )
    if not minutes:
        return f"Checked in: {vendor.name} at {when:%H:%M}. Thank you!"
    proposal = await _propose(call, wedding, vendor, actor, minutes, when)
    await _to_thread(
        call, wedding, actor, vendor, f"Running {minutes} minutes late (by text).{proposal}"
    )
    return f"Noted: {vendor.name} {minutes} min late, arriving about {eta and eta[11:16]}."


async def _propose(
    call: ApiCall, wedding: str, vendor: Vendor, actor: Actor, minutes: int, when: datetime
) -> str:
    """The day's delay proposal for the vendor's next item (nothing is moved: the couple
    or the planner applies it in the app), as a sentence."""
    delays = call.state.find(DayDelays)
    if delays is None:
        return ""
    now = await delays.timeline(wedding)
    theirs = sorted(
        (p for p in now.items.values() if p.vendor == vendor.id and p.start >= when),
        key=lambda p: p.start,
    )
    if not theirs:
        return ""
    try:
        delay = await delays.propose(wedding, theirs[0].id, minutes, actor)
    except ValueError:
        return ""
    moved = [now.titles.get(m.id) or m.id for m in delay.ripple.moves]
    return (
        f" Proposed: move {len(moved)} item(s) by {minutes} min ({', '.join(moved[:5])});"
        " apply it from the timeline's Running late button."
    )


async def _to_thread(
    call: ApiCall, wedding: str, actor: Actor, vendor: Vendor | None, text: str
) -> None:
    """Put ``text`` in the wedding's open vendor thread the member sees (a new one, with
    the couple and the planner, when there is none), as the member's message."""
    threads = call.state.find(Threads)
    if threads is None:
        return
    permissions = call.state.permissions
    docs = frozenset(d for d in DOCUMENT_KINDS if permissions.access(actor.role, d).can_read)
    viewer = Viewer(actor, docs, permissions.can(actor.role, "threads.moderate"))
    found, _ = await threads.list_threads(
        wedding, viewer, status="open", kind="vendor", priority=None, anchor=None,
        participant=None, q=None, after=None, limit=1,
    )  # fmt: skip
    if found:
        tid = str(found[0]["id"])
    else:
        people = call.state.extension(People)
        leads = [m.sub for m in await people.members(wedding) if m.role in ("couple", "planner")]
        subject = f"Texts from {vendor.name}" if vendor is not None else "Texts"
        made, _ = await threads.create_thread(
            wedding, viewer, subject=subject, kind="vendor", priority="normal", anchors=[],
            participants=leads,
        )  # fmt: skip
        tid = str(made["id"])
    mid = "sms_" + hashlib.sha256(f"{actor.sub}\0{clock.now()}\0{text}".encode()).hexdigest()[:24]
    await threads.put_message(wedding, tid, mid, viewer, body=text, reply_to=None, priority=None)
