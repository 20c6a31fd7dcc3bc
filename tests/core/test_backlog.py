"""The backlog bounds (crdt_server.core.backlog) by themselves: who is over, who is woken,
fair shares across rooms, the pause limit. The real server's behaviour under overload is
tests/wire/test_overload.py's."""

from __future__ import annotations

import asyncio

import pytest

from crdt_server.core.backlog import Backlog
from crdt_server.core.metrics import Metrics

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(10)]


async def test_a_room_at_its_bound_is_over_until_its_commits_bring_it_under() -> None:
    backlog = Backlog(room_bound=3)
    for _ in range(2):
        backlog.added("a")
    assert not backlog.over("a")
    backlog.added("a")
    assert backlog.over("a") and not backlog.over("b")
    under = backlog.under("a")
    assert not under.done()
    backlog.removed("a", 1)
    await asyncio.wait_for(under, 1)
    assert backlog.of("a") == 2 and backlog.total == 2
    backlog.removed("a", 5)  # more than it holds: never negative
    assert backlog.of("a") == 0 and backlog.total == 0


async def test_past_the_process_bound_a_busy_room_waits_and_a_quiet_one_never() -> None:
    backlog = Backlog(room_bound=100, process_bound=10)
    for _ in range(9):
        backlog.added("busy")
    backlog.added("quiet")
    # Ten in all, two rooms with a backlog: each may keep five; the quiet one holds one.
    assert backlog.over("busy")
    assert not backlog.over("quiet")
    backlog.added("quiet")
    assert not backlog.over("quiet")  # two of its share of five
    backlog.removed("busy", 9)
    assert not backlog.over("busy")
    # With as many rooms as the bound, each keeps at least one.
    many = Backlog(process_bound=4)
    for room in "abcdef":
        many.added(room)
    assert not any(many.over(room) for room in "abcdef")
    many.added("a")
    assert many.over("a")


async def test_a_pause_ends_when_the_room_is_under_or_after_the_limit() -> None:
    metrics = Metrics()
    backlog = Backlog(room_bound=1, pause_limit=0.2, metrics=metrics)
    backlog.added("a")
    waiting = asyncio.ensure_future(backlog.pause("a"))
    await asyncio.sleep(0)  # let it start waiting: nothing to wait on but itself
    assert metrics.reads_paused == 1
    backlog.removed("a", 1)
    assert await asyncio.wait_for(waiting, 1) is True
    assert metrics.reads_paused == 0
    backlog.added("a")
    assert await backlog.pause("a") is False  # nobody commits: the limit ends it
    assert metrics.reads_paused == 0
    assert metrics.backlog_pause_limits._value.get() == 1
    assert not backlog._waiters  # the timed-out waiter is forgotten


async def test_bounds_of_zero_never_pause() -> None:
    backlog = Backlog()
    for _ in range(10_000):
        backlog.added("a")
    assert not backlog.over("a")
    assert await backlog.pause("a") is True


async def _next_window(backlog: Backlog) -> None:
    """Wait until ``backlog``'s current rate window is over (its counts become the last)."""
    await asyncio.sleep(backlog.rate_window * 1.2)


async def test_a_wedding_is_quiet_by_its_rate_counted_across_its_documents() -> None:
    backlog = Backlog(room_bound=64, process_bound=8, rate_window=0.1)
    # A busy wedding spreads 30 updates over three documents (10 each); a quiet one sends 4
    # to its one document: per room the quiet one is not the slowest, per wedding it is.
    for doc in ("guests", "timeline", "budget"):
        for _ in range(10):
            backlog.added(f"busy/{doc}")
    for _ in range(4):
        backlog.added("quiet/guests")
    await _next_window(backlog)
    # The last window's mean is (30 + 4) / 2 = 17 per wedding: quiet is at most 8.5.
    assert backlog.quiet("quiet/guests") and backlog.quiet("quiet/timeline")
    assert not backlog.quiet("busy/budget")
    # One that bursts in the current window stops being quiet at once.
    for _ in range(9):
        backlog.added("quiet/guests")
    assert not backlog.quiet("quiet/guests")
    # A wedding that accepted nothing is quiet; so is everyone after an idle window.
    assert backlog.quiet("other/guests")
    await _next_window(backlog)
    await _next_window(backlog)
    assert backlog.quiet("busy/guests")


async def test_after_a_window_of_one_wedding_alone_the_current_window_is_the_measure() -> None:
    """The calm before a burst: the quiet wedding was the only one sending. Measured by
    that window's mean (its own rate) it would be busy until the next window; the current
    window, in which three others send more, shows it quiet at once."""
    backlog = Backlog(room_bound=64, process_bound=8, rate_window=0.1)
    for _ in range(10):
        backlog.added("quiet/guests")
    await _next_window(backlog)
    assert backlog.quiet("quiet/guests")  # alone in both windows: nothing to compare with
    backlog.added("quiet/guests")
    for wedding in ("a", "b", "c"):
        for _ in range(6):
            backlog.added(f"{wedding}/guests")
    # The current window's mean is (1 + 18) / 4 = 4.75 per wedding: quiet is at most 2.4.
    assert backlog.quiet("quiet/guests")
    assert not backlog.quiet("a/guests")


async def test_past_the_process_bound_a_quiet_weddings_room_keeps_only_its_own_bound() -> None:
    backlog = Backlog(room_bound=6, process_bound=8, rate_window=0.1)
    for _ in range(40):
        backlog.added("busy/guests")
    backlog.added("quiet/guests")
    await _next_window(backlog)
    backlog.removed("busy/guests", 40)
    backlog.removed("quiet/guests", 1)
    # Now, in a new window: the busy room holds 8 (the process's bound), the quiet one 4.
    for _ in range(8):
        backlog.added("busy/guests")
    for _ in range(4):
        backlog.added("quiet/guests")
    # The fair share is 8 // 2 = 4: the busy room is over it; the quiet one, which has 4,
    # is not paused by the process bound, and its commits go ahead of the busy one's.
    assert backlog.over("busy/guests") and not backlog.over("quiet/guests")
    assert backlog.ahead("quiet/guests") and not backlog.ahead("busy/guests")
    # Its own bound still holds.
    for _ in range(2):
        backlog.added("quiet/guests")
    assert backlog.over("quiet/guests")
    # Held back by it, the wedding is busy for a while, like one held back by its share.
    backlog.removed("busy/guests", 8)
    backlog.removed("quiet/guests", 6)
    backlog.added("quiet/guests")
    assert not backlog.ahead("quiet/guests") and not backlog.ahead("busy/guests")


async def test_commits_go_ahead_only_while_the_others_hold_a_sixteenth_of_the_bound() -> None:
    backlog = Backlog(room_bound=64, process_bound=64, rate_window=0.1)
    for _ in range(3):
        backlog.added("busy/guests")
    backlog.added("quiet/guests")
    # The others hold three of 64: each commit shares the transaction (the sustainable
    # rate's case; a room alone with a backlog never goes ahead).
    assert backlog.quiet("quiet/guests") and not backlog.ahead("quiet/guests")
    backlog.added("busy/guests")
    assert backlog.ahead("quiet/guests")


async def test_a_wedding_held_back_is_busy_for_the_next_windows_whatever_it_accepts() -> None:
    """At 8x a busy room's writers wait for its long commits and its wedding accepts nothing
    for a window or two: by rate alone it would be quiet, and its commits would go ahead."""
    backlog = Backlog(room_bound=64, process_bound=8, rate_window=0.1)
    for wedding, count in (("busy", 6), ("other", 6), ("quiet", 1)):
        for _ in range(count):
            backlog.added(f"{wedding}/guests")
    await _next_window(backlog)
    assert not backlog.quiet("busy/timeline")
    # Past the process bound, over its fair share: held back, and so busy...
    assert backlog.over("busy/guests") and not backlog.over("quiet/guests")
    backlog.removed("busy/guests", 6)
    backlog.removed("other/guests", 6)
    await _next_window(backlog)
    # ...in the next window, though it accepted nothing in it (another one that accepted
    # as much and was never held back is quiet)...
    assert not backlog.quiet("busy/budget") and backlog.quiet("other/guests")
    await _next_window(backlog)
    # ...and no longer once PUSHED_WINDOWS windows' time has passed without it held back.
    assert backlog.quiet("busy/guests")
    assert not backlog._pushed  # forgotten, not kept for every wedding ever held back


async def test_a_paused_writer_resumes_once_what_its_room_held_is_committed() -> None:
    """The room's other writers keep it over its bound; a writer paused first resumes once
    the updates the room held when it paused are committed, not after the pause limit."""
    backlog = Backlog(room_bound=3, pause_limit=5.0)
    for _ in range(3):
        backlog.added("a")
    first = asyncio.ensure_future(backlog.pause("a"))
    await asyncio.sleep(0)
    later = None
    for step in range(3):
        backlog.added("a")  # another writer's update, let in before the pause
        backlog.removed("a", 1)
        if step == 0:
            later = asyncio.ensure_future(backlog.pause("a"))
            await asyncio.sleep(0)
        assert backlog.over("a")
    await asyncio.sleep(0)
    assert first.done() and first.result() is True  # the three it waited for are committed
    assert later is not None and not later.done()  # it waits for the four held at its pause
    backlog.added("a")
    backlog.removed("a", 1)
    assert await asyncio.wait_for(later, 1) is True
    assert not backlog._waiters and not backlog._drained  # nothing kept for the room
