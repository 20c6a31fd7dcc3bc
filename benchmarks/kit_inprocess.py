"""The testing kit's in-process mode: how long the examples' offline-RSVP property test
(``examples/test_offline_app.py``, through the ``crdt_inprocess`` fixture's kit) takes for
N hypothesis examples. Its body runs unchanged under ``@given`` with the same strategy;
only the number of examples differs (and no example database, no shrinking: every example
passes). The goal: 1,000 examples under 10 s.

    .venv/bin/python -m benchmarks.kit_inprocess                  # 1,000 examples, 1 run
    .venv/bin/python -m benchmarks.kit_inprocess --examples 200 --runs 3
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

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


def load_example_body() -> object:
    """The example test's function as written, without its ``@given``/``@settings``."""
    spec = importlib.util.spec_from_file_location("test_offline_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.test_offline_rsvps_converge.hypothesis.inner_test


def run_once(examples: int) -> float:
    """Seconds for ``examples`` examples, kit setup and teardown included."""
    body = load_example_body()
    script = strategies.interleavings(clients=3, operations=strategies.operations("guests"))
    test = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )(given(script=script)(body))
    start = time.perf_counter()
    kit = InProcess()
    try:
        test(crdt_inprocess=kit)
    finally:
        kit.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="hypothesis examples")
    parser.add_argument("--runs", type=int, default=1, help="repetitions")
    args = parser.parse_args()
    for _ in range(args.runs):
        seconds = run_once(args.examples)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"{args.examples} examples: {seconds:.2f} s "
            f"({1000 * seconds / args.examples:.1f} ms each; load average {load}, "
            f"{os.cpu_count()} CPUs)",
            flush=True,
        )


if __name__ == "__main__":
    main()
