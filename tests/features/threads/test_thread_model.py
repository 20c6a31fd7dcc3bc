"""The thread feature's pure rules: who is notified of a message and why, how mentions are
read, and the LIKE patterns that must match text as is."""

from __future__ import annotations

import re
import time

from crdt_server.actor import Actor
from crdt_server.features.people.domain import Member
from crdt_server.features.threads.domain import (
    MAX_MENTIONS,
    mentions_in,
    plain_mentions,
    read_mentions,
    recipients,
    unnotified_mentions,
    who_sees,
)
from crdt_server.features.threads.tables import contains_pattern

MEMBERS = {
    m.sub: m
    for m in (
        Member("pat", "planner", "Pat", "pat@example.com"),
        Member("cam", "couple", "Cam", None, participation="none"),
        Member("flo", "vendor", "Flo", None),
        Member("dj", "vendor", "DJ", None),
        Member("quiet", "family", "Q", None, participation="mentions"),
        Member("a.b", "friend", "AB", None),
    )
}
FLO = Actor("flo", "vendor")


def test_mentions_name_members_once_and_drop_a_trailing_full_stop() -> None:
    body = "Thanks @pat. And @cam, @cam again; @nobody, email@dj.com, @a.b."
    assert mentions_in(body, MEMBERS) == ["pat", "cam", "a.b"]


def test_each_recipient_gets_one_reason_the_strongest_and_never_the_author() -> None:
    participants = ["pat", "flo", "quiet"]
    got = recipients(FLO, participants, MEMBERS, ["quiet", "dj"], "pat", "normal")
    # quiet is mentioned (despite "mentions" only); dj cannot see the thread: nothing;
    # pat replied to; cam (couple, not in it, "none") gets nothing for a normal message.
    assert got == {"pat": "reply", "quiet": "mention"}
    plain = recipients(FLO, participants, MEMBERS, [], None, "normal")
    assert plain == {"pat": "message"}  # quiet takes mentions only
    urgent = recipients(FLO, participants, MEMBERS, [], None, "urgent")
    assert urgent == {"pat": "urgent", "cam": "urgent"}
    assert "flo" not in recipients(FLO, participants, MEMBERS, ["flo"], "flo", "emergency")


def test_only_who_sees_the_thread_is_notified_and_the_rest_of_the_mentions_are_reported() -> None:
    def reads(member: Member) -> frozenset[str]:
        return frozenset({"timeline"} if member.role == "vendor" else {"timeline", "budget"})

    participants = ["pat", "flo", "gone"]  # "gone": no longer in the directory
    assert who_sees(participants, MEMBERS, ()) == {"pat", "flo", "cam", "gone"}
    # Anchored to the budget: the vendor participant (and an unknown role) may not see it.
    budget = who_sees(participants, MEMBERS, {"budget"}, reads)
    assert budget == {"pat", "cam"}
    got = recipients(FLO, participants, MEMBERS, ["flo", "dj", "cam"], None, "urgent", budget)
    assert got == {"pat": "urgent", "cam": "mention"}
    assert unnotified_mentions("pat", ["pat", "flo", "dj", "cam"], MEMBERS, budget) == [
        {"sub": "flo", "reason": "cannot_see_thread"},
        {"sub": "dj", "reason": "cannot_see_thread"},
    ]
    # With an empty directory any @name is a mention: reported as no member.
    assert unnotified_mentions("pat", ["zed"], {}, {"pat"}) == [
        {"sub": "zed", "reason": "not_a_member"}
    ]


def test_contains_patterns_match_wildcards_literally() -> None:
    def like(pattern: str, value: str) -> bool:
        # LIKE ... ESCAPE '!' as SQLite and PostgreSQL read it.
        regex, i = "", 0
        while i < len(pattern):
            c = pattern[i]
            if c == "!":
                regex += re.escape(pattern[i + 1])
                i += 2
                continue
            regex += ".*" if c == "%" else "." if c == "_" else re.escape(c)
            i += 1
        return re.fullmatch(regex, value, re.S) is not None

    assert like(contains_pattern('"g_1"'), '[{"id": "g_1"}]')
    assert not like(contains_pattern('"g_1"'), '[{"id": "gx1"}]')
    assert like(contains_pattern("100%!"), "at 100%!")
    assert not like(contains_pattern("100%!"), "at 1000!")


NAMED = {
    m.sub: m
    for m in (
        Member("p1", "planner", "Priya", None),
        Member("p2", "couple", "Priya Shah", None),
        Member("s1", "family", "Sam Lee", None),
        Member("s2", "friend", "sam lee", None),
        Member("cam", "couple", "Cam", None),
    )
}


def test_a_display_name_is_the_longest_case_insensitive_match_and_a_shared_name_is_neither() -> (
    None
):
    body = "@priya shah and @Priya, ask @Sam Lee; @[Cam](cam) too. @priyanka is nobody."
    mentions, unresolved = read_mentions(body, NAMED)
    # "@priya shah" is Priya Shah (the longest match), "@Priya," is Priya, the link names
    # cam by its sub; "Sam Lee" is two members' name: neither, reported; "@priyanka" does
    # not end at a word boundary after "Priya": no mention.
    assert mentions == ["p2", "p1", "cam"]
    assert unresolved == [{"name": "Sam Lee", "reason": "ambiguous_name"}]
    assert mentions_in(body, NAMED) == mentions
    # The composer's link decides by its sub, whatever its text says; a link to a sub that
    # is no member mentions nobody, and comes back (its name as written, and its sub).
    assert read_mentions("@[Someone else](p1)", NAMED) == (["p1"], [])
    assert read_mentions("@[Ghost](zed)", NAMED) == (
        [],
        [{"name": "Ghost", "sub": "zed", "reason": "unknown_member"}],
    )


def test_a_plain_name_that_names_nobody_comes_back_only_when_it_looks_like_a_name() -> None:
    body = (
        "@Ghost, can you ask @shah and @sam? Mail ann@example.com, I'm @home, meet @ 5pm,"
        " @ghost.busters and @Ghost. again; @Zoë too, @priyanka, @ÉMILE."
    )
    mentions, unresolved = read_mentions(body, NAMED)
    # Reported, once each: a capitalised word ("@Ghost", "@Zoë", "@ÉMILE"), or a word of a
    # member's name ("@shah" of Priya Shah, "@sam" of Sam Lee). Text, not reported: an
    # address, "@home", "@ 5pm", a lower-case word that begins no member's name.
    assert mentions == []
    assert unresolved == [
        {"name": "Ghost", "reason": "unknown_member"},
        {"name": "shah", "reason": "unknown_member"},
        {"name": "sam", "reason": "unknown_member"},
        {"name": "Zoë", "reason": "unknown_member"},
        {"name": "ÉMILE", "reason": "unknown_member"},
    ]
    # With an empty directory every ``@name`` is a mention by sub (reported as
    # not_a_member by unnotified_mentions), never an unknown name.
    assert read_mentions("@Ghost and @[Ghost](zed)", {}) == (["Ghost", "zed"], [])
    # Emails and digests show a link as its name.
    assert plain_mentions("Hi @[Priya Shah](p2), see @[Cam](cam).") == "Hi @Priya Shah, see @Cam."


def test_reading_mentions_costs_a_bounded_amount_on_a_hostile_body() -> None:
    """8 KiB of mentions against 2,000 members of 190 name lengths: the first MAX_MENTIONS
    ``@`` are read, each against each distinct length."""
    members = {
        f"m{i}": Member(f"m{i}", "friend", "x" * (1 + i % 190) + str(i), None) for i in range(2000)
    }
    body = "@x " * 2700
    started = time.process_time()
    for _ in range(20):
        read_mentions(body, members)
    assert (time.process_time() - started) / 20 < 0.05
    assert MAX_MENTIONS == 50
