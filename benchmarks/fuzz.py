"""Mutation fuzzing of the full per-frame path at scale (the quick test's big sibling).

A real RoomRegistry over a real SqliteStore (in a temporary directory unless --data-dir),
connections served by serve_connection over memory_pair, seed frames built from real pycrdt
documents and mutated (see tests/fuzz/corpus.py for the corpus, the mutations and every
invariant checked). The fuzzer runs in a child process (``python -m tests.fuzz.corpus``) that
logs every frame before sending it, so a native crash (pycrdt is Rust; a SIGSEGV cannot be
caught in Python) is reported with the frame that caused it and the room's history, which
is saved to --crash-file. Prints a progress line every --report-every frames, then the
report; exits 1 if the child crashed or any invariant was violated (an escaped exception, an
undocumented close, a rejected frame that changed the document, the store or others'
presence, a hang, a memory spike, a room never freed, ...).

    .venv/bin/python benchmarks/fuzz.py --frames 100000 --seed 1

SIGINT/SIGTERM stop it early, with the report of the frames tried so far.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fuzz.corpus import FuzzConfig, IsolatedRun, run_isolated  # noqa: E402


def _forward_signals(child: subprocess.Popen[str]) -> None:
    def forward(signum: int, frame: Any) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)


def _save_crash(run: IsolatedRun, path: Path) -> None:
    last = run.last_frames()
    room = last[0].split()[0] if last else ""
    lines = [line for line in run.last_frames(10**9) if line.split()[:1] == [room]]
    path.write_text("\n".join(lines) + "\n")
    print(f"the {len(lines)} frames of {room} (the last one crashed it) are in {path}")
    print("each line: room, principal (reader = read-only), connection, [text] frame hex")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000, help="frames to send")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--report-every", type=int, default=10_000, help="progress interval")
    parser.add_argument(
        "--deadline", type=float, default=30.0, help="seconds before a frame counts as a hang"
    )
    parser.add_argument(
        "--room-frames", type=int, default=300, help="frames per room before a fresh one"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the store here")
    parser.add_argument(
        "--trace", type=Path, default=None, help="keep the log of every frame sent here"
    )
    parser.add_argument(
        "--crash-file",
        type=Path,
        default=Path("fuzz-crash.txt"),
        help="where the crashing room's frames go if the child dies",
    )
    parser.add_argument(
        "--dump", type=Path, default=None, help="write the final stats (and findings) as JSON"
    )
    parser.add_argument(
        "--timeout", type=float, default=7 * 24 * 3600.0, help="kill the child after this"
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    print(f"seed {seed}, {args.frames} frames", flush=True)

    with tempfile.TemporaryDirectory(prefix="crdt-fuzz-") as tmp:
        data_dir = args.data_dir if args.data_dir is not None else Path(tmp) / "data"
        config = FuzzConfig(
            frames=args.frames,
            seed=seed,
            data_dir=data_dir,
            report_every=args.report_every,
            room_frames=args.room_frames,
            frame_deadline=args.deadline,
            trace=args.trace if args.trace is not None else Path(tmp) / "trace.txt",
        )
        run = run_isolated(config, timeout=args.timeout, echo=print, popen_hook=_forward_signals)
        if run.crashed:
            tried = len(run.last_frames(10**9))
            print(f"CRASH after {tried} frames (crashes: 1)")
            print(run.crash_report())
            _save_crash(run, args.crash_file)
            print("RESULT: FAIL (the fuzzed server process crashed)")
            return 1

    stats = run.stats
    assert stats is not None
    print(stats["report"])
    if args.dump is not None:
        args.dump.write_text(json.dumps(stats, indent=1))
        print(f"stats written to {args.dump}")
    if stats["tried"] < args.frames:
        print(f"stopped early after {stats['tried']} of {args.frames} frames")
    failed = stats["violations"] > 0
    print("RESULT:", "FAIL" if failed else "OK", f"({stats['violations']} violations)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
