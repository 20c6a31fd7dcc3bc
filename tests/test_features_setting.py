"""``CRDT_SERVER_FEATURES``: the features a server runs. ``none`` is a sync server alone
(rooms, the store, echo after commit, two writers converging) with no feature's route; a
list runs those features in their usual order; an unknown name is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pycrdt import Map

from crdt_server.app import FEATURES, features_of
from crdt_server.settings import Settings, SettingsError
from tests.server import served
from tests.yclient import YClient

pytestmark = [pytest.mark.timeout(60)]


def with_features(spec: str) -> Settings:
    return dataclasses.replace(Settings(), features=spec)


def test_the_setting_names_the_features_in_their_usual_order() -> None:
    assert features_of(with_features("all")) == FEATURES
    assert features_of(with_features("none")) == ()
    chosen = features_of(with_features(" webhooks , events "))
    assert [f.name for f in chosen] == ["events", "webhooks"]
    for bad in ("events,bogus", ",", ""):
        with pytest.raises(SettingsError, match="features"):
            features_of(with_features(bad))


@pytest.mark.asyncio
async def test_none_is_a_sync_server_alone(tmp_path: Path) -> None:
    env = {"CRDT_SERVER_FEATURES": "none"}
    async with (
        served(tmp_path / "data", env, anonymous=True) as (server, http),
        YClient(server.ws_url, "w1/guests") as ann,
        YClient(server.ws_url, "w1/guests") as bob,
    ):
        await ann.wait(ann.synced.is_set)
        await bob.wait(bob.synced.is_set)
        guests: Map[object] = ann.doc.get("guests", type=Map)
        guests["g1"] = Map({"name": "Ann Lee"})
        await ann.flush()
        await ann.wait(ann.is_confirmed)  # echoed once committed
        other: Map[object] = bob.doc.get("guests", type=Map)
        await bob.wait(lambda: "g1" in other)
        # The documents' own routes are the core's; a feature's are not there.
        assert (await http.get("/api/weddings/w1/docs/guests")).status_code == 200
        assert (await http.get("/api/weddings/w1/events")).status_code == 404
        assert (await http.get("/healthz")).status_code == 200
