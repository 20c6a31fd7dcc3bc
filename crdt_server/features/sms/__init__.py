"""Text messages (SMS) through Kannel, both ways: members' verified numbers, the durable
SMS outbox that follows the notifications inbox (emergencies, a vendor missing at their
call time, a delay moving a vendor's items; urgent messages and mentions for members who
choose them), delivery reports, and replies (STOP, START, HERE, LATE <minutes>, anything
else to the wedding's vendor thread). Nothing is sent without ``CRDT_SERVER_SMS_URL``.

It needs the notifications inbox and the member directory; with the emergencies, day,
delays and threads features on the list it says their notices and acts on replies."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.edge.routing import ApiRoute
from crdt_server.features import Built, Feature
from crdt_server.features.delays import DayDelays
from crdt_server.features.events import EventLog
from crdt_server.features.notifications import Notifications
from crdt_server.features.people import People
from crdt_server.features.sms.export import PHONES
from crdt_server.features.sms.extension import Texts, kept_key
from crdt_server.features.sms.extension_words import say_day, say_emergencies
from crdt_server.features.sms.settings import SmsSettings
from crdt_server.features.sms.tables import SCHEMA

__all__ = ["FEATURE", "SmsSettings", "Texts"]


async def _build(built: Built) -> Sequence[Extension]:
    inbox = built.get(Notifications)
    people = built.get(People)
    texts = Texts(built.core, await kept_key(built.core), inbox, people)
    inbox.queued_listeners.append(texts.notified)
    events = built.get(EventLog)
    say_emergencies(texts, events, people)
    say_day(texts, events, built.find(DayDelays))
    return [texts]


def _routes() -> Sequence[ApiRoute]:
    from crdt_server.features.sms.routes import sms_routes
    from crdt_server.features.sms.routes_inbound import inbound_routes

    return [*sms_routes(), *inbound_routes()]


FEATURE = Feature(
    "sms",
    _build,
    needs=("notifications", "people", "events"),
    routes=_routes,
    schemas=(SCHEMA,),
    export=(PHONES,),
    settings=SmsSettings,
)
