"""Every test SECURITY.md names exists: tests move, and a row naming a test that is gone
would claim a defence nobody checks any more."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITED = re.compile(r"`((?:tests/[\w/.-]+\.py)?(?:::\w+)?)`")


def cited_tests() -> list[tuple[str, str | None]]:
    """(file, test name or None) for every test the table cites. In a cell, ``::name``
    continues the file named last."""
    found: list[tuple[str, str | None]] = []
    for line in (ROOT / "SECURITY.md").read_text().splitlines():
        cells = line.split(" | ")
        if not line.startswith("|") or len(cells) < 4:
            continue
        current: str | None = None
        for ref in CITED.findall(cells[-1]):
            path, _, name = ref.partition("::")
            current = path or current
            if current is None:
                continue
            found.append((current, name or None))
    return found


def test_every_test_security_md_names_exists() -> None:
    cited = cited_tests()
    assert len(cited) > 50, "the table's test column was not parsed"
    for path, name in cited:
        source = ROOT / path
        assert source.is_file(), f"SECURITY.md names {path}, which does not exist"
        if name is not None:
            defined = re.search(rf"^(async )?def {name}\(", source.read_text(), re.M)
            assert defined, f"SECURITY.md names {path}::{name}, which does not exist"
