"""A property test of an app's own offline logic with the crdt-server testing kit.

The app's rule under test: a guest's RSVP set on a phone while offline is never lost, and
every phone ends with the same guest list once back online. Hypothesis draws the edits,
the offline periods and the reconnects; the kit's ``crdt_inprocess`` fixture (from the
pytest plugin) plays them against real rooms in memory, hundreds of runs in seconds.
Run it with ``pytest examples/test_offline_app.py`` after ``pip install crdt-server[testing]``.
"""

from hypothesis import given, settings

from crdt_server.documents import apply_operation
from crdt_server.testing import assert_converged, assert_invariants, strategies


def app_apply(doc, op):  # the app's own offline logic: refuse silently, as its UI would
    try:
        apply_operation(doc, "guests", op)
    except ValueError:
        pass


@settings(max_examples=50, deadline=None)
@given(script=strategies.interleavings(clients=3, operations=strategies.operations("guests")))
def test_offline_rsvps_converge(crdt_inprocess, script):
    phones = crdt_inprocess.play(script, room="w1/guests", apply=app_apply)
    assert_converged(*phones)
    assert_invariants({"guests": phones[0]})
