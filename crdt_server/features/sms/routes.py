"""Texts over HTTP: a member's phone number and what they want texted, and what Kannel
calls back.

- ``POST /api/session/phone {"phone", "wedding"?}``: 202, a code is texted to the number
  (E.164, a calling code of ``CRDT_SERVER_SMS_COUNTRIES``); 409 if another person verified
  it; 429 over ``CRDT_SERVER_SMS_CODES_PER_HOUR`` a member, over
  ``CRDT_SERVER_SMS_PER_ADDRESS_PER_HOUR`` a client address, or over a daily cap (each
  naming its limit); 503 when the server sends no texts.
- ``POST /api/session/phone/verify {"code", "wedding"?}``: 200, the number is the member's.
- ``GET /api/session/phone``, ``DELETE /api/session/phone``, ``PUT
  /api/session/phone/choices``: the member's number, its removal, what they want texted
  (mentions, urgent messages, the day's alerts; emergencies always) and quiet hours.
- ``GET /api/sms/status/{message_id}?token=...&status=%d``: Kannel's delivery report
  (``dlr-url``), 204; a token that is not the text's: 404.

The session routes act for the caller's token: its wedding (``wedding`` when the token
names several). Numbers are personal: only their member reads them.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta
from starlette.responses import Response

from crdt_server.edge.params import WeddingId
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Forbidden, Impossible, NotFound, TooMany, Unavailable
from crdt_server.features.people import member_principal
from crdt_server.features.push import QuietHours, check_quiet_hours
from crdt_server.features.sms.domain import normal_phone
from crdt_server.features.sms.extension import Texts
from crdt_server.features.sms.settings import SmsSettings
from crdt_server.times import rfc3339

__all__ = ["sms_routes"]

sms_routes = Routes()
_PHONE = "/api/session/phone"
_ERR = (400, 401, 403, 404, 413, 422, 429)


class PhoneBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    phone: Annotated[str, Meta(min_length=1, max_length=32, description="E.164: +447700900123")]
    wedding: WeddingId | None = None
    """The wedding (``null``: the token's only one)."""


class CodeBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    code: Annotated[str, Meta(min_length=1, max_length=16, description="the texted code")]
    wedding: WeddingId | None = None


class WeddingQuery(msgspec.Struct, frozen=True):
    wedding: WeddingId | None = None


class Choices(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What the member wants texted (emergencies always, STOP apart)."""

    mentions: bool = False
    urgent: bool = False
    day: bool = True
    """A vendor missing at their call time, a delay moving your vendor's items, a member
    on duty offline."""
    quiet_hours: QuietHours | None = None
    """What is not an emergency waits until they end; ``null``: none."""


class ChoicesBody(Choices, forbid_unknown_fields=True, frozen=True):
    wedding: WeddingId | None = None
    """The wedding (``null``: the token's only one)."""


class PhoneAccepted(msgspec.Struct, frozen=True):
    detail: str


class PhoneAnswer(msgspec.Struct, frozen=True):
    phone: str | None
    """The verified number (``null``: none)."""
    pending: str | None
    """A number waiting for its code."""
    verified_at: str | None
    stopped: bool
    """The number texted STOP: nothing is sent until it texts START."""
    choices: Choices
    sending: bool
    """Whether this server sends texts (``CRDT_SERVER_SMS_URL``): the app offers them only
    then."""


class TextItem(msgspec.Struct, frozen=True):
    id: int
    kind: str
    status: str
    """``queued``, ``sent`` (Kannel took it), ``delivered``, ``undelivered``, ``rejected``,
    ``failed`` (Kannel refused it, or every attempt failed), ``cancelled``."""
    report: int
    """The last delivery report type (Kannel's: 1 delivered, 2 failed, 4 buffered, 8
    accepted by the SMSC, 16 rejected by it; 0 none yet)."""
    created_at: str
    sent_at: str | None
    reported_at: str | None


class TextsAnswer(msgspec.Struct, frozen=True):
    texts: list[TextItem]


class StatusPath(msgspec.Struct, frozen=True):
    message_id: Annotated[int, Meta(ge=1, le=2**53, description="a text's id")]


class StatusQuery(msgspec.Struct, frozen=True):
    token: Annotated[str, Meta(max_length=64)] = ""
    status: Annotated[int, Meta(ge=0, le=255)] = 0


def _texts(call: ApiCall) -> Texts:
    return call.state.extension(Texts)


async def _member(call: ApiCall, wedding: str | None) -> tuple[str, str]:
    """The caller's wedding and sub (their token's only wedding, else ``wedding``)."""
    claims = call.caller.claims
    if claims is None:
        raise Forbidden("a member's token is needed")
    chosen = wedding
    if chosen is None:
        if len(claims.weddings) != 1:
            raise Impossible("name the wedding: your token is for several", field="wedding")
        chosen = claims.weddings[0]
    principal = await member_principal(call, chosen)
    return chosen, principal.user_id


def _address_allowed(call: ApiCall) -> bool:
    client = call.request.client
    return _texts(call).address_limiter.allow(client.host if client else "unknown")


@sms_routes.post(
    _PHONE,
    "addPhone",
    "Add your phone number: a code is texted to it",
    family="write",
    response_model=PhoneAccepted,
    status=202,
    errors=(*_ERR, 409, 503),
    description="E.164 (`+447700900123`), of a calling code in `CRDT_SERVER_SMS_COUNTRIES` "
    "(422 otherwise). The code works for 10 minutes, five tries, for this number only. 409 "
    "if another person verified the number; 429 over `CRDT_SERVER_SMS_CODES_PER_HOUR` codes "
    "a member, `CRDT_SERVER_SMS_PER_ADDRESS_PER_HOUR` requests a client address, or the "
    "day's `CRDT_SERVER_SMS_PER_WEDDING_PER_DAY` / `CRDT_SERVER_SMS_PER_SERVER_PER_DAY` "
    "(the detail names which); 503 when the server sends no texts.",
)
async def add_phone(call: ApiCall, body: PhoneBody) -> Response:
    wedding, sub = await _member(call, body.wedding)
    if not _texts(call).sending:  # before the number: its countries are none then
        raise Unavailable("this server sends no texts (CRDT_SERVER_SMS_URL is unset)")
    settings = call.state.settings.fragment(SmsSettings)
    phone = normal_phone(body.phone, settings.countries)
    if phone is None:
        allowed = ", ".join(f"+{c}" for c in settings.countries) or "none"
        raise Impossible(f"an E.164 number (+ and digits) of {allowed}", field="phone")
    if not _address_allowed(call):
        raise TooMany(
            "too many requests from this address (CRDT_SERVER_SMS_PER_ADDRESS_PER_HOUR)",
            retry_after=600,
        )
    await _texts(call).add_phone(wedding, sub, phone)
    return json_response(PhoneAccepted("a code is on its way by text"), status_code=202)


@sms_routes.post(
    f"{_PHONE}/verify",
    "verifyPhone",
    "Verify your phone number with the texted code",
    family="write",
    response_model=PhoneAnswer,
    errors=(*_ERR, 409),
)
async def verify_phone(call: ApiCall, body: CodeBody) -> Response:
    wedding, sub = await _member(call, body.wedding)
    if not _address_allowed(call):
        raise TooMany(
            "too many requests from this address (CRDT_SERVER_SMS_PER_ADDRESS_PER_HOUR)",
            retry_after=600,
        )
    await _texts(call).verify(wedding, sub, body.code.strip())
    return json_response(await _answer(call, wedding, sub))


async def _answer(call: ApiCall, wedding: str, sub: str) -> PhoneAnswer:
    texts = _texts(call)
    row = await texts.phone(wedding, sub)
    if row is None:
        return PhoneAnswer(None, None, None, False, Choices(), texts.sending)
    quiet = QuietHours(row.quiet_start, row.quiet_end, row.zone) if row.quiet_start else None
    return PhoneAnswer(
        row.phone or None,
        row.pending or None,
        rfc3339(row.verified_at, "seconds") if row.verified_at else None,
        bool(row.stopped),
        Choices(bool(row.mentions), bool(row.urgent), bool(row.day), quiet),
        texts.sending,
    )


@sms_routes.get(
    _PHONE,
    "getPhone",
    "Your phone number and what you want texted",
    family="read",
    response_model=PhoneAnswer,
    errors=(400, 401, 403, 404, 429),
)
async def get_phone(call: ApiCall, query: WeddingQuery) -> Response:
    wedding, sub = await _member(call, query.wedding)
    return json_response(await _answer(call, wedding, sub))


@sms_routes.delete(
    _PHONE,
    "deletePhone",
    "Remove your phone number (nothing more is texted to it)",
    family="write",
    status=204,
    errors=(400, 401, 403, 404, 429),
)
async def delete_phone(call: ApiCall, query: WeddingQuery) -> Response:
    wedding, sub = await _member(call, query.wedding)
    await _texts(call).remove_phone(wedding, sub)
    return Response(status_code=204)


@sms_routes.put(
    f"{_PHONE}/choices",
    "setPhoneChoices",
    "Choose what is texted to you, and your quiet hours",
    family="write",
    response_model=PhoneAnswer,
    errors=_ERR,
)
async def set_choices(call: ApiCall, body: ChoicesBody) -> Response:
    wedding, sub = await _member(call, body.wedding)
    quiet = body.quiet_hours
    check_quiet_hours(quiet)
    await _texts(call).set_choices(
        wedding, sub, body.mentions, body.urgent, body.day,
        None if quiet is None else (quiet.start, quiet.end, quiet.zone),
    )  # fmt: skip
    return json_response(await _answer(call, wedding, sub))


@sms_routes.get(
    f"{_PHONE}/texts",
    "listTexts",
    "The texts sent to you this week and their delivery reports (no bodies)",
    family="read",
    response_model=TextsAnswer,
    errors=(400, 401, 403, 404, 429),
)
async def list_texts(call: ApiCall, query: WeddingQuery) -> Response:
    wedding, sub = await _member(call, query.wedding)
    rows = await _texts(call).texts(wedding, sub)
    items = [
        TextItem(
            r.id,
            r.kind,
            r.status,
            r.dlr,
            rfc3339(r.created_at, "seconds"),
            rfc3339(r.sent_at, "seconds") if r.sent_at else None,
            rfc3339(r.reported_at, "seconds") if r.reported_at else None,
        )  # fmt: skip
        for r in rows
    ]
    return json_response(TextsAnswer(items))


@sms_routes.get(
    "/api/sms/status/{message_id}",
    "smsDeliveryReport",
    "Kannel's delivery report of one text (its dlr-url)",
    family="public",
    security="none",
    status=204,
    errors=(400, 404),
    description="Fetched by Kannel (`dlr-url`, `%d` for `status`); `token` is the text's "
    "own HMAC, so no one else can mark a text delivered. 404 for any other token.",
)
async def delivery_report(call: ApiCall, path: StatusPath, query: StatusQuery) -> Response:
    if not await _texts(call).report(path.message_id, query.token, query.status):
        raise NotFound("no such text", field="message_id")
    return Response(status_code=204)
