"""The contract files ship in the package: pyproject's package-data globs cover every committed
contract JSON file (a wheel or the Docker image would otherwise leave them out)."""

from __future__ import annotations

import glob
import shutil
import subprocess
import tomllib
from pathlib import Path

from tests.deploy.support import ROOT

CONTRACTS = ROOT / "contracts"


def committed_contract_files() -> set[str]:
    """JSON files under contracts/ that git tracks (every one on disk outside a checkout)."""
    if shutil.which("git") and (ROOT / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-z", "--", "contracts"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.split("\0")
        files = {str(Path(name).relative_to("contracts")) for name in listed if name}
    else:
        files = {str(p.relative_to(CONTRACTS)) for p in CONTRACTS.rglob("*")}
    return {name for name in files if name.endswith(".json")}


def packaged_by_globs() -> set[str]:
    """What setuptools puts in the wheel for package ``contracts`` (its globs, relative to it)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["contracts"]
    return {name for pattern in patterns
            for name in glob.glob(pattern, root_dir=CONTRACTS, recursive=True)}


def test_every_committed_contract_json_file_is_package_data() -> None:
    committed = committed_contract_files()
    assert {"asyncapi.json", "openapi/inventory.json", "schemas/envelope.json"} <= committed
    missing = committed - packaged_by_globs()
    assert not missing, f"add these to [tool.setuptools.package-data] contracts: {sorted(missing)}"
