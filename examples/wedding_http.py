"""Plan a wedding over HTTP: seed the documents, run domain operations, sync an offline edit,
read the plan as JSON and list its conflicts.

Usage: ./scripts/example wedding_http http://127.0.0.1:8000 TOKEN [WEDDING_ID]
(a planner's token: `crdt-server token --wedding w42 --role planner --sub ada`)
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import httpx
from pycrdt import Doc, Map

from crdt_server.documents import DOCUMENT_KINDS, seed


def main(base_url: str, token: str, wedding: str) -> dict[str, Any]:
    api = f"/api/weddings/{wedding}"
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as http:

        def op(kind: str, **body: Any) -> None:
            response = http.post(f"{api}/docs/{kind}/ops", json=body)
            if response.status_code != 200:
                raise SystemExit(f"{body['op']} refused ({response.status_code}): {response.text}")

        # 1. Seed the four documents (deterministic: seeding twice changes nothing).
        for kind in DOCUMENT_KINDS:
            doc: Doc[Any] = Doc()
            seed(doc, kind, wedding)
            http.post(f"{api}/docs/{kind}/update", content=doc.get_update()).raise_for_status()

        # 2. Domain operations, each one transaction, answered once committed.
        op("guests", op="add_guest", guest_id="ada", name="Ada Lovelace", side="partner_a")
        op("guests", op="add_guest", guest_id="grace", name="Grace Hopper", side="partner_b")
        op("guests", op="set_rsvp", guest_id="ada", rsvp="accepted")
        op("seating", op="add_table", table_id="rose", name="Rose", capacity=8)
        op("seating", op="assign_seat", guest_id="ada", table_id="rose", seat=1)
        op(
            "timeline",
            op="add_timeline_item",
            item_id="ceremony",
            title="Ceremony",
            start="2027-06-12T15:00:00+02:00",
            end="2027-06-12T16:00:00+02:00",
            location="Chapel",
        )
        op("budget", op="set_budget_total", total=2_000_000, currency="EUR")

        # 3. An offline-first client: edits a local copy, then syncs over HTTP.
        phone: Doc[Any] = Doc()
        first = http.post(f"{api}/docs/guests/sync", json={"state_vector": "", "update": ""})
        phone.apply_update(base64.b64decode(first.json()["update"]))
        synced = phone.get_state()
        guest = phone.get("guests", type=Map)["grace"]
        guest["meal"] = "vegetarian"  # made offline
        body = {
            "state_vector": base64.b64encode(phone.get_state()).decode(),
            "update": base64.b64encode(phone.get_update(synced)).decode(),
        }
        http.post(f"{api}/docs/guests/sync", json=body).raise_for_status()

        # 4. Read the plan back, and what still needs a decision.
        guests = http.get(f"{api}/docs/guests").json()["guests"]
        seating = http.get(f"{api}/docs/seating").json()["assignments"]
        conflicts = http.get(f"{api}/conflicts").json()["conflicts"]
        return {"guests": guests, "assignments": seating, "conflicts": conflicts}


if __name__ == "__main__":
    result = main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "w42")
    print(json.dumps(result, sort_keys=True))
