"""The product scenario (issue 40, goal 1): the whole product at speed in one process.

    .venv/bin/python -m benchmarks.run --product    # 1,000 weddings x 10: ours, y-websocket
    .venv/bin/python -m benchmarks.product --weddings 200 --rates 500,1000,2000 --servers ours
    .venv/bin/python -m benchmarks.product --tiny                 # a few seconds (the smoke test)

``--weddings`` weddings of 10 members each. A member works on one of the wedding's documents
as the app's pages do: members 0 to 4 on the guest list (RSVPs and meals), 5 to 7 on the
timeline (moving an item: its start and end in one transaction), 8 and 9 on the budget
(recording payments and correcting their amounts). Every update is what a stock Yjs client
sends: each writer holds a pycrdt document with its own client id, makes the change in one
transaction and sends the transaction's update (``Doc.observe``), made before the timed part.
A writer's first update adds its own entry (a guest, a timeline item, a category and a
payment); later ones change it, so every update is one or more domain events.

Our server runs as shipped (SQLite ``synchronous=FULL``, echo after the commit, events,
conflicts and the calendar feed derived in the commit, webhooks on ``--webhook-weddings``
weddings delivering to a real receiver on 127.0.0.1, signatures verified on arrival), with
only the benchmark settings of ``scale.SCALE_ENV`` (abuse limits lifted, an auth secret for
the webhook API). y-websocket-server runs on the same load (it persists to LevelDB after
echoing and derives nothing).

The offered rate steps through ``--rates`` (updates/s in all, open loop, ``--step-seconds``
each) on one server; the result is the highest step with echo p99 < 100 ms and nothing lost
(every update echoed to its writer and delivered to every other member of its room). After
the last step a fresh client per room checks that the server holds every writer's clocks
(every acknowledged update is stored). Each step prints the machine's load average and the
CPU of every process that used any (the server, each load-generator process, this driver,
everything else on the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* is found from the root
    print(
        f"run it from {ROOT} as: .venv/bin/python -m benchmarks.product [options]", file=sys.stderr
    )
    sys.exit(2)

from pycrdt import Doc, Map, TransactionEvent  # noqa: E402

from benchmarks import loadgen, scale  # noqa: E402
from benchmarks.loadgen import Metric, YPeer, clock_ranges  # noqa: E402
from benchmarks.servers import (  # noqa: E402
    ServerProcess,
    ServerSpec,
    node_ready,
    ours_spec,
    server_specs,
)
from crdt_server.codec.protocol import encode_update  # noqa: E402

MEMBERS = 10
DOCS: tuple[tuple[str, int], ...] = (("guests", 5), ("timeline", 3), ("budget", 2))
"""Which document a wedding's members work on: 5 on the guest list, 3 on the timeline, 2 on
the budget (10 in all)."""
EMPTY_UPDATE = b"\x00\x00"


# -- domain changes, as a stock Yjs client writes them ----------------------------------------


def _slot(n: int) -> tuple[str, str]:
    hour = 10 + n % 10
    return (f"2027-06-12T{hour:02d}:00:00+02:00", f"2027-06-12T{hour:02d}:45:00+02:00")


def _change(doc: Doc[Any], kind: str, cid: int, n: int) -> None:
    """The writer ``cid``'s ``n``-th change of a ``kind`` document (in a transaction)."""
    if kind == "guests":
        guests = doc.get("guests", type=Map)
        if n == 0:
            guests[f"g{cid}"] = Map(
                {"name": f"Guest {cid}", "household": f"h{cid % 97}", "side": "both",
                 "rsvp": "pending"}
            )  # fmt: skip
        elif n % 2:
            guests[f"g{cid}"]["rsvp"] = ("accepted", "declined", "pending")[n % 3]
        else:
            guests[f"g{cid}"]["meal"] = ("fish", "beef", "vegetarian", "vegan")[n % 4]
    elif kind == "timeline":
        items = doc.get("items", type=Map)
        start, end = _slot(n)
        if n == 0:
            items[f"t{cid}"] = Map(
                {"title": f"Moment {cid}", "start": start, "end": end, "location": "Garden",
                 "status": "planned"}
            )  # fmt: skip
        else:  # a move: both ends of the slot in one transaction
            item = items[f"t{cid}"]
            item["start"] = start
            item["end"] = end
    elif kind == "budget":
        categories = doc.get("categories", type=Map)
        payments = doc.get("payments", type=Map)
        if n == 0:
            categories[f"c{cid}"] = Map({"name": f"Vendors {cid}", "planned": 500_000})
        if n % 3 == 0:  # a new payment
            payments[f"p{cid}x{n}"] = Map(
                {"amount": 10_000 + n, "category_id": f"c{cid}", "date": "2027-05-01",
                 "payer": "Sam", "vendor": "Florist"}
            )  # fmt: skip
        else:  # its amount corrected
            payments[f"p{cid}x{n - n % 3}"]["amount"] = 12_000 + n
    else:
        raise ValueError(f"no changes for a {kind!r} document")


def domain_updates(kind: str, cid: int, count: int) -> list[tuple[bytes, int]]:
    """``count`` sync-update messages of writer ``cid`` on a ``kind`` document and how many
    clocks each takes: each the update of one transaction, as ``doc.on('update')`` gives it
    to a Yjs provider."""
    doc: Doc[Any] = Doc(client_id=cid)
    made: list[bytes] = []

    def on_transaction(event: TransactionEvent) -> None:
        made.append(event.update)

    doc.observe(on_transaction)
    for n in range(count):
        with doc.transaction():
            _change(doc, kind, cid, n)
    out = []
    for update in made:
        start, end = clock_ranges(update)[cid]
        out.append((encode_update(update), end - start))
    return out


def room_kind(room: str) -> str:
    return room.rsplit("/", 1)[-1]


# -- the agent -----------------------------------------------------------------------------


class ProductAgent(scale.Agent):
    """``scale.Agent`` whose writers send prepared domain changes (:func:`domain_updates`)."""

    def __init__(self) -> None:
        super().__init__()
        self.prepared: dict[int, list[tuple[bytes, int]]] = {}
        self.written: dict[str, dict[int, int]] = {}
        """room -> writer -> clocks prepared (the last step's are all sent)."""

    def _writers(self, rooms: list[str], id_base: int) -> list[tuple[str, int]]:
        """(room, client id) of every writer, numbered as ``Agent.sustain`` numbers them."""
        out: list[tuple[str, int]] = []
        for room in rooms:
            for _ in self.rooms.get(room, [])[:MEMBERS]:
                out.append((room, id_base + len(out)))
        return out

    async def prepare(self, rooms: list[str], id_base: int, count: int) -> dict[str, Any]:
        """Make ``count`` updates for each writer (as many as it may send in a step)."""
        self.prepared.clear()
        t0 = time.perf_counter()
        for room, cid in self._writers(rooms, id_base):
            self.prepared[cid] = domain_updates(room_kind(room), cid, count)
        return {"seconds": time.perf_counter() - t0}

    async def sustain(
        self,
        rooms: list[str],
        writers_per_room: int,
        segments: list[list[float]],
        t0: float,
        id_base: int,
        grace: float,
    ) -> dict[str, Any]:
        result = await super().sustain(rooms, writers_per_room, segments, t0, id_base, grace)
        for w in self.last_writers:
            self.written.setdefault(w.peer.wedding, {})[w.cid] = len(w.sent_at)
        return result

    def maker(self, room: str, cid: int) -> scale.Maker:
        updates = self.prepared[cid]
        return lambda _cid, n: updates[n]

    async def verify(self, rooms: list[str]) -> dict[str, Any]:
        """A fresh client per room: does the server's sync step 2 hold every writer's clocks?"""
        assert self.target is not None
        bad: list[str] = []
        for room in rooms:
            peer = YPeer(self.target, room)
            try:
                await peer.open()
                await peer.wait_synced()
                held = clock_ranges(peer.step2 or EMPTY_UPDATE)
                for cid, clocks in self.written.get(room, {}).items():
                    if held.get(cid, (0, 0)) != (0, clocks):
                        bad.append(room)
                        break
            finally:
                await loadgen.close_peers([peer], timeout=10.0)
        return {"rooms": len(rooms), "bad": bad}


# -- the controller --------------------------------------------------------------------------


@dataclass
class Options:
    servers: list[str]
    weddings: int
    rates: list[float]
    step_seconds: float
    agents: int
    ramp_rate: float
    webhook_weddings: int
    grace: float
    keep_going: bool
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))


def proc_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system, all threads) of every process on the machine."""
    out: dict[int, tuple[str, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index(b"(") + 1 : raw.rindex(b")")].decode(errors="replace")
        fields = raw[raw.rindex(b")") + 2 :].split()
        out[int(name)] = (comm, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return out


def cpu_table(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    wall: float,
    roles: dict[int, str],
) -> str:
    """Every process that used CPU over the window (0.5 % of a core or more), in % of one
    core, busiest first."""
    rows = []
    for pid, (comm, cpu) in after.items():
        used = cpu - before.get(pid, (comm, 0.0))[1]
        if wall > 0 and 100.0 * used / wall >= 0.5:
            rows.append((100.0 * used / wall, pid, comm, roles.get(pid, "other")))
    rows.sort(reverse=True)
    return "; ".join(f"{role} {comm}[{pid}] {pct:.0f}%" for pct, pid, comm, role in rows)


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


@dataclass
class Step:
    rate: float
    sent: int = 0
    sent_per_s: float = 0.0
    echo_p50: float | None = None
    echo_p99: float | None = None
    delivery_p99: float | None = None
    lost: int = 0
    missing: int = 0
    late: int = 0
    closed: int = 0
    server_ms_per_update: float | None = None
    generator_pct: list[float] = field(default_factory=list)
    server_pct: float = 0.0
    other_pct: float = 0.0
    fsync_p50: float | None = None
    commit_p50: float | None = None
    load: str = ""
    processes: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.sent_per_s >= 0.95 * self.rate  # the load generator kept the offered rate
            and self.echo_p99 is not None
            and self.echo_p99 < 100.0
            and self.lost == 0
            and self.missing == 0
            and self.closed == 0
        )


@dataclass
class Result:
    server: str
    steps: list[Step] = field(default_factory=list)
    verified: str = ""
    hooks: list[Metric] = field(default_factory=list)

    @property
    def sustained(self) -> Step | None:
        good = [s for s in self.steps if s.ok]
        return max(good, key=lambda s: s.rate) if good else None


def fmt(value: float | None, spec: str = "{:.1f}") -> str:
    return "n/a" if value is None else spec.format(value)


async def run_server(opts: Options, spec: ServerSpec, run_dir: Path) -> Result:
    result = Result(spec.name)
    ours = spec.name.startswith("ours")
    weddings = [f"pw{i}x{opts.run_id}" for i in range(opts.weddings)]
    parts = scale.split(weddings, opts.agents)
    server = await scale.start_server(spec, run_dir, 1)
    try:
        async with (
            scale.Agents(opts.agents, "benchmarks.product") as agents,
            contextlib.AsyncExitStack() as stack,
        ):
            await agents.hello(server)
            agent_rooms = [[f"{w}/{d}" for w in part for d, _ in DOCS] for part in parts]
            for doc, members in DOCS:
                t0 = time.perf_counter() + 0.3
                opened = await asyncio.gather(
                    *(a.call("open", rooms=[f"{w}/{doc}" for w in part], per_room=members,
                             rate=opts.ramp_rate / opts.agents, t0=t0)
                      for a, part in zip(agents.all, parts, strict=True))
                )  # fmt: skip
                failed = scale.merge_counts(opened, "failed")
                if failed:
                    raise RuntimeError(f"connections failed: {scale.codes_text(failed)}")
            sink = None
            if ours and opts.webhook_weddings > 0:
                sink = await stack.enter_async_context(
                    scale.WebhookSink(server, weddings[: opts.webhook_weddings])
                )
            roles = {server.pid: "server", os.getpid(): "driver"}
            for p in loadgen.process_tree(server.pid)[1:]:
                roles[p] = "server"
            for a in agents.all:
                assert a.proc is not None
                roles[a.proc.pid] = f"agent{a.index}"
            for k, rate in enumerate(opts.rates):
                await loadgen.wait_server_idle(server.pid, 60.0, quiet=1.0)
                step = await one_step(opts, server, agents, agent_rooms, rate, k, roles, ours)
                result.steps.append(step)
                print_step(spec.name, step)
                if not step.ok and not opts.keep_going:
                    break
            verified = await asyncio.gather(
                *(a.call("verify", rooms=rooms) for a, rooms in zip(agents.all, agent_rooms,
                                                                    strict=True))
            )  # fmt: skip
            bad = [r for v in verified for r in v["bad"]]
            total = sum(v["rooms"] for v in verified)
            result.verified = f"{total - len(bad)} of {total} rooms hold every writer's clocks"
            if sink is not None:
                result.hooks = await sink.rows("webhooks")
    finally:
        await server.stop()
    return result


async def one_step(
    opts: Options,
    server: ServerProcess,
    agents: scale.Agents,
    agent_rooms: list[list[str]],
    rate: float,
    k: int,
    roles: dict[int, str],
    ours: bool,
) -> Step:
    step = Step(rate)
    per_writer = rate / (opts.weddings * MEMBERS)
    count = math.ceil(opts.step_seconds * per_writer)  # the most Agent.sustain sends
    id_base = 10_000_000 + 1_000_000 * k
    bases = [id_base + 100_000 * a.index for a in agents.all]
    await asyncio.gather(
        *(a.call("prepare", rooms=rooms, id_base=base, count=count)
          for a, rooms, base in zip(agents.all, agent_rooms, bases, strict=True))
    )  # fmt: skip
    before = await scale.commit_buckets(server) if ours else {}
    cpu0 = loadgen.process_cpu_seconds(server.pid)
    gen_pids = [a.proc.pid for a in agents.all if a.proc is not None]
    gen0 = [loadgen.process_cpu_seconds(p) for p in gen_pids]
    procs0 = proc_cpu()
    window = scale.LoadWindow(server.pid, agents)
    wall0 = time.perf_counter()
    t0 = wall0 + 0.5
    with scale.FsyncProbe(server.data_dir, 20.0) as probe:
        results = await asyncio.gather(
            *(a.call("sustain", rooms=rooms, writers_per_room=MEMBERS,
                     segments=[[opts.step_seconds, per_writer]], t0=t0, id_base=base,
                     grace=opts.grace)
              for a, rooms, base in zip(agents.all, agent_rooms, bases, strict=True))
        )  # fmt: skip
        await scale.settle(server.pid, list(zip(agents.all, results, strict=True)))
    wall = time.perf_counter() - wall0
    window.stop()
    procs1 = proc_cpu()
    cpu = loadgen.process_cpu_seconds(server.pid) - cpu0
    gen = [loadgen.process_cpu_seconds(p) - c for p, c in zip(gen_pids, gen0, strict=True)]
    after = await scale.commit_buckets(server) if ours else {}
    echo = scale.merge_hists(results, "echo")
    delivery = scale.merge_hists(results, "delivery")
    step.sent = sum(r["sent"] for r in results)
    step.sent_per_s = step.sent / max(r["send_seconds"] for r in results)
    step.echo_p50 = scale.hist_percentile(echo, 50)
    step.echo_p99 = scale.hist_percentile(echo, 99)
    step.delivery_p99 = scale.hist_percentile(delivery, 99)
    step.lost = sum(r["expected_echoes"] - r["echoes"] for r in results)
    step.missing = sum(r["expected_deliveries"] - r["deliveries"] for r in results)
    step.late = sum(r["late_echoes"] + r["late_deliveries"] for r in results)
    step.closed = sum(scale.merge_counts(results, "closed").values())
    step.server_ms_per_update = 1000.0 * cpu / step.sent if step.sent else None
    step.server_pct = 100.0 * cpu / wall
    step.generator_pct = [100.0 * g / wall for g in gen]
    rows = {m.name: m.value for m in window.metrics("w")}
    step.other_pct = rows.get("w: other processes CPU % (noise)") or 0.0
    step.fsync_p50 = loadgen.percentile(probe.times, 50)
    step.commit_p50 = scale.bucket_percentile(before, after, 50) if ours else None
    step.load = loadavg()
    step.processes = cpu_table(procs0, procs1, wall, roles)
    return step


def print_step(name: str, s: Step) -> None:
    gens = " + ".join(f"{g:.0f}" for g in s.generator_pct)
    print(
        f"[{name}] offered {s.rate:.0f}/s: sent {s.sent_per_s:.0f}/s, echo p50 "
        f"{fmt(s.echo_p50)} p99 {fmt(s.echo_p99)} ms, delivery p99 {fmt(s.delivery_p99)} ms, "
        f"lost {s.lost}, missing {s.missing}, late {s.late}, closed {s.closed}, server "
        f"{fmt(s.server_ms_per_update, '{:.3f}')} ms CPU/update ({s.server_pct:.0f}% of a "
        f"core), load generator {gens}% , other {s.other_pct:.0f}%, fsync probe p50 "
        f"{fmt(s.fsync_p50, '{:.2f}')} ms, commit p50 {fmt(s.commit_p50)} ms (bucket), "
        f"load average {s.load} -> {'ok' if s.ok else 'NOT sustained'}",
        flush=True,
    )
    print(f"    processes: {s.processes}", flush=True)


def render(results: list[Result], opts: Options) -> str:
    lines = [
        f"## Product scenario: {opts.weddings} weddings x {MEMBERS} members, steps "
        f"{', '.join(f'{r:.0f}' for r in opts.rates)} updates/s x {opts.step_seconds:g} s",
        "",
        "| server | sustained updates/s (echo p99 < 100 ms, nothing lost) | echo p50 / p99 ms "
        "| server CPU ms per update | load generator CPU % (per process) | stored |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.sustained
        if s is None:
            lines.append(f"| {r.server} | none of the steps | | | | {r.verified} |")
            continue
        gens = " + ".join(f"{g:.0f}" for g in s.generator_pct)
        lines.append(
            f"| {r.server} | {s.rate:.0f} (sent {s.sent_per_s:.0f}) | {fmt(s.echo_p50)} / "
            f"{fmt(s.echo_p99)} | {fmt(s.server_ms_per_update, '{:.3f}')} | {gens} | "
            f"{r.verified} |"
        )
    by = {r.server: r.sustained for r in results}
    ours, peer = by.get("ours"), by.get("y-websocket")
    if ours and peer and ours.server_ms_per_update and peer.server_ms_per_update:
        lines += [
            "",
            f"ours / y-websocket: sustained rate {ours.rate / peer.rate:.2f}x (goal >= 0.5), "
            f"CPU per update {ours.server_ms_per_update / peer.server_ms_per_update:.2f}x "
            "(goal <= 1.5)",
        ]
    for r in results:
        for m in r.hooks:
            lines.append(f"{r.server} {m.name}: {m.text()}")
    return "\n".join(lines)


async def main_async(opts: Options, keep: bool, json_path: Path | None) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # every server and agent is still stopped
        loop.add_signal_handler(sig, task.cancel)
    specs = dict(server_specs())
    specs["ours"] = ours_spec("ours", env=scale.SCALE_ENV, notes=specs["ours"].notes)
    baseline = specs.get("ours-baseline")
    if baseline is not None:  # BENCH_BASELINE_SRC: another checkout, the same settings
        specs["ours-baseline"] = replace(baseline, env=(*baseline.env, *scale.SCALE_ENV))
    unknown = [s for s in opts.servers if s not in specs]
    if unknown:
        raise SystemExit(f"unknown servers {unknown} (ours-baseline needs BENCH_BASELINE_SRC)")
    names = list(opts.servers)
    if "y-websocket" in names and not node_ready():
        print("y-websocket left out: run npm ci in benchmarks/node", file=sys.stderr)
        names.remove("y-websocket")
    print(f"load average at the start: {loadavg()} ({os.cpu_count()} cores)", flush=True)
    base = Path(tempfile.mkdtemp(prefix="product-bench-"))
    results: list[Result] = []
    try:
        for name in names:
            try:
                results.append(await run_server(opts, specs[name], base / name))
            except (OSError, RuntimeError, TimeoutError) as exc:  # the other servers still run
                print(f"[{name}] failed: {exc}", flush=True)
                results.append(Result(name, verified=f"failed: {exc}"))
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print(render(results, opts))
    print(f"\nload average at the end: {loadavg()}")
    if json_path is not None:
        scale._write(
            json_path,
            json.dumps(
                {r.server: {"steps": [s.__dict__ | {"ok": s.ok} for s in r.steps],
                            "verified": r.verified,
                            "webhooks": {m.name: m.value for m in r.hooks}}
                 for r in results},
                indent=1,
            )
        )  # fmt: skip
    lost = any(s.lost or s.missing for r in results for s in r.steps if r.server == "ours")
    return 1 if lost else 0


def parse(argv: Sequence[str] | None) -> tuple[Options, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.product", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--agent", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--servers", default="ours,y-websocket")
    p.add_argument("--weddings", type=int, default=1000)
    p.add_argument("--rates", default="1000,2000,3000,4000,5000,6000",
                   help="offered updates/s in all, one step each, in order")  # fmt: skip
    p.add_argument("--step-seconds", type=float, default=20.0)
    p.add_argument("--agents", type=int, default=2, help="load-generator processes")
    p.add_argument("--ramp-rate", type=float, default=500.0, help="connections opened/s")
    p.add_argument("--webhook-weddings", type=int, default=10)
    p.add_argument("--grace", type=float, default=10.0,
                   help="s to wait for echoes and deliveries after a step's last send")  # fmt: skip
    p.add_argument("--keep-going", action="store_true",
                   help="run every step, also after one was not sustained")  # fmt: skip
    p.add_argument("--tiny", action="store_true",
                   help="4 weddings (2 with webhooks), 20 and 40 updates/s x 2 s")  # fmt: skip
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true", help="keep data directories and logs")
    args = p.parse_args(argv)
    if args.tiny:
        args.weddings, args.webhook_weddings, args.rates = 4, 2, "20,40"
        args.step_seconds, args.agents, args.ramp_rate, args.grace = 2.0, 1, 200.0, 10.0
    opts = Options(
        servers=[s.strip() for s in args.servers.split(",") if s.strip()],
        weddings=args.weddings,
        rates=[float(r) for r in args.rates.split(",")],
        step_seconds=args.step_seconds,
        agents=args.agents,
        ramp_rate=args.ramp_rate,
        webhook_weddings=args.webhook_weddings,
        grace=args.grace,
        keep_going=args.keep_going,
    )
    return opts, args


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--agent" in argv:
        asyncio.run(scale.agent_main(ProductAgent()))
        return 0
    opts, args = parse(argv)
    try:
        return asyncio.run(main_async(opts, args.keep, args.json))
    except asyncio.CancelledError:
        print("interrupted; every server started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
