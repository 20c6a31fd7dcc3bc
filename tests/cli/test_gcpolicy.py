"""The server's garbage-collector policy (crdt_server/gcpolicy.py), each case in a fresh
interpreter: it changes the whole process's collector, which this one must keep."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(60)

PRELUDE = """
import gc, weakref
from crdt_server.gcpolicy import SurvivorFreezer

now = [0.0]
freezer = SurvivorFreezer(full_every=60.0, clock=lambda: now[0])
freezer.install()

class Node:
    def __init__(self):
        self.other = None

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a
"""


def run(body: str) -> None:
    script = PRELUDE + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50, check=False
    )
    assert done.returncode == 0, done.stderr


def test_survivors_of_two_collections_are_frozen_out_of_later_ones() -> None:
    run("""
        before = gc.get_freeze_count()
        kept = [cycle() for _ in range(1000)]
        plain = Node()
        plain.other = Node()
        gc.collect(1)  # survivors of a collection of generation 1 are frozen at once
        assert gc.get_freeze_count() >= before + 2000, (before, gc.get_freeze_count())
        assert not gc.get_objects(2)
        # Young cyclic garbage is still collected young.
        probe = weakref.ref(cycle())
        gc.collect(1)
        assert probe() is None
        # Frozen objects are still freed by reference counting.
        ref = weakref.ref(plain.other)
        del plain
        assert ref() is None
    """)


def test_cyclic_garbage_among_frozen_objects_waits_for_the_periodic_full_collection() -> None:
    run("""
        old = cycle()
        gc.collect(1)  # frozen
        probe = weakref.ref(old)
        del old  # now cyclic garbage among frozen objects
        gc.collect()
        assert probe() is not None  # a collection does not walk frozen objects
        now[0] = 61.0  # the period is over: the next collection thaws
        gc.collect(1)
        assert gc.get_freeze_count() == 0
        assert freezer.full_collections == 0
        gc.collect()  # CPython's next full collection walks everything once
        assert probe() is None
        assert freezer.full_collections == 1
        assert gc.get_freeze_count() > 0  # and freezing has resumed
        young = weakref.ref(cycle())
        kept = cycle()
        gc.collect(1)
        assert young() is None and gc.get_freeze_count() > 0
    """)


def test_uninstalled_the_collector_is_cpythons_again() -> None:
    run("""
        freezer.uninstall()
        assert gc.get_freeze_count() == 0
        old = cycle()
        gc.collect(1)
        probe = weakref.ref(old)
        del old
        gc.collect()
        assert probe() is None and gc.get_freeze_count() == 0
    """)
