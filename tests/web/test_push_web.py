"""Push notifications in the app, in a real browser (Debian's Chromium): the service
worker's push handler, driven through the DevTools protocol's
``ServiceWorker.deliverPushMessage`` (what a push service would hand the browser), shows a
notification (``registration.getNotifications()``, with the notification permission
granted) whose tag replaces a repeat; the push settings (what is pushed, quiet hours) are
saved. Subscribing through a real push service is not tried here: the test machine reaches
none, and the switch says so when the browser's push service refuses."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.web.conftest import PAGE_ERRORS, Demo, open_app, refused, until

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(120)]

NOTIFICATIONS = "navigator.serviceWorker.ready.then((r) => r.getNotifications())"


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


def message(**extra: Any) -> str:
    payload = {
        "wedding": "demo",
        "type": "mention",
        "title": "Pat mentioned you in \u201cFlowers\u201d",
        "body": "Can you confirm the peonies by Friday?",
        "url": "/app/?wedding=demo&thread=t1",
        "tag": "thread:t1",
    }
    return json.dumps(payload | extra)


async def test_a_push_message_shows_a_notification_and_a_repeat_replaces_it(
    browser: Any, demo: Demo
) -> None:
    context, page = await open_app(browser, demo.link("couple"))
    await context.grant_permissions(["notifications"], origin=demo.url)
    await until(page, "navigator.serviceWorker.controller !== null")
    cdp = await context.new_cdp_session(page)
    found: list[str] = []

    def updated(event: dict[str, Any]) -> None:
        for registration in event["registrations"]:
            if registration["scopeURL"].endswith("/app/") and not registration["isDeleted"]:
                found.append(registration["registrationId"])

    cdp.on("ServiceWorker.workerRegistrationUpdated", updated)
    await cdp.send("ServiceWorker.enable")
    deadline = time.monotonic() + 10
    while not found:
        assert time.monotonic() < deadline, "no service worker registration"
        await page.wait_for_timeout(50)

    async def push(data: str) -> None:
        await cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": demo.url, "registrationId": found[-1], "data": data},
        )

    async def shown_now() -> list[list[Any]]:
        got = await page.evaluate(
            f"{NOTIFICATIONS}.then((n) => n.map((x) => [x.tag, x.body, x.data.url,"
            " x.requireInteraction]))"
        )
        return sorted((list(x) for x in got), key=lambda t: str(t[0]))

    async def delivered(
        data: str, required: list[list[Any]], earlier: tuple[list[Any], ...] = ()
    ) -> None:
        # Each message is delivered once its predecessor shows: three pushes in a row each
        # start the worker's handler, and under load the browser may still be replacing one
        # notification while the next arrives. The browser closes a notification that does
        # not require interaction about 25 s after it showed (measured alone: 25.6 s), and
        # under load these steps have taken longer than that (the full tier, twice), so the
        # ones shown ``earlier`` may be gone; nothing else may be listed, the replaced one
        # included, and each step has 30 s with a timeout that says what was shown.
        # Chromium has now and then shown nothing for a message delivered through DevTools,
        # for the whole 30 s: in two full-tier runs (one on 2026-11-27 at night, one in the
        # morning) and in 2 of 9 runs of this test beside the reminder test, the third
        # message; in the full tier of 2026-11-29, the first. Never alone, nor in six runs
        # beside two busy processes. The cause was not found. The delivery is
        # fire-and-forget, so a message not shown after 10 s is delivered again, as a push
        # service keeps a message until the browser has taken it: what is under test is the
        # worker's handler. A second copy shows as the first (the same tag replaces; an
        # untagged copy lists the same), so the checks hold.
        await push(data)
        start = time.monotonic()
        deadline, again = start + 30, [start + 10, start + 20]
        while True:
            now = await shown_now()
            if all(n in now for n in required) and all(n in required or n in earlier for n in now):
                return
            want = sorted(required, key=lambda t: str(t[0]))
            assert time.monotonic() < deadline, f"shown {now}, expected {want} (and {earlier})"
            if again and time.monotonic() > again[0]:
                again.pop(0)
                await push(data)
            await page.wait_for_timeout(50)

    url = f"{demo.url}/app/?wedding=demo&thread=t1"
    first = ["thread:t1", "Can you confirm the peonies by Friday?", url, False]
    await delivered(message(), [first])
    shown = await page.evaluate(
        f"{NOTIFICATIONS}.then((n) => n.map((x) => "
        "({title: x.title, body: x.body, tag: x.tag, url: x.data.url,"
        " sticky: x.requireInteraction})))"
    )
    assert shown == [
        {
            "title": "Pat mentioned you in \u201cFlowers\u201d",
            "body": "Can you confirm the peonies by Friday?",
            "tag": "thread:t1",
            "url": url,
            "sticky": False,
        }
    ]

    # The same tag replaces it; an emergency stays until dismissed; a URL elsewhere is
    # never opened (the app's own page instead); a payload that is not ours still shows.
    thread = ["thread:t1", "Peonies confirmed", url, False]
    emergency = ["emergency:7", "Can you confirm the peonies by Friday?", f"{demo.url}/app/", True]
    await delivered(message(body="Peonies confirmed"), [thread])
    await delivered(
        message(
            type="emergency", title="Emergency", tag="emergency:7", url="https://evil.example/"
        ),
        [emergency],
        earlier=(thread,),
    )
    await delivered("not json", [emergency, ["", "", f"{demo.url}/app/", False]], earlier=(thread,))


async def test_the_push_settings_are_saved_and_the_switch_says_why_it_stays_off(
    browser: Any, demo: Demo
) -> None:
    context, page = await open_app(browser, demo.link("couple"))
    await context.grant_permissions(["notifications"], origin=demo.url)
    await page.get_by_role("button", name="Inbox").click()
    await page.get_by_text("Notification settings").click()
    form = page.get_by_role("form", name="Push settings")
    await form.get_by_label("Quiet from").fill("22:00")
    await form.get_by_label("until").fill("07:00")
    await form.get_by_label("Mentions").uncheck()
    await form.get_by_label("Reminders").uncheck()
    await form.get_by_role("button", name="Save push settings").click()
    await page.get_by_text("Push settings saved.").first.wait_for(timeout=5000)
    saved = await page.evaluate(
        "(token) => fetch('/api/weddings/demo/push-settings',"
        " {headers: {Authorization: `Bearer ${token}`}}).then((r) => r.json())",
        demo.tokens["couple"],
    )
    assert saved["mentions"] is False and saved["emergencies"] is True
    assert saved["reminders"] is False
    assert saved["quiet_hours"]["start"] == "22:00" and saved["quiet_hours"]["end"] == "07:00"
    assert saved["quiet_hours"]["zone"]
    # No push service is reachable from here: the switch goes back off and says why.
    switch = page.get_by_label("Push notifications on this device")
    await switch.click()
    refusal = page.locator("#error-push-settings-device")
    await refusal.filter(has_text="Push is off:").wait_for(timeout=20_000)
    await refused(page, switch, "Push is off:")
    assert not await switch.is_checked()
    assert not await page.get_by_role("button", name="Send me a test notification").is_enabled()
