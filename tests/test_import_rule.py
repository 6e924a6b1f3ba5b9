"""The engine knows nothing of Slack: `matrec` never imports `bot`, `slack_bolt` or `slack_sdk`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import matrec

FORBIDDEN = ("bot", "slack_bolt", "slack_sdk")
PACKAGE = Path(matrec.__file__).parent


def _imported_modules(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_engine_module_imports_the_bot_or_slack() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE.parent)}: {name}"
        for path in PACKAGE.rglob("*.py")
        for name in _imported_modules(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert offenders == set()


def test_importing_the_whole_engine_loads_no_slack_module() -> None:
    modules = [f"matrec.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem not in {"__init__", "__main__"}]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
