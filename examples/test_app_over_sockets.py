"""An app's two devices against a real server with the crdt-server testing kit.

The plugin's ``crdt_clients`` fixture starts the server (uvicorn on an ephemeral port, SQLite
in a temporary directory) and connects pycrdt clients over real WebSockets; a phone edits
offline and its RSVP reaches the laptop once it is back. ``pip install crdt-server[testing]``
brings pytest-asyncio for the ``async`` test; run it with ``pytest examples/``.
"""

import pytest
from pycrdt import Map

from crdt_server.testing import assert_converged


@pytest.mark.asyncio
async def test_an_offline_rsvp_reaches_the_other_device(crdt_clients):
    async with crdt_clients:
        phone = await crdt_clients.connect("w1/guests", role="couple")
        laptop = await crdt_clients.connect("w1/guests", role="planner")
        await phone.go_offline()
        phone.doc.get("guests", type=Map)["g-ann"] = Map({"name": "Ann", "rsvp": "accepted"})
        await phone.reconnect()
        await laptop.wait(lambda: "g-ann" in laptop.doc.get("guests", type=Map))
        assert_converged(phone, laptop)
