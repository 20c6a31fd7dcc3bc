"""The testing kit (crdt_server.testing) works as its users will use it: through the pytest
plugin's fixtures, both client modes, the strategies and the assertions."""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map
from websockets.exceptions import InvalidStatus

from crdt_server.codec.protocol import encode_update
from crdt_server.documents import DOCUMENT_KINDS, OPERATIONS, apply_operation, seed
from crdt_server.testing import (
    Flush,
    GoOffline,
    Operate,
    Reconnect,
    assert_converged,
    assert_invariants,
    document_json,
    play,
)
from crdt_server.testing.fixtures import ClientPool, InProcess
from crdt_server.testing.inprocess import InProcessServer, copy_of
from crdt_server.testing.strategies import (
    BASE_PLAN,
    hostile_updates,
    interleavings,
    operations,
    out_of_order,
    update_sequences,
)
from crdt_server.testing.tokens import TokenMinter
from tests.project.test_examples import EXAMPLES, fresh_copy

HEAVY = ("pycrdt", "starlette", "uvicorn", "websockets", "hypothesis", "redis", "aiosqlite")
DOCUMENTED_REFUSALS = {1003, 1007, 1008, 1009}


def test_the_plugin_is_registered_and_loads_nothing_heavy() -> None:
    code = (
        "import sys, importlib.metadata as md\n"
        "eps = [e for e in md.entry_points(group='pytest11') if e.name == 'crdt_server']\n"
        "assert [e.value for e in eps] == ['crdt_server.testing.plugin'], eps\n"
        "eps[0].load()\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# -- in-process mode ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=interleavings(clients=3))
def test_in_process_clients_converge_with_the_room(
    crdt_inprocess: InProcess, script: list[Any]
) -> None:
    async def main(server: InProcessServer) -> None:
        clients = [await server.client() for _ in range(3)]
        await play(script, clients)
        assert_converged(*clients, copy_of(server.room().doc))
        await server.stop()
        assert_converged(clients[0], await server.stored_doc())

    crdt_inprocess.run(main)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=interleavings(clients=3, operations=operations("seating")))
def test_wedding_operations_converge_and_conflicts_are_reported_alike(
    crdt_inprocess: InProcess, script: list[Any]
) -> None:
    plan = [op for op in BASE_PLAN if OPERATIONS[op["op"]] == "seating"]
    clients = crdt_inprocess.play(script, room="w1/seating", setup=plan)
    assert_converged(*clients)
    reports = []
    for client in clients:
        try:
            assert_invariants({"seating": client})
            reports.append("")
        except AssertionError as exc:
            reports.append(str(exc))
    assert len(set(reports)) == 1, reports


@settings(max_examples=80, deadline=None)
@given(data=st.data(), updates=update_sequences(min_size=2))
def test_updates_out_of_order_end_in_the_same_document(
    crdt_inprocess: InProcess, data: st.DataObject, updates: list[bytes]
) -> None:
    order = data.draw(out_of_order(updates))
    expected: Doc[Any] = Doc()
    for update in updates:
        expected.apply_update(update)

    async def main(server: InProcessServer) -> None:
        sender = await server.client()
        for update in order:
            await sender.send_raw(encode_update(update))
        await server.sync()
        reader = await server.client()
        assert_converged(reader, expected)
        assert not server.room().has_pending_content()

    crdt_inprocess.run(main)


# Derandomized: the damaged updates this found are pinned below as strict xfails; CI runs
# the same examples every time (run with --hypothesis-seed=random to hunt for more).
@settings(max_examples=80, deadline=None, derandomize=True)
@given(frames=st.lists(hostile_updates(), min_size=1, max_size=4))
def test_hostile_updates_change_nothing_or_apply_cleanly(
    crdt_inprocess: InProcess, frames: list[bytes]
) -> None:
    async def main(server: InProcessServer) -> None:
        server.allowed_closes |= DOCUMENTED_REFUSALS
        writer = await server.client()
        writer.doc.get("m", type=Map)["k"] = "before"
        await writer.flush()
        await server.sync()
        attacker = await server.client()
        for frame in frames:
            await attacker.send_raw(encode_update(frame))
            await server.sync()
        # Whatever the attacker did, nothing crashed (settle re-raises a session's
        # exception, and every close carried a documented code), the earlier edit is intact
        # and what the store holds is what the room holds.
        room = copy_of(server.room().doc)
        pending = server.room().has_pending_content()
        assert room.get("m", type=Map).get("k") == "before"
        await server.stop()
        if not pending:  # pending content is kept in the store, not yet in the document
            assert_converged(await server.stored_doc(), room)

    crdt_inprocess.run(main)


# Found by the test above: a damaged update the room accepts leaves it holding content
# that a client joining afterwards does not end up with (not yet diagnosed: the room's step 2
# or the pycrdt client's pending handling).
DAMAGED_UPDATES = [
    b"\x01\x02\x92!\x00(\x01\x01m\x01a\x01|\x00\x00\x00\x00\x08\x00\x01a\x01~\x00",
    b"\x01\x02\x93!\x00!\x01\x01m\x01a\x01\xa8\x92!\x00\x01~\x01\x92!\x01\x00\x01",
]


# And one the room used to hold and relay, which then failed to decode at the other clients
# ("Cannot decode update: JSON parsing error"): yrs decodes a whole update before holding
# any of it, so the room now refuses (1007) what it cannot decode instead of holding it.
UNDECODABLE_RELAYED = (
    b"\x01\x03\x92!\x00!\x01\x01m\x01a\x01\xa8\x92!\x00\x01|\x00\x00\x00\x00\xe6\x00\x00\x04"
    b"\x01\x01t\x01a\x01\x92!\x01\x00\x01"
)


def test_every_client_can_decode_what_the_room_relays(crdt_inprocess: InProcess) -> None:
    async def main(server: InProcessServer) -> None:
        server.allowed_closes |= DOCUMENTED_REFUSALS
        bystander = await server.client()  # processes whatever the room relays
        attacker = await server.client()
        await attacker.send_raw(encode_update(UNDECODABLE_RELAYED))
        await server.sync()
        assert 1007 in server.closed_with
        assert not server.room().document.held
        bystander.doc.get("m", type=Map)["k"] = "still works"
        await bystander.flush()
        await server.sync()
        assert copy_of(server.room().doc).get("m", type=Map).get("k") == "still works"

    crdt_inprocess.run(main)


@pytest.mark.parametrize("frame", DAMAGED_UPDATES)
def test_a_joiner_gets_what_the_room_holds_after_a_damaged_update(
    crdt_inprocess: InProcess, frame: bytes
) -> None:
    async def main(server: InProcessServer) -> None:
        server.allowed_closes |= DOCUMENTED_REFUSALS
        attacker = await server.client()
        await attacker.send_raw(encode_update(frame))
        await server.sync()
        reader = await server.client()
        assert_converged(reader, copy_of(server.room().doc))

    crdt_inprocess.run(main)


# -- assertions -----------------------------------------------------------------------------


def _wedding() -> dict[str, Doc[Any]]:
    docs: dict[str, Doc[Any]] = {kind: Doc() for kind in DOCUMENT_KINDS}
    for kind, doc in docs.items():
        seed(doc, kind, "w1")
    return docs


def _run(docs: dict[str, Doc[Any]], **op: Any) -> None:
    kind = OPERATIONS[op["op"]]
    apply_operation(docs[kind], kind, op, related=docs)


def test_assert_invariants_shows_the_conflicting_entities() -> None:
    one, two = _wedding(), _wedding()
    for docs in (one, two):
        _run(docs, op="add_table", table_id="t1", name="Rose", capacity=1)
    _run(one, op="add_guest", guest_id="g1", name="Ann Lee", rsvp="accepted")
    _run(one, op="add_guest", guest_id="g2", name="Bob Ray", rsvp="accepted")
    for kind in DOCUMENT_KINDS:
        two[kind].apply_update(one[kind].get_update())
    # Two people each fill the last seat of table Rose, offline.
    _run(one, op="assign_seat", guest_id="g1", table_id="t1")
    _run(two, op="assign_seat", guest_id="g2", table_id="t1")
    for kind in DOCUMENT_KINDS:
        one[kind].apply_update(two[kind].get_update())
    with pytest.raises(AssertionError) as info:
        assert_invariants(one)
    message = str(info.value)
    assert "seating.table_over_capacity" in message
    assert "Table 'Rose' has 2 guests but seats 1." in message
    assert (
        'seating/tables/t1 = {"capacity": 1, "name": "Rose", "notes": "", "position": null,'
        ' "shape": "round"}' in message
    )
    assert_invariants(one, allow={"seating.table_over_capacity"})


def test_assert_converged_names_the_client_that_differs() -> None:
    a, b = Doc(), Doc()
    a.get("m", type=Map)["x"] = 1
    b.apply_update(a.get_update())
    assert_converged(a, b)
    b.get("m", type=Map)["x"] = 2
    with pytest.raises(AssertionError, match=r'(?s)client 1 differs .*"x": 1\b.*"x": 2\b'):
        assert_converged(a, b)


# -- real servers through the plugin's fixtures ---------------------------------------------

ANN = {"op": "add_guest", "guest_id": "g1", "name": "Ann Lee"}
OFFLINE_SCRIPT = [
    GoOffline(1),
    Operate(1, {"op": "set_rsvp", "guest_id": "g1", "rsvp": "accepted"}),
    Operate(0, {"op": "update_guest", "guest_id": "g1", "meal": "fish"}),
    Flush(0),
    Reconnect(1),
]


@pytest.mark.asyncio
async def test_socket_clients_go_offline_and_come_back(crdt_clients: ClientPool) -> None:
    async with crdt_clients:
        clients = [await crdt_clients.connect("w1/guests") for _ in range(2)]
        await play([Operate(0, ANN)], clients)  # both know Ann before one goes offline
        await play(OFFLINE_SCRIPT, clients)
        assert_converged(*clients)
        guest = document_json(clients[0])["guests"]["g1"]
        assert (guest["rsvp"], guest["meal"]) == ("accepted", "fish")


def test_the_same_script_gives_the_same_document_in_process(crdt_inprocess: InProcess) -> None:
    clients = crdt_inprocess.play(OFFLINE_SCRIPT, clients=2, setup=[ANN])
    guest = document_json(clients[1])["guests"]["g1"]
    assert (guest["rsvp"], guest["meal"]) == ("accepted", "fish")


ROOMS = ["w1/guests", "w1/seating", "w2/guests"]


@pytest.fixture(scope="module")
def own_kit() -> Any:
    kit = InProcess()
    try:
        yield kit
    finally:
        kit.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rooms=st.lists(st.sampled_from(ROOMS), min_size=1, max_size=3),
    stop=st.booleans(),
    fail=st.booleans(),
)
def test_in_process_examples_are_isolated(
    own_kit: InProcess, rooms: list[str], stop: bool, fail: bool
) -> None:
    """Every play/run call starts from an empty server, whatever the previous example left:
    documents of any wedding, a stopped server, clients offline with unsent edits, or a
    failure (the server is then discarded)."""

    async def main(server: InProcessServer) -> None:
        # Nothing from earlier examples: no client, no loaded room, no stored document,
        # and client ids start at 1000 again (so a replayed example is the same run).
        assert server.running and not server.clients and not server.links
        assert not server.registry.rooms
        assert await server.store.list() == []
        assert server.closed_with == [] and server.restarts == 0
        for name in ROOMS:
            client = await server.client(name)
            assert client.doc.client_id == 1000 + ROOMS.index(name)
            assert dict(client.doc.get("m", type=Map)) == {}
        # Leave traces for the next example.
        for name in rooms:
            writer = await server.client(name)
            writer.doc.get("m", type=Map)["k"] = name
            await writer.flush()
            await server.sync()
            offline = await server.client(name)
            await offline.go_offline()
            offline.doc.get("m", type=Map)["unsent"] = 1
        if stop:
            await server.stop()
        if fail:
            raise LookupError("this example fails")

    started = own_kit.servers_started
    if fail:
        with pytest.raises(LookupError):
            own_kit.run(main)
    else:
        own_kit.run(main)
    # A server is started only for the first example and after a failed one; the others
    # reuse it.
    assert own_kit.servers_started == started + (not started or LAST_FAILED[0])
    LAST_FAILED[0] = fail


LAST_FAILED = [False]


def _mark(doc: Doc[Any], key: object) -> None:
    doc.get("m", type=Map)[str(key)] = 1


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(st.integers(0, 20), min_size=1, max_size=4), offline=st.booleans())
def test_in_process_play_sees_only_its_own_example(
    own_kit: InProcess, keys: list[int], offline: bool
) -> None:
    """What property tests use: every ``play`` ends with exactly its own edits."""
    script: list[Any] = [GoOffline(0)] if offline else []
    script += [Operate(k % 2, {"key": k}) for k in keys]
    clients = own_kit.play(script, clients=2, apply=lambda doc, op: _mark(doc, op["key"]))
    assert_converged(*clients)
    assert dict(clients[1].doc.get("m", type=Map)) == {str(k): 1 for k in keys}


@pytest.mark.asyncio
async def test_minted_tokens_open_a_server_that_refuses_anonymous_clients(
    crdt_server_factory: Any, crdt_token: TokenMinter
) -> None:
    server = crdt_server_factory(anonymous=False)
    async with ClientPool(server.ws_url, crdt_token) as pool:
        with pytest.raises(InvalidStatus) as info:  # refused at the upgrade
            await pool.connect("w1/guests")
        assert info.value.response.status_code == 401
        allowed = await pool.connect("w1/guests", token=crdt_token("ann", "couple", "w1"))
        assert allowed.synced.is_set()


# -- the extra on its own, as an app team installs it ----------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_testing_extra_alone_runs_the_documented_examples(tmp_path: Path) -> None:
    """A fresh venv with nothing but ``pip install crdt-server[testing]`` runs the property
    test and the async socket test of examples/ from an app's own directory (no tests/, no
    pyproject of ours): every package the kit and its documented use need is in the extra."""
    source, app, venv = tmp_path / "crdt-server", tmp_path / "app", tmp_path / "venv"
    fresh_copy(source)
    app.mkdir()
    for example in sorted(EXAMPLES.glob("test_*.py")):
        shutil.copy2(example, app / example.name)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", f"{source}[testing]"],
        capture_output=True, text=True, timeout=450,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    run = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(app)],
        cwd=app, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"{len(list(app.glob('test_*.py')))} passed" in run.stdout, run.stdout


def test_content_reads_a_map_root_holding_xml_as_the_json_view_does() -> None:
    """Found by hypothesis in the shape readers' test: a map root whose entry is an XML
    element (a stored shape any client may write) made ``content`` raise, as pycrdt's
    ``to_py`` refuses XML; the kit reads it as the JSON view does, which never raises."""
    from pycrdt import XmlElement, XmlFragment

    from crdt_server.testing.edits import content

    doc: Doc[Any] = Doc()
    fragment = doc.get("m", type=Map)
    fragment["x"] = XmlFragment([XmlElement("p", {"class": "note"})])
    fragment["n"] = 2.0
    read = content(doc)
    assert read["m"]["n"] == 2
    assert read["m"]["x"] is not None
    assert read["a"] == [] and read["t"] == ""


@pytest.mark.timeout(60)
def test_a_forked_child_leaves_the_kits_loop_and_server_to_its_parent() -> None:
    """A child forked from a process whose kit has its loop (as tests that fork a reader
    to time it out do) runs the kit's exit hook as it ends (``threading._shutdown``): the
    hook must not close the parent's loop or server from the child. It did, and the two
    share the epoll instance and the data directory: the loop lost its self-pipe (the
    parent's ``close`` then waited forever for the executor's shutdown) and the child
    deleted the server's files."""
    kit = InProcess()
    try:

        async def directory(server: InProcessServer) -> Path:
            assert kit._directory is not None
            return kit._directory

        kept = kit.run(directory)
        context = multiprocessing.get_context("fork")
        child = context.Process(target=lambda: None)
        child.start()
        child.join(30)
        assert child.exitcode == 0
        assert kept.is_dir(), "the child deleted the parent's server's files"

        async def through_the_executor(server: InProcessServer) -> int:
            # Its answer reaches the loop by the self-pipe the child must leave registered.
            await asyncio.get_running_loop().run_in_executor(None, lambda: None)
            return 1

        assert kit.run(through_the_executor) == 1
    finally:
        kit.close()  # hung here, on the executor's shutdown (the test's timeout says so)
