"""Mutation fuzzing of the full per-frame path at scale (the quick test's big sibling).

A real RoomRegistry over a real SqliteStore (in a temporary directory), connections served
by serve_connection over memory_pair, seed frames built from real pycrdt documents and
mutated (see tests/fuzz/corpus.py for the corpus, the mutations and every invariant
checked). The fuzzer runs in a child process (``python -m tests.fuzz.corpus``) that logs
every frame before sending it, so a native crash (pycrdt is Rust: a SIGSEGV cannot be caught
in Python) is counted and reported with the frame that caused it; the crashed room's frames
are saved (``fuzz-crash-<seed>.txt``) and, unless --stop-on-crash, a fresh child goes on with
the next seed until --frames frames were sent in all.

Prints a progress line every --report-every frames, then the totals: frames tried,
accepted, rejections by close code, crashes, escaped exceptions, rejected frames that
changed the document, every other invariant, the slowest frame, frames/s, peak RSS growth.
Exits 1 on any crash or violated invariant.

    .venv/bin/python -m benchmarks.fuzz --frames 100000 --seed 1

SIGINT/SIGTERM stop it early, with the totals of the frames tried so far.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* and tests.* are found from the root
    print(f"run it from {ROOT} as: .venv/bin/python -m benchmarks.fuzz [options]", file=sys.stderr)
    sys.exit(2)

from tests.fuzz.corpus import FuzzConfig, IsolatedRun, run_isolated  # noqa: E402

_SUMMED = (
    "accepted",
    "escaped",
    "changed_doc",
    "changed_store",
    "changed_awareness",
    "readonly_changed",
    "hangs",
    "bad_server_frames",
    "loop_errors",
    "sanity_checks",
    "sanity_failures",
    "rooms",
    "store_mismatches",
    "memory_spikes",
    "retired_rooms",
    "leaked_rooms",
    "lenient_json",
    "connections",
    "elapsed",
)
_stopping = False


def _forward_signals(child: subprocess.Popen[str]) -> None:
    def forward(signum: int, frame: Any) -> None:
        global _stopping
        _stopping = True
        if child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)


def _save_crash(run: IsolatedRun, path: Path) -> str:
    last = run.last_frames()
    room = last[0].split()[0] if last else ""
    lines = [line for line in run.last_frames(10**9) if line.split()[:1] == [room]]
    path.write_text("\n".join(lines) + "\n")
    return f"{len(lines)} frames of {room} (the last one crashed it) saved to {path}"


class Totals:
    """The counters of every child run, added up."""

    def __init__(self) -> None:
        self.tried = 0
        self.sums: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.escaped_types: Counter[str] = Counter()
        self.unexpected_closes: Counter[str] = Counter()
        self.crashes: list[str] = []
        self.slowest: tuple[float, str, str] = (0.0, "", "")
        self.peak_growth_kib = 0
        self.rss_growth_kib = 0
        self.findings: list[str] = []
        self.lost = 0
        """Frames of crashed runs after their last progress report (not in the counters)."""

    def add(self, run: IsolatedRun) -> None:
        self.tried += run.tried
        stats = run.stats
        if stats is None:
            self.lost += run.tried
            return
        self.lost += run.tried - int(stats["tried"])
        for name in _SUMMED:
            self.sums[name] += stats[name]
        self.sums["crashes_base_exception"] += stats["crashes"]
        self.rejections.update(stats["rejections"])
        self.reasons.update(stats["reasons"])
        self.escaped_types.update(stats["escaped_types"])
        self.unexpected_closes.update(stats["unexpected_closes"])
        if stats["slowest_ms"] > self.slowest[0]:
            self.slowest = (stats["slowest_ms"], stats["slowest_kind"], stats["slowest_frame"])
        start = stats["rss_start_kib"]
        self.peak_growth_kib = max(self.peak_growth_kib, stats["peak_kib"] - start)
        self.rss_growth_kib = max(self.rss_growth_kib, stats["rss_max_kib"] - start)
        self.findings += stats["findings"][:10]

    @property
    def violations(self) -> int:
        return (
            len(self.crashes)
            + self.sums["crashes_base_exception"]
            + self.sums["escaped"]
            + sum(self.unexpected_closes.values())
            + sum(
                self.sums[name]
                for name in (
                    "changed_doc",
                    "changed_store",
                    "changed_awareness",
                    "readonly_changed",
                    "hangs",
                    "bad_server_frames",
                    "loop_errors",
                    "sanity_failures",
                    "store_mismatches",
                    "memory_spikes",
                    "leaked_rooms",
                )
            )
        )

    def render(self) -> str:
        s = self.sums
        elapsed = s["elapsed"] or 1.0
        ms, kind, frame = self.slowest
        rejected = sum(self.rejections.values())
        lines = [
            f"frames tried                   {self.tried}",
            f"accepted                       {s['accepted']}",
            f"rejected                       {rejected}",
            *(
                f"  close {code}                   {n}"
                for code, n in sorted(self.rejections.items())
            ),
            f"crashes (process died)         {len(self.crashes)}",
            *(f"  {crash}" for crash in self.crashes),
            f"crashes (BaseException escape) {s['crashes_base_exception']}",
            f"escaped exceptions             {s['escaped']}"
            + (f" {dict(self.escaped_types)}" if self.escaped_types else ""),
            f"undocumented close codes       {dict(self.unexpected_closes) or 0}",
            f"rejected but changed doc       {s['changed_doc']}",
            f"rejected but appended rows     {s['changed_store']}",
            f"rejected but changed presence  {s['changed_awareness']}",
            f"read-only changed doc/store    {s['readonly_changed']}",
            f"hangs                          {s['hangs']}",
            f"undecodable server frames      {s['bad_server_frames']}",
            f"event-loop errors              {s['loop_errors']}",
            f"other room sanity              {s['sanity_checks'] - s['sanity_failures']}"
            f"/{s['sanity_checks']} ok",
            f"reloaded room != memory        {s['store_mismatches']} of {s['rooms']} rooms",
            f"memory spikes                  {s['memory_spikes']}",
            f"rooms alive after unload       {s['leaked_rooms']} of {s['retired_rooms']}",
            f"non-strict JSON presence       {s['lenient_json']} accepted (info)",
            f"connections opened             {s['connections']}",
            f"slowest frame                  {ms:.1f} ms: {kind} [{len(frame) // 2} bytes]"
            f" {frame[:64]}",
            f"frames/s                       {self.tried / elapsed:.0f}"
            f" ({self.tried} frames in {elapsed:.0f} s of fuzzing)",
            f"peak RSS growth (VmHWM)        {self.peak_growth_kib // 1024} MiB"
            f" (RSS between frames: +{self.rss_growth_kib // 1024} MiB)",
        ]
        if self.lost:
            lines.append(f"({self.lost} frames of crashed runs are in no counter but 'tried')")
        if self.reasons:
            lines.append("rejections by reason (top 15):")
            lines += [f"  {n:8d}  {why}" for why, n in self.reasons.most_common(15)]
        if self.findings:
            lines.append("findings (first of each kind, per run):")
            lines += [f"  {finding[:300]}" for finding in self.findings[:30]]
        return "\n".join(lines)


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
    parser.add_argument(
        "--stop-on-crash", action="store_true", help="do not go on after a crashed run"
    )
    parser.add_argument(
        "--crash-dir", type=Path, default=Path("."), help="where crashed rooms' frames go"
    )
    parser.add_argument(
        "--dump", type=Path, default=None, help="write each run's stats (JSON list) here"
    )
    parser.add_argument(
        "--timeout", type=float, default=7 * 24 * 3600.0, help="kill a child after this"
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    print(f"seed {seed}, {args.frames} frames", flush=True)

    totals = Totals()
    dumped: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="crdt-fuzz-") as tmp:
        while totals.tried < args.frames and not _stopping:
            config = FuzzConfig(
                frames=args.frames - totals.tried,
                seed=seed,
                data_dir=Path(tmp) / f"data-{seed}",
                report_every=args.report_every,
                room_frames=args.room_frames,
                frame_deadline=args.deadline,
                trace=Path(tmp) / f"trace-{seed}.txt",
            )
            run = run_isolated(
                config, timeout=args.timeout, echo=print, popen_hook=_forward_signals
            )
            totals.add(run)
            if run.stats is not None:
                dumped.append({"seed": seed, "crashed": run.crashed, **run.stats})
            if not run.crashed:
                break  # done, or stopped by a signal
            saved = _save_crash(run, args.crash_dir / f"fuzz-crash-{seed}.txt")
            totals.crashes.append(f"seed {seed}: {run.crash_summary()}; {saved}")
            print(f"CRASH (seed {seed}) after {run.tried} frames of this run")
            print(run.crash_report(), flush=True)
            if args.stop_on_crash or run.tried == 0:
                break
            seed += 1
            print(f"going on with seed {seed} in a fresh process", flush=True)

    print(totals.render())
    if args.dump is not None:
        args.dump.write_text(json.dumps(dumped, indent=1))
        print(f"stats of each run written to {args.dump}")
    if totals.tried < args.frames:
        print(f"stopped after {totals.tried} of {args.frames} frames")
    failed = totals.violations > 0
    print("RESULT:", "FAIL" if failed else "OK", f"({totals.violations} violations)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
