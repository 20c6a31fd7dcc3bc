"""The campaign's table per fault kind, as Markdown (docs/reliability/faults.md) and as
printed at the end of a run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmarks.faults.kinds import KINDS

if TYPE_CHECKING:
    from benchmarks.faults.campaign import ScheduleResult

__all__ = ["markdown", "print_table", "table"]


def table(results: list[ScheduleResult]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        for kind in sorted({f["kind"] for f in r.faults}):
            row = rows.setdefault(
                kind,
                {
                    "kind": kind, "what": KINDS[kind].what, "schedules": 0, "acknowledged": 0,
                    "lost": 0, "diverged": 0, "rooms_behind": 0, "duplicated_events": 0,
                    "missing_events": 0, "undelivered": 0, "unreadable": 0, "vendors_behind": 0,
                    "never_acknowledged": 0, "longest_unavailability_s": 0.0,
                    "longest_unavailability_healthy_s": None, "not_recovered": 0,
                    "longest_recovery_s": 0.0, "longest_wait_by_protocol_s": {},
                    "never_acknowledged_by_protocol": {},
                },
            )  # fmt: skip
            row["schedules"] += 1
            row["acknowledged"] += r.acknowledged
            row["lost"] += r.lost
            row["diverged"] += r.diverged
            row["rooms_behind"] += r.rooms_behind
            row["duplicated_events"] += r.duplicated_events
            row["missing_events"] += r.missing_events
            row["undelivered"] += r.undelivered
            row["unreadable"] += r.unreadable
            row["vendors_behind"] += r.vendors_behind
            row["never_acknowledged"] += sum(r.never_acknowledged.values())
            row["not_recovered"] += 1 if r.revived else 0
            if r.healthy_unavailability is not None:
                row["longest_unavailability_healthy_s"] = max(
                    row["longest_unavailability_healthy_s"] or 0.0, r.healthy_unavailability
                )
            for protocol, wait in r.longest_wait.items():
                waits = row["longest_wait_by_protocol_s"]
                waits[protocol] = max(waits.get(protocol, 0.0), wait)
            for protocol, count in r.never_acknowledged.items():
                never = row["never_acknowledged_by_protocol"]
                never[protocol] = never.get(protocol, 0) + count
            row["longest_unavailability_s"] = max(
                row["longest_unavailability_s"], max(r.unavailability.values(), default=0.0)
            )
            row["longest_recovery_s"] = max(row["longest_recovery_s"], r.recovery)
    return sorted(rows.values(), key=lambda row: str(row["kind"]))


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table per fault kind as Markdown (docs/reliability/faults.md)."""
    lines = [
        "| kind | schedules | acked | never | lost | diverged | rooms behind | dup ev "
        "| miss ev | undelivered | unreadable | vendors behind | unavail s | others s "
        "| recovery s | stuck |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        others = row["longest_unavailability_healthy_s"]
        cells = (
            f"`{row['kind']}`", row["schedules"], row["acknowledged"], row["never_acknowledged"],
            row["lost"], row["diverged"], row["rooms_behind"], row["duplicated_events"],
            row["missing_events"], row["undelivered"], row["unreadable"], row["vendors_behind"],
            row["longest_unavailability_s"], "-" if others is None else others,
            row["longest_recovery_s"], row["not_recovered"],
        )  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        "kind", "sched", "acked", "never", "lost", "diverged", "behind", "dup ev", "miss ev",
        "undeliv", "unread", "vendors", "unavail s", "others s", "recovery s", "stuck",
    )  # fmt: skip
    print("  ".join(f"{h:>10}" if i else f"{h:<22}" for i, h in enumerate(head)))
    for row in rows:
        cells = (
            row["kind"], row["schedules"], row["acknowledged"], row["never_acknowledged"],
            row["lost"], row["diverged"], row["rooms_behind"],
            row["duplicated_events"], row["missing_events"], row["undelivered"],
            row["unreadable"], row["vendors_behind"], row["longest_unavailability_s"],
            "-" if row["longest_unavailability_healthy_s"] is None
            else row["longest_unavailability_healthy_s"],
            row["longest_recovery_s"], row["not_recovered"],
        )  # fmt: skip
        print("  ".join(f"{c:>10}" if i else f"{c:<22}" for i, c in enumerate(cells)))
