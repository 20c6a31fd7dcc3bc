"""The guests' side of an RSVP link: ``GET`` and ``PUT /api/rsvp/{code}``.

The code is the credential (kind ``rsvp``, :mod:`crdt_server.edge.identity`): it names the
wedding and the household and carries their HMAC at the household's link version. A
code that does not verify, a revoked one (an older version), one for a household no
longer in the guest list or an erased wedding reads nothing: 404, the same answer as a
code nobody made. A good code is the principal ``guest:<guest id>`` of each person of the
household it answers for: it writes only the ``update_guest`` operation on those guests
(never a socket, never another household's guest), each person's change its own update
credited to them (``{"sub": "guest:g1", "role": "guest"}``), so ``guest.rsvp_changed``
events name who answered, and the household's note to the couple (``rsvp_note`` and
``rsvp_note_at`` of its own household entry, created for a free-text household), credited
to the first person the answer names.

A guest in no household answers by a link of their own (``{wedding}.g.{guest}.{mac}``):
for themself and the plus-ones who name them, never for anyone else; such a link keeps no
note (there is no household entry to keep it on, and none is made): a note is refused with
422 naming ``note``, and the page says ``"kind": "guest"``.

Limits: ``rsvp_per_address_per_hour`` per client address (every request, counted before
the code is checked: guessing codes is slow), ``rsvp_per_link_per_hour`` per link (the
tight one, counted for codes that verify). After the RSVP deadline (the household's, else
the wedding's) the link reads ``closed`` and answers are refused with 410.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from starlette.responses import Response

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.core.hooks import Sender
from crdt_server.core.operation_keys import OperationKey
from crdt_server.documents import OperationError
from crdt_server.documents.model import MAX_LIST, MAX_TEXT
from crdt_server.edge.identity import CredentialKind
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Conflict, Gone, Impossible, Malformed, NotFound, TooMany
from crdt_server.features.events import EventLog
from crdt_server.storage import FeatureRow, NewEvent
from crdt_server.times import rfc3339

from .domain import MAX_CODE, MAX_NOTE, closes_at, link_key, parse_code, verify_code
from .domain_households import HouseholdView, Wedding, read_wedding
from .extension import RsvpLinks

__all__ = ["GUEST_ROLE", "guest_actor", "guest_routes", "plus_one_id"]

GUEST_ROLE = "guest"
"""The role of every RSVP answer's actor: not a role of the permission matrix."""
MAX_PEOPLE = 50
"""People one answer may name (a household larger than this answers in several)."""

guest_routes = Routes()
_PATH = "/api/rsvp/{code}"
_RSVP: frozenset[CredentialKind] = frozenset({"rsvp"})


def guest_actor(guest_id: str) -> Actor:
    """Who an RSVP answer for ``guest_id`` is credited to."""
    return Actor(f"guest:{guest_id}", GUEST_ROLE)


class CodePath(msgspec.Struct, frozen=True):
    code: Annotated[
        str,
        Meta(
            max_length=MAX_CODE,
            pattern="^[A-Za-z0-9_.-]+$",
            description="the code of an RSVP link (after #code= in its URL)",
        ),
    ]


class PersonView(msgspec.Struct, frozen=True):
    guest_id: str
    name: str
    rsvp: str
    meal: str | None
    dietary: list[str]
    plus_one: bool
    plus_one_of: str | None
    """The guest whose plus-one they are (a plus-one named from the page or the app)."""


class WeddingView(msgspec.Struct, frozen=True):
    names: list[str]
    date: str | None
    venue: str | None
    time_zone: str | None = None
    """The wedding's IANA time zone (a full date-time deadline is shown in it)."""


class RsvpPage(msgspec.Struct, frozen=True):
    household: str
    """The household's name."""
    wedding: WeddingView
    deadline: str | None
    """The RSVP deadline (the household's, else the wedding's); ``null``: none."""
    closed: bool
    """The deadline passed: answers are refused (and no one is listed)."""
    menu: list[str] | None
    """The meals to choose from; ``null``: no menu (any meal is taken)."""
    people: list[PersonView]
    note: str | None = None
    """The household's note to the couple; ``null``: none (or the RSVP is closed)."""
    kind: Literal["household", "guest"] = "household"
    """``guest``: the own link of a guest in no household (``household`` is their name;
    it keeps no note)."""


class PersonAnswer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    guest_id: Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{1,64}$")]
    attending: bool
    meal: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)] | None = None
    dietary: (
        Annotated[list[Annotated[str, Meta(max_length=MAX_TEXT)]], Meta(max_length=MAX_LIST)] | None
    ) = None


class PlusOneAnswer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)]
    meal: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)] | None = None


class RsvpAnswer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    people: Annotated[list[PersonAnswer], Meta(min_length=1, max_length=MAX_PEOPLE)]
    plus_one: PlusOneAnswer | None = None
    note: (
        Annotated[
            str,
            Meta(
                max_length=MAX_NOTE,
                description="the household's note to the couple (free text); empty: clear it",
            ),
        ]
        | None
    ) = None


class Answered(msgspec.Struct, frozen=True):
    guest_id: str
    rsvp: str
    changed: bool


class RsvpReceipt(msgspec.Struct, frozen=True):
    answered: list[Answered]
    at: str


class _Link(msgspec.Struct, frozen=True):
    wedding_id: str
    household: HouseholdView
    """The household; for a guest's own link, the guest as a household of one (with the
    plus-ones who name them)."""
    wedding: Wedding
    closes: datetime | None
    guest: bool = False
    """A guest's own link, not a household's."""

    @property
    def key(self) -> str:
        """What the link is known by: its household's id, or ``guest:`` and the guest's."""
        return link_key(self.household.id, guest=self.guest)


def _client(call: ApiCall) -> str:
    client = call.request.client
    return client.host if client else "unknown"


def _too_many(what: str, per_hour: float) -> TooMany:
    return TooMany(
        f"too many requests {what}, slow down", retry_after=max(1, math.ceil(3600 / per_hour))
    )


async def _link(call: ApiCall, code: str) -> _Link:
    """The household a code opens, or 404 (see the module docstring)."""
    links = call.state.extension(RsvpLinks)
    if not links.per_address.allow(_client(call)):
        raise _too_many("from this address", links.per_address_rate)
    parsed = parse_code(code)
    unknown = NotFound("no such RSVP link", field="code")
    if parsed is None:
        raise unknown
    version = await links.tables.version(parsed.wedding, parsed.key)
    if not verify_code(links.secret, parsed, version):
        raise unknown
    if not links.per_link.allow(f"{parsed.wedding}.{parsed.key}"):
        raise _too_many("for this RSVP link", links.per_link_rate)
    docs = await call.state.weddings.documents(parsed.wedding, kinds=("guests", "timeline"))
    wedding = read_wedding(docs)
    # A guest's own link opens them only while they are in no household (once put in one,
    # the household's link answers for them).
    found = wedding.solo if parsed.guest else wedding.households
    household = found.get(parsed.household)
    if household is None or not household.guests:
        raise unknown  # an erased or emptied household (or guest) reads nothing
    deadline = household.rsvp_deadline or wedding.deadline
    closes = closes_at(deadline, wedding.time_zone)
    return _Link(parsed.wedding, household, wedding, closes, guest=parsed.guest)


def _closed(link: _Link) -> bool:
    return link.closes is not None and clock.utcnow() >= link.closes


@guest_routes.get(
    _PATH,
    "readRsvp",
    "A household's RSVP page: its people, the couple, the date and place, the menu and "
    "the deadline (the code is the credential; 404 for a wrong or revoked one)",
    family="rsvp",
    security="none",
    accepts=_RSVP,
    response_model=RsvpPage,
    errors=(400, 401, 404, 429),
)
async def read_rsvp(call: ApiCall, path: CodePath) -> Response:
    link = await _link(call, path.code)
    wedding, household = link.wedding, link.household
    closed = _closed(link)
    people = [
        PersonView(g.id, g.name, g.rsvp, g.meal, list(g.dietary), g.plus_one, g.plus_one_of)
        for g in household.guests
    ]
    page = RsvpPage(
        household.name,
        WeddingView(list(wedding.names), wedding.date, wedding.venue, wedding.time_zone),
        household.rsvp_deadline or wedding.deadline,
        closed,
        list(wedding.menu.choices) if wedding.menu.choices else None,
        [] if closed else people,
        None if closed else household.rsvp_note,
        "guest" if link.guest else "household",
    )
    response = json_response(page)
    response.headers["Cache-Control"] = "no-store"
    return response


class _Op(msgspec.Struct, frozen=True):
    """One operation of an answer: the field of the body it comes from, the guest it is
    credited to, and the operation."""

    field: str
    guest_id: str
    op: dict[str, Any]


def _operations(link: _Link, body: RsvpAnswer) -> list[_Op]:
    """The operations of an answer, checked against the household and the menu before
    anything is written (422 naming the field): the note first (when it changes), then each
    person's."""
    members = {g.id for g in link.household.guests}
    menu = link.wedding.menu
    seen: set[str] = set()
    ops: list[_Op] = []
    for index, person in enumerate(body.people):
        where = f"people[{index}]"
        if person.guest_id not in members or person.guest_id in seen:
            raise Impossible(
                "not a guest of this household (or named twice)", field=f"{where}.guest_id"
            )
        seen.add(person.guest_id)
        if person.meal is not None and not menu.offers(person.meal):
            raise Impossible("not on the menu", field=f"{where}.meal")
        op: dict[str, Any] = {
            "op": "update_guest",
            "guest_id": person.guest_id,
            "rsvp": "accepted" if person.attending else "declined",
        }
        if person.meal is not None:
            op["meal"] = person.meal
        if person.dietary is not None:
            op["dietary"] = person.dietary
        ops.append(_Op(where, person.guest_id, op))
    if body.plus_one is not None:
        named = _plus_one(link, body.plus_one)
        ops.append(_Op("plus_one", named["guest_id"], named))
    note = _note(link, body.note)
    if note is not None:
        ops.insert(0, _Op("note", body.people[0].guest_id, note))
    return ops


def _note(link: _Link, note: str | None) -> dict[str, Any] | None:
    """The operation that sets (or, given an empty one, clears) the household's note to
    the couple, stamped with when it was written; ``None`` when it stays as it is. A
    free-text household gets its entry (under the id it already reads under)."""
    if note is None:
        return None
    text = note.strip() or None
    if link.guest:
        if text is not None:
            raise Impossible("a guest's own link keeps no note: write to the couple", field="note")
        return None
    household = link.household
    if text == household.rsvp_note:
        return None
    at = rfc3339(int(clock.now()), "seconds") if text is not None else None
    op: dict[str, Any] = {"household_id": household.id, "rsvp_note": text, "rsvp_note_at": at}
    if household.entry:
        return {"op": "update_household", **op}
    return {"op": "add_household", "name": household.name, **op}


def plus_one_id(host: str) -> str:
    """The id of the guest naming ``host``'s plus-one makes: derived, so naming them again
    (a replay, another device) renames the same guest rather than adding one."""
    return "po-" + hashlib.sha256(host.encode()).hexdigest()[:16]


def _plus_one(link: _Link, named: PlusOneAnswer) -> dict[str, Any]:
    """Name the plus-one of the household's first guest who brings one: a guest of their
    own (``plus_one_of`` the host), attending."""
    hosts = [g for g in link.household.guests if g.plus_one and g.plus_one_of is None]
    if not hosts:
        raise Impossible("this household has no plus-one to name", field="plus_one")
    menu = link.wedding.menu
    if named.meal is not None and not menu.offers(named.meal):
        raise Impossible("not on the menu", field="plus_one.meal")
    guest_id = plus_one_id(hosts[0].id)
    known = any(g.id == guest_id for g in link.household.guests)
    op: dict[str, Any] = {
        "op": "update_guest" if known else "add_guest",
        "guest_id": guest_id,
        "name": named.name,
        "rsvp": "accepted",
    }
    if not known:
        op["plus_one_of"] = hosts[0].id
    if named.meal is not None:
        op["meal"] = named.meal
    return op


def _key(call: ApiCall, link: _Link) -> OperationKey | None:
    key = call.request.headers.get("idempotency-key")
    if key is None or not call.state.weddings.keys.installed:
        return None
    if not 1 <= len(key) <= 255:
        raise Malformed("1 to 255 characters", field="Idempotency-Key")
    return OperationKey(
        link.wedding_id,
        f"{link.wedding_id}:rsvp:{link.key}",
        key,
        hashlib.sha256(call.body).hexdigest(),
    )


async def _answer(call: ApiCall, link: _Link, ops: list[_Op], once: OperationKey | None) -> bytes:
    """Run the operations, each person's (and the note) as their own update; the receipt
    (JSON). With an idempotency key, its row is committed with the last person's update
    (the note, when there is one, goes first)."""
    weddings = call.state.weddings
    answered: list[Answered] = []
    at = rfc3339(int(clock.now()), "seconds")
    receipt = b""

    def kept(result: dict[str, Any]) -> list[FeatureRow]:
        nonlocal receipt
        receipt = msgspec.json.encode(RsvpReceipt([*answered, _done(ops[-1].op, result)], at))
        return [weddings.keys.row(once, receipt.decode())] if once is not None else []

    for index, each in enumerate(ops):
        actor = guest_actor(each.guest_id)
        sender = Sender(actor, f"http:{actor.sub}")
        last = index == len(ops) - 1
        try:
            result = await weddings.operate(
                link.wedding_id, "guests", each.op, sender, rows=kept if last else None
            )
        except OperationError as exc:
            # The note's operation names its own fields (rsvp_note): the body's is ``note``.
            path = exc.path if each.field != "note" else ""
            where = each.field + (f".{path}" if path else "")
            refusal = Malformed if exc.reason == "malformed" else Impossible
            raise refusal(exc.message, field=where) from None
        if not last and each.field != "note":
            answered.append(_done(each.op, result))
    await _record_answer(call, link, msgspec.json.decode(receipt, type=RsvpReceipt))
    return receipt


ANSWERED = "rsvp.answered"
"""The event of every answer a household sent by its link, changed or not (a
``guest.rsvp_changed`` is made only by a change): who answered, and when."""


async def _record_answer(call: ApiCall, link: _Link, receipt: RsvpReceipt) -> None:
    """An ``rsvp.answered`` event (of the guest list: whoever may read it reads it),
    credited to the first person answered for; a replayed answer (its Idempotency-Key)
    makes none again."""
    log = call.state.find(EventLog)
    if log is None or not receipt.answered:
        return  # a server without the events feature keeps no record of anything
    answers = [{"id": a.guest_id, "rsvp": a.rsvp, "changed": a.changed} for a in receipt.answered]
    said: dict[str, Any] = {"guest": link.household.id} if link.guest else {}
    said = {"household": None if link.guest else link.household.id, **said, "answers": answers}
    data = json.dumps(said, separators=(",", ":"))
    actor = guest_actor(receipt.answered[0].guest_id)
    await log.record([NewEvent(link.wedding_id, ANSWERED, data, "guests", actor.sub, actor.role)])


def _done(op: dict[str, Any], result: dict[str, Any]) -> Answered:
    return Answered(op["guest_id"], op["rsvp"], bool(result.get("changed")))


@guest_routes.put(
    _PATH,
    "answerRsvp",
    "Answer for the household's people (attending, meal, dietary) and leave the couple a "
    "note; each person's change is credited to them (guest:<guest id>); Idempotency-Key "
    "honoured",
    family="rsvp",
    security="none",
    accepts=_RSVP,
    response_model=RsvpReceipt,
    errors=(400, 401, 404, 409, 410, 413, 422, 429, 503),
    description=(
        "`attending: true` sets `rsvp` to `accepted`, false to `declined`. A meal must be "
        "on the menu when there is one. `plus_one` names the plus-one of the household's "
        "first guest who brings one: a guest of their own (`plus_one_of`), attending, under "
        "an id derived from their host's (naming them again renames them). "
        f"`note` (at most {MAX_NOTE} characters, else 422 naming `note`) is the household's "
        "note to the couple, kept on its household entry (`rsvp_note`, with `rsvp_note_at`) "
        "and credited to the first person named; an empty note clears it, an absent one "
        "leaves it. "
        "`Idempotency-Key` (the page's offline queue sends one with each answer), scoped "
        "to the household and kept 24 h: the same key with "
        "the same body answers the first answer again (`Idempotent-Replayed: true`); with "
        "another body, 409. After the deadline: 410."
    ),
)
async def answer_rsvp(call: ApiCall, path: CodePath, body: RsvpAnswer) -> Response:
    link = await _link(call, path.code)
    once = _key(call, link)
    keys = call.state.weddings.keys
    if once is not None:
        async with keys.held(once):
            first = await keys.first(once)
            if first is not None:
                if first.fingerprint != once.fingerprint:
                    raise Conflict(
                        "this Idempotency-Key was used with another answer", field="Idempotency-Key"
                    )
                replayed = Response(first.answer, media_type="application/json")
                replayed.headers["Idempotent-Replayed"] = "true"
                return replayed
            if _closed(link):
                raise Gone("the RSVP closed at its deadline", field="code")
            answer = await _answer(call, link, _operations(link, body), once)
    else:
        if _closed(link):
            raise Gone("the RSVP closed at its deadline", field="code")
        answer = await _answer(call, link, _operations(link, body), None)
    return Response(answer, media_type="application/json")
