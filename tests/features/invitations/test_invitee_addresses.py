"""What becomes of the address a person gives when joining by invitation (issue 78, point
2), through a real server, a real SMTP receiver and both stores: a single-use invitation
emailed to exactly that address (after normalising) verifies it (the directory has it,
confirmed, and so does this device's person); if it is an existing person's, the
membership joins that person only once the sign-in link sent to it is used; any other
address (another one, a code for several people, one a member of the wedding has) stays
unconfirmed, the member list says so, and the "confirm your email" link confirms it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from crdt_server.testing.waits import until
from tests.features.signin.test_add_email import COUPLE, claim_link, devices
from tests.features.signin.test_sessions import Running, cookie_of, put_member

pytestmark = [pytest.mark.timeout(120)]


async def invite(http: httpx.AsyncClient, email: str | None, **more: Any) -> str:
    body = {"role": "planner", "name": "Them", **more}
    if email is not None:
        body["email"] = email
    made = await http.post("/api/weddings/w1/invitations", json=body, headers=COUPLE)
    assert made.status_code == 201, made.text
    return str(made.json()["code"])


async def accept(running: Running, code: str, email: str | None, name: str) -> httpx.Response:
    body = {"code": code, "name": name} | ({} if email is None else {"email": email})
    answer = await running.http.post("/api/invitations/accept", json=body, headers=running.origin)
    assert answer.status_code == 201, answer.text
    return answer


async def directory(running: Running) -> dict[str, dict[str, Any]]:
    listed = await running.http.get("/api/weddings/w1/members", headers=COUPLE)
    assert listed.status_code == 200, listed.text
    return {m["sub"]: m for m in listed.json()["members"]}


@pytest.mark.asyncio
async def test_an_address_the_invitation_was_emailed_to_is_verified_by_joining(
    running: Running,
) -> None:
    code = await invite(running.http, "Priya.Shah@Example.com")
    joined = await accept(running, code, "  priya.shah@example.COM ", "Priya")
    assert joined.json()["email"] == "verified"
    sub = joined.json()["sub"]
    priya = (await directory(running))[sub]
    assert priya["email"] == "priya.shah@example.com" and priya["email_confirmed"] is True
    # This device's person has it: nothing asks her to confirm it.
    cookie = cookie_of(joined)
    assert (await devices(running, cookie))["email"] == "priya.shah@example.com"
    # A sign-in link to it, from another device, is her, in this wedding.
    again = await running.complete(await running.link("priya.shah@example.com"))
    assert again.status_code == 200, again.text
    assert (again.json()["wedding"], again.json()["sub"]) == ("w1", sub)


@pytest.mark.asyncio
async def test_an_existing_persons_address_joins_her_only_by_the_sign_in_link(
    running: Running,
) -> None:
    http = running.http
    # Dana signed in before, as a member of another wedding.
    await put_member(http, "w2", "dana2", role="friend", name="Dana", email="dana@example.com")
    first = await running.complete(await running.link("dana@example.com"))
    assert first.status_code == 200, first.text
    dana = cookie_of(first)
    code = await invite(http, "dana@example.com")
    joined = await accept(running, code, "Dana@example.com", "Dana")
    assert joined.json()["email"] == "sign_in_link"
    sub = joined.json()["sub"]
    assert (await directory(running))[sub]["email"] == "dana@example.com"
    # Not hers yet: her own devices do not list this wedding...
    before = await running.session(dana, "refresh", json={"wedding": "w2"})
    assert {w["wedding"] for w in before.json()["weddings"]} == {"w2"}

    # ...until she uses the sign-in link that joining sent her (the second to her).
    async def sent() -> bool:
        return len(running.links_to("dana@example.com")) == 2

    await until(sent)
    used = await running.complete(running.links_to("dana@example.com")[1])
    assert used.status_code == 200, used.text
    assert ("w1", sub) in {(w["wedding"], w["sub"]) for w in used.json()["weddings"]}
    after = await running.session(dana, "refresh", json={"wedding": "w1"})
    assert after.status_code == 200, after.text
    assert {w["wedding"] for w in after.json()["weddings"]} == {"w1", "w2"}


@pytest.mark.asyncio
async def test_any_other_address_stays_unconfirmed_until_its_link_is_used(
    running: Running,
) -> None:
    http = running.http
    elsewhere = await accept(running, await invite(http, "x@example.com"), "y@example.com", "Yan")
    many = await invite(http, "fam@example.com", role="family", uses=3)
    shared = await accept(running, many, "fam@example.com", "Fam")
    no_email = await invite(http, None)
    await put_member(http, "w1", "held", role="friend", name="Held", email="held@example.com")
    taken = await accept(running, await invite(http, "held@example.com"), "held@example.com", "H")
    bare = await accept(running, no_email, None, "Bare")
    assert [a.json()["email"] for a in (elsewhere, shared, taken, bare)] == [
        "unconfirmed",
        "unconfirmed",
        "unconfirmed",
        None,
    ]
    listed = await directory(running)
    for answer in (elsewhere, shared, taken):
        member = listed[answer.json()["sub"]]
        assert (member["email"], member["email_confirmed"]) == (None, False), member
    assert listed[bare.json()["sub"]]["email_confirmed"] is None
    assert listed["held"]["email_confirmed"] is True
    # The person is asked to confirm it; once she follows the link, it is on file.
    cookie = cookie_of(elsewhere)
    assert (await devices(running, cookie))["email"] is None
    done = await running.complete(await claim_link(running, cookie, "y@example.com"))
    assert done.status_code == 200, done.text
    yan = (await directory(running))[elsewhere.json()["sub"]]
    assert (yan["email"], yan["email_confirmed"]) == ("y@example.com", True)
