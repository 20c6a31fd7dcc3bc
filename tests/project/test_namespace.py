"""One namespace: the wheel installs ``crdt_server`` alone (its ``documents`` and ``storage``
are subpackages), so an app with its own ``documents`` package keeps it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_wheel_installs_one_package_beside_a_foreign_documents_package(
    tmp_path: Path,
) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("crdt_server-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"crdt_server"}, tops
    assert "crdt_server/documents/schema.py" in names and "crdt_server/storage/base.py" in names
    assert "crdt_server/documents/py.typed" in names and "crdt_server/storage/py.typed" in names
    foreign = tmp_path / "app" / "documents"
    foreign.mkdir(parents=True)
    (foreign / "__init__.py").write_text("MINE = True\n")
    check = (
        "import documents, crdt_server.documents, crdt_server.storage, crdt_server.app;"
        "assert documents.MINE;"
        "assert crdt_server.documents.DOCUMENT_KINDS;"
        "assert crdt_server.storage.SqliteStore;"
        f"assert crdt_server.__file__.startswith({str(tmp_path / 'site')!r}), crdt_server.__file__"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'app'}{os.pathsep}{tmp_path / 'site'}"}
    ran = subprocess.run(
        [sys.executable, "-c", check],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
