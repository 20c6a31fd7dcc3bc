"""The testing kit's in-process mode: how long the examples' offline-RSVP property test
(``examples/test_offline_app.py``, through the ``crdt_inprocess`` fixture's kit) takes for
N hypothesis examples, beside the floor: the same ``@given`` with the same strategy and an
empty body (what hypothesis itself costs to draw N scripts). The body runs unchanged; only
the number of examples differs (and no example database, no shrinking: every example
passes). Issue 21's goal: thousands of examples in seconds (2,000 in about 5 s).

Each figure is wall-clock time and the process's CPU time (``time.process_time``, every
thread): on a machine shared with other jobs the wall clock mostly measures the load, the
CPU time what the kit costs.

    .venv/bin/python -m benchmarks.kit_inprocess                  # 2,000 examples, 1 run
    .venv/bin/python -m benchmarks.kit_inprocess --examples 200 --runs 3
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* and tests.* are found from the root
    print(
        f"run it from {ROOT} as: .venv/bin/python -m benchmarks.kit_inprocess [options]",
        file=sys.stderr,
    )
    sys.exit(2)

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from crdt_server.testing import strategies  # noqa: E402
from crdt_server.testing.fixtures import InProcess  # noqa: E402

EXAMPLE = ROOT / "examples" / "test_offline_app.py"


def load_example_body() -> Callable[..., None]:
    """The example test's function as written, without its ``@given``/``@settings``."""
    spec = importlib.util.spec_from_file_location("test_offline_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    body: Callable[..., None] = module.test_offline_rsvps_converge.hypothesis.inner_test
    return body


def _given(examples: int, body: Callable[..., None]) -> Callable[..., None]:
    script = strategies.interleavings(clients=3, operations=strategies.operations("guests"))
    test: Callable[..., None] = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )(given(script=script)(body))
    return test


def run_once(examples: int) -> tuple[float, float]:
    """Wall and CPU seconds for ``examples`` examples, kit setup and teardown included."""
    test = _given(examples, load_example_body())
    wall, cpu = time.perf_counter(), time.process_time()
    kit = InProcess()
    try:
        test(crdt_inprocess=kit)
    finally:
        kit.close()
    return time.perf_counter() - wall, time.process_time() - cpu


def floor_once(examples: int) -> tuple[float, float]:
    """Wall and CPU seconds of the same ``@given`` with an empty body."""

    def empty(script: Any) -> None:
        pass

    test = _given(examples, empty)
    wall, cpu = time.perf_counter(), time.process_time()
    test()
    return time.perf_counter() - wall, time.process_time() - cpu


def _line(label: str, examples: int, wall: float, cpu: float) -> str:
    return (
        f"{label}: {examples} examples in {wall:.2f} s wall ({examples / wall:.0f}/s, "
        f"{1000 * wall / examples:.2f} ms each), {cpu:.2f} s CPU "
        f"({1000 * cpu / examples:.2f} ms each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="hypothesis examples")
    parser.add_argument("--runs", type=int, default=1, help="repetitions")
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the empty-body run of hypothesis alone"
    )
    args = parser.parse_args()
    for _ in range(args.runs):
        wall, cpu = run_once(args.examples)
        print(_line("in-process kit", args.examples, wall, cpu), flush=True)
        if not args.no_floor:
            wall, cpu = floor_once(args.examples)
            print(_line("floor (empty body)", args.examples, wall, cpu), flush=True)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"load average {load}, {os.cpu_count()} CPUs", flush=True)


if __name__ == "__main__":
    main()
