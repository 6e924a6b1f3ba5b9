"""What the wheel ships: the product (matrec, bot, with prompts and migrations), not the emulators,
benchmarks or tests, which run from the repository."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages  # type: ignore[import-untyped]  # no stubs; only used here

ROOT = Path(__file__).resolve().parent.parent


def _packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = config["tool"]["setuptools"]["packages"]["find"]
    return set(find_packages(where=str(ROOT), include=found["include"]))


def test_the_wheel_ships_matrec_and_bot_only() -> None:
    assert {name.split(".")[0] for name in _packages()} == {"matrec", "bot"}


def test_the_wheel_carries_the_store_migrations_and_the_prompts() -> None:
    packages = _packages()
    assert {"bot.store", "bot.store.migrations", "bot.store.migrations.versions"} <= packages
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "prompts/*.md" in config["tool"]["setuptools"]["package-data"]["matrec"]
    assert list((ROOT / "bot/store/migrations/versions").glob("r*.py"))
