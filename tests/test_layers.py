"""The layer rules hold: `lint-imports` (import-linter) checks the contracts in pyproject.toml, and no two modules
or subpackages of one package import each other, directly or through others.

The rules name modules one by one, so a module added to the package must be placed in them: the
second test fails until it is, instead of the new module escaping every rule.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "cadenza"


def contracts() -> dict[str, dict[str, list[str]]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def top_level_modules() -> set[str]:
    """Every module and subpackage right under ``cadenza``."""
    found = {f"cadenza.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    found |= {f"cadenza.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    return found


def test_every_layer_rule_is_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_every_module_is_placed_in_the_rules() -> None:
    modules = top_level_modules()
    rules = contracts()
    below = set(rules["contracts"]["source_modules"])
    above = set(rules["contracts"]["forbidden_modules"])
    assert not below & above
    assert below | above == modules, f"place these in the contracts rule: {sorted(modules - below - above)}"
    assert set(rules["engine-not-cli"]["source_modules"]) == modules - {"cadenza.cli"}
    assert set(rules["stores"]["forbidden_modules"]) == above - {"cadenza.stores"}
    assert set(rules["buses"]["forbidden_modules"]) == above - {"cadenza.buses"}


def test_no_package_may_hold_an_import_cycle() -> None:
    """The cycle rule covers the whole package at every depth, so that no cycle hides in a subpackage."""
    rule = contracts()["acyclic"]
    assert rule["type"] == "acyclic_siblings"
    assert rule["ancestors"] == ["cadenza"]
    assert "depth" not in rule and "skip_descendants" not in rule and "ignore_imports" not in rule
