"""A feature added the way docs/guides/add-a-feature.md says: one package and one line of
the feature list, nothing else.

The package is tests/fixtures/contracts_feature/ (the guide's "vendor contracts", file for
file: a test here checks the guide shows these very files). Put on the list of a test app,
its route answers, its table is made, its setting is read from the environment, its
capability is in the permissions reference and in the matrix the server checks, and its
modules keep to the layer rules of a feature.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sqlite3
from pathlib import Path

import pytest

from crdt_server.app import FEATURES, create_app, permission_matrix
from crdt_server.auth.permissions import PermissionsError
from crdt_server.features import ROLES, fragments_of
from crdt_server.settings import Settings, variables
from tests.features.test_feature_list import MINT, SECRET, objects, serving
from tests.fixtures import contracts_feature
from tests.fixtures.contracts_feature.settings import ContractSettings
from tests.project.test_docs import _generator as reference_generator
from tests.project.test_layers import (
    HEAVY,
    _feature_module_imports,
    _imports,
    _positional_row_reads,
    _rule,
    _within,
)

pytestmark = [pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tests" / "fixtures" / "contracts_feature"
GUIDE = ROOT / "docs" / "guides" / "add-a-feature.md"
WITH_CONTRACTS = (*FEATURES, contracts_feature.FEATURE)
"""The app's list plus the one line the guide adds."""


@pytest.mark.asyncio
async def test_the_added_feature_serves_its_route_from_its_own_table(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET)
    app = create_app(settings, features=WITH_CONTRACTS)
    async with serving(app) as client:
        url = "/api/weddings/w1/contracts"
        couple = MINT.headers(role="couple", wedding="w1")
        contract = {"id": "florist", "vendor": "Bloom & Co", "amount": 125000}
        made = await client.post(url, json=contract, headers=couple)
        assert made.status_code == 201, made.text
        assert made.json() == contract
        # The capability decides who may record one: a vendor reads, never writes.
        vendor = MINT.headers(role="vendor", sub="val", wedding="w1")
        refused = await client.post(url, json={**contract, "id": "band"}, headers=vendor)
        assert refused.status_code == 403, refused.text
        assert "contracts.manage" in refused.json()["detail"]
        listed = await client.get(url, headers=vendor)
        assert listed.status_code == 200 and listed.json() == {"contracts": [contract]}
        # Domain errors become problems naming the field; the id is the wedding's once.
        again = await client.post(url, json=contract, headers=couple)
        assert again.status_code == 422 and again.json()["errors"][0]["field"] == "id"
        assert (await client.get("/api/weddings/w2/contracts", headers=couple)).status_code == 403
        assert (await client.get(url)).status_code == 401
        spec = (await client.get("/openapi.json")).json()
        assert set(spec["paths"]["/api/weddings/{wedding_id}/contracts"]) == {"get", "post"}
    tables = {name for kind, name in objects(tmp_path / "crdt.sqlite3") if kind == "table"}
    assert "vendor_contracts" in tables
    with sqlite3.connect(tmp_path / "crdt.sqlite3") as conn:
        rows = conn.execute("SELECT wedding, id, vendor, amount FROM vendor_contracts").fetchall()
        versions = dict(conn.execute("SELECT name, version FROM schema_versions").fetchall())
    assert rows == [("w1", "florist", "Bloom & Co", 125000)]
    assert versions["contracts"] == 1


@pytest.mark.asyncio
async def test_its_setting_is_read_from_the_environment_and_used(tmp_path: Path) -> None:
    env = {"CRDT_SERVER_CONTRACTS_PER_WEDDING": "1", "CRDT_SERVER_AUTH_SECRET": SECRET}
    settings = Settings.from_env(env, fragments=fragments_of(WITH_CONTRACTS))
    assert settings.fragment(ContractSettings).contracts_per_wedding == 1
    assert "CRDT_SERVER_CONTRACTS_PER_WEDDING" in variables(fragments_of(WITH_CONTRACTS))
    # Without the feature on the list its variable is not read: the fragment's defaults.
    alone = Settings.from_env(env, fragments=fragments_of(FEATURES))
    assert alone.fragment(ContractSettings).contracts_per_wedding == 200
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET, fragments=settings.fragments)
    async with serving(create_app(settings, features=WITH_CONTRACTS)) as client:
        url = "/api/weddings/w1/contracts"
        couple = MINT.headers(role="couple", wedding="w1")
        first = {"id": "florist", "vendor": "Bloom & Co", "amount": 125000}
        assert (await client.post(url, json=first, headers=couple)).status_code == 201
        second = await client.post(url, json={**first, "id": "band"}, headers=couple)
        assert second.status_code == 422, second.text
        assert "at most 1 contracts" in second.json()["detail"]


def test_its_capability_is_in_the_reference_and_the_matrix() -> None:
    page = reference_generator().permissions_page(WITH_CONTRACTS)
    assert "| `contracts.manage` | contracts | couple, planner |" in page
    assert "contracts.manage" not in reference_generator().permissions_page(FEATURES)
    text = json.dumps({"couple": {}, "capabilities": {"contracts.manage": ["couple"]}})
    matrix = permission_matrix(Settings(permissions=text), WITH_CONTRACTS)
    assert matrix.can("couple", "contracts.manage") and not matrix.can(
        "planner", "contracts.manage"
    )
    assert permission_matrix(Settings(), WITH_CONTRACTS).can("planner", "contracts.manage")
    with pytest.raises(PermissionsError, match="unknown capability 'contracts.manage'"):
        permission_matrix(Settings(permissions=text), FEATURES)


def test_its_package_keeps_to_the_rules_of_a_feature() -> None:
    """Read as ``crdt_server/features/contracts/``: modules named by their role, imports
    within a feature's row of the layer table, other features only through their
    package, and ``__all__`` with ``FEATURE``."""
    prefix, allowed, heavy = _rule("crdt_server.features.contracts")
    assert prefix == "crdt_server.features"
    for path in sorted(PACKAGE.glob("*.py")):
        assert path.stem == "__init__" or path.stem.split("_", 1)[0] in ROLES, path.name
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "crdt_server":
                assert name == "crdt_server" or _within(name, allowed), (path.name, name)
            elif top == "tests":  # its own modules, imported relatively
                assert name.startswith("tests.fixtures.contracts_feature"), (path.name, name)
            elif top in HEAVY:
                assert top in heavy, (path.name, name)
        assert not _feature_module_imports(path), path.name
        assert not _positional_row_reads(path), path.name  # rows read by name
    assert "FEATURE" in contracts_feature.__all__


def _guide_files() -> dict[str, str]:
    """The guide's Python blocks that open with ``# crdt_server/features/contracts/X.py``:
    file name -> the block without that line."""
    blocks = re.findall(
        r"```python\n# crdt_server/features/contracts/(\w+\.py)\n(.*?)```",
        GUIDE.read_text(),
        re.DOTALL,
    )
    return dict(blocks)


def test_the_guide_shows_the_files_this_test_runs() -> None:
    shown = _guide_files()
    files = {path.name: path.read_text() for path in PACKAGE.glob("*.py")}
    assert shown.keys() == files.keys(), (sorted(shown), sorted(files))
    for name, text in files.items():
        assert shown[name] == text, f"docs/guides/add-a-feature.md shows another {name}"
    # The guide's test is the first test here, and its one line of the list.
    guide = GUIDE.read_text()
    assert inspect.getsource(test_the_added_feature_serves_its_route_from_its_own_table) in guide
    assert "    contracts.FEATURE,\n" in guide
    for node in ast.walk(ast.parse(files["__init__.py"])):
        if isinstance(node, ast.ImportFrom) and node.module == "crdt_server.features":
            assert {a.name for a in node.names} <= {"Built", "Feature"}
