"""Reporting a delay: ``POST /api/weddings/{id}/day/delays``.

``{"item", "minutes"}`` answers 200 with the proposal: the delayed item and every later item
of its day that depends on it (``follows``, or the same vendor: :mod:`crdt_server.documents.
delays`), each with its old and new times, the ``fixed`` items that keep theirs, and the
vendors who would be told. Anyone who reads the timeline may ask. With ``"apply": true``
(for whoever writes the timeline) the moves are made, as one change credited to the caller,
with one ``timeline.delayed`` event and notifications to exactly the vendors whose items
moved; ``moves`` (with ``apply``) replaces the proposal by an edited list of
``{"item", "start", "end"}`` (an item of the day, not fixed; each given time with its
offset). 422 names the field of a delay that cannot be made (an unknown or fixed item,
minutes outside 1 to 1440).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta
from starlette.responses import Response

from crdt_server.documents.delays import MAX_MINUTES, DelayError, Move, Ripple
from crdt_server.documents.model import DocumentError, instant, parse_instant
from crdt_server.edge.guards import document_principal, sender_of
from crdt_server.edge.params import WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Impossible, Malformed
from crdt_server.features.delays.extension import DayDelays, Delay, TimelineNow

__all__ = ["MAX_EDITED", "delay_routes"]

MAX_EDITED = 500
"""The most moves an edited list may give."""
ItemId = Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{1,64}$", description="a timeline item id")]

delay_routes = Routes()


class EditedMove(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    item: ItemId
    start: Annotated[str, Meta(max_length=64)]
    end: Annotated[str, Meta(max_length=64)]


class DelayRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    item: ItemId
    """The timeline item running late."""
    minutes: Annotated[int, Meta(ge=-(2**31), le=2**31)]
    """How late, 1 to 1440."""
    apply: bool = False
    """Make the moves (else: only the proposal)."""
    moves: list[EditedMove] | None = None
    """With ``apply``: the moves to make instead of the proposal's."""


class MoveJson(msgspec.Struct, frozen=True):
    item: str
    title: str
    vendor: str | None
    start: str
    end: str
    new_start: str
    new_end: str


class VendorTold(msgspec.Struct, frozen=True):
    vendor: str
    """The vendor's name (the directory's, or the free text as the timeline spells it)."""
    told: int
    """How many are (or would be) told: its member accounts, else 1 for its contact's
    email, else 0 (a free-text vendor)."""


class DelayAnswer(msgspec.Struct, frozen=True):
    item: str
    minutes: int
    moves: list[MoveJson]
    fixed: list[str]
    """Fixed items of the day after the delayed one: they keep their times."""
    vendors: list[VendorTold]
    applied: bool
    event: str | None
    """The ``timeline.delayed`` event's id once applied."""


def _answer(delay: Delay, now: TimelineNow, applied: bool) -> DelayAnswer:
    moves = [
        MoveJson(
            m.id,
            now.titles.get(m.id, ""),
            None if m.vendor is None else now.vendor_name(m.vendor),
            m.start.isoformat(),
            m.end.isoformat(),
            m.new_start.isoformat(),
            m.new_end.isoformat(),
        )
        for m in delay.ripple.moves
    ]
    vendors = [VendorTold(now.vendor_name(k), n) for k, n in delay.told.items()]
    return DelayAnswer(
        delay.item, delay.minutes, moves, list(delay.ripple.fixed), vendors, applied, delay.event
    )


def _edited(given: list[EditedMove], proposal: Ripple, now: TimelineNow) -> Ripple:
    """The caller's own list of moves, checked against the timeline (422 naming the
    field)."""
    if not 1 <= len(given) <= MAX_EDITED:
        raise Malformed(f"1 to {MAX_EDITED} moves", field="moves")
    moves: list[Move] = []
    seen: set[str] = set()
    for i, edit in enumerate(given):
        item = now.items.get(edit.item)
        if item is None:
            raise Impossible("not a timeline item of this wedding", field=f"moves[{i}].item")
        if item.fixed:
            raise Impossible("this item is fixed: it keeps its time", field=f"moves[{i}].item")
        if edit.item in seen:
            raise Impossible("this item is moved twice", field=f"moves[{i}].item")
        seen.add(edit.item)
        try:
            start, end = parse_instant(instant(edit.start)), parse_instant(instant(edit.end))
        except DocumentError as exc:
            raise Malformed(str(exc), field=f"moves[{i}].start") from exc
        if end < start:
            raise Impossible("ends before it starts", field=f"moves[{i}].end")
        moves.append(Move(item.id, item.start, item.end, start, end, item.vendor))
    return Ripple(tuple(moves), proposal.fixed)


@delay_routes.post(
    "/api/weddings/{wedding_id}/day/delays",
    "reportDelay",
    "An item running late: what moves with it (and, with apply, move it all)",
    family="write",
    response_model=DelayAnswer,
    errors=(400, 401, 403, 404, 413, 422, 429, 503),
    description="The proposal lists every later item of the day that depends on the "
    "delayed one (follows it, or has the same vendor and would otherwise start before its "
    "new end), never a fixed item nor what follows one. With apply (timeline writers) the "
    "moves are one change credited to the caller, one timeline.delayed event, and "
    "notifications to exactly the vendors whose items moved.",
)
async def report_delay(call: ApiCall, path: WeddingPath, body: DelayRequest) -> Response:
    wedding_id = path.wedding_id
    principal = document_principal(call, wedding_id, "timeline", write=body.apply)
    if body.moves is not None and not body.apply:
        raise Impossible("moves are given only with apply", field="moves")
    if not 1 <= body.minutes <= MAX_MINUTES:
        raise Impossible(f"must be 1 to {MAX_MINUTES} minutes", field="minutes")
    delays = call.state.extension(DayDelays)
    now = await delays.timeline(wedding_id)
    try:
        delay = await delays.propose(wedding_id, body.item, body.minutes, principal.actor)
    except DelayError as exc:
        raise Impossible(str(exc), field=exc.field) from exc
    if not body.apply:
        return json_response(_answer(delay, now, False))
    if body.moves is not None:
        edited = _edited(body.moves, delay.ripple, now)
        delay = Delay(delay.item, delay.minutes, edited, {})
    done = await delays.apply(wedding_id, delay, sender_of(principal), now)
    return json_response(_answer(done, now, True))
