"""What pycrdt 0.14.13 (yrs 0.28) does that the server no longer trusts (issue 47).

Each test is a minimal pycrdt-only reproduction, ready to report upstream, kept as a strict
xfail: when pycrdt fixes it, the test passes, the xfail fails, and the server's guard can
be revisited. A reproduction that hangs runs in a child process with a deadline and xfails
on the timeout: pytest-timeout cannot interrupt code that never returns to Python.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pycrdt import Array, Doc, XmlFragment

from tests.hostile_shapes import gc, item, update

_HANG = """
from pycrdt import Array, Doc, Map

def uint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

def s(x):
    b = x.encode()
    return uint(len(b)) + b

d = Doc()
g = d.get("guests", type=Map)
with d.transaction():
    g["g1"] = Map({"tags": Array([1])})
# One item of client 777: string content (ref 4) whose parent is the nested Y.Array
# (client d.client_id, clock 1). yjs 13.6 applies it and reads the array as its UTF-16
# units: [1, "a", "\\ud83d", "\\ude00"].
hostile = (
    uint(1) + uint(1) + uint(777) + uint(0) + bytes([4])
    + uint(0) + uint(d.client_id) + uint(1) + s("a\\U0001F600") + uint(0)
)
d.apply_update(hostile)
print(g.to_py())
"""


@pytest.mark.timeout(60)
@pytest.mark.xfail(
    reason="pycrdt 0.14.13: reading a Y.Array holding a string with an astral character"
    " never returns (it is iterated by a UTF-16 count)",
    raises=subprocess.TimeoutExpired,
    strict=True,
)
def test_pycrdt_reads_an_array_holding_a_string_with_an_emoji() -> None:
    """Also ``str(array)`` (yrs' own ``to_json``) and ``array[2]``: every read past the
    string spins at 100 % CPU and ignores SIGTERM."""
    # A fixed pycrdt prints within a few tenths of a second (a Python start and one read);
    # the hang spins a core for the whole deadline, so it is kept short.
    done = subprocess.run(
        [sys.executable, "-c", _HANG], capture_output=True, text=True, timeout=4, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "tags" in done.stdout


@pytest.mark.timeout(10)
@pytest.mark.xfail(
    reason="pycrdt 0.14.13: an item whose origin is garbage collected is integrated by its"
    " right origin; yjs 13 drops it, so the replicas differ",
    strict=True,
)
def test_pycrdt_drops_an_item_whose_origin_is_collected_as_yjs_does() -> None:
    doc: Doc[Any] = Doc(client_id=1)
    values = doc.get("a", type=Array)
    with doc.transaction():
        values.append(1)
    # Client 777: a GC struct (clock 0), then "ab" with that GC as its origin and the
    # array's value as its right origin. yjs 13.6 applies it and still shows [1].
    doc.apply_update(update([gc(1), item(4, "ab", origin=(777, 0), right=(1, 0))]))
    assert values.to_py() == [1.0]


@pytest.mark.timeout(10)
@pytest.mark.xfail(
    reason="pycrdt 0.14.13: len() of an XML fragment's children counts string content in"
    " UTF-16 units, while iterating them yields none of it",
    strict=True,
)
def test_pycrdt_counts_xml_children_as_it_iterates_them() -> None:
    """@y/y 14 writes text into its Y.Types, which travel as XML fragments."""
    doc: Doc[Any] = Doc()
    doc.apply_update(update([item(4, "a\U0001f600", parent="f")]))
    fragment = doc.get("f", type=XmlFragment)
    assert len(fragment.children) == len(list(fragment.children))


_DEEP = """
from pycrdt import Doc, Map

doc = Doc()
inner = doc.get("guests", type=Map)
with doc.transaction():
    for _ in range(30_000):
        inner["c"] = Map()
        inner = inner["c"]
# yrs' own JSON rendering (what str() of a map runs) recurses once per level on the native
# stack: 30,000 nested maps (about 450 KB of update, any writer of the map can send it) end
# the process with SIGSEGV instead of raising.
print(len(str(doc.get("guests", type=Map))))
"""


@pytest.mark.timeout(60)
@pytest.mark.xfail(
    reason="pycrdt 0.14.13: rendering maps nested 30,000 deep as JSON overflows the native"
    " stack (SIGSEGV) instead of raising",
    strict=True,
)
def test_pycrdt_renders_deeply_nested_maps_without_crashing() -> None:
    """The guest CSV read this way before issue 47 (a 500 at 3,000 levels through
    ``to_py``'s RecursionError, a crash of the whole server at 30,000): the server's
    readers now walk entries iteratively with a bounded depth (``documents.shapes.to_plain``,
    ``documents.schema.read_guests``)."""
    done = subprocess.run(
        [sys.executable, "-c", _DEEP], capture_output=True, text=True, timeout=45, check=False
    )
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-500:]}"
