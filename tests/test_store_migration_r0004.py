"""Revision 0004 adds the spend ledger to a 0003 database and takes it away again on a downgrade."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.store import Store
from tests.store_support import (  # noqa: F401 (pytest fixtures)
    backend_of,
    describe_schema,
    fresh_database,
    run_alembic,
    url_fixture,
)

DAY = date(2030, 1, 2)


async def test_a_database_upgraded_from_0003_has_the_spend_ledger_of_a_fresh_one(url: str, tmp_path: Path) -> None:
    await run_alembic(url, "upgrade", "0003")
    assert "spend" not in await describe_schema(url)
    async with fresh_database(backend_of(url), tmp_path / "fresh") as fresh:
        for opened in (url, fresh):
            async with await Store.open(opened):
                pass
        assert await describe_schema(url) == await describe_schema(fresh)


async def test_a_downgrade_to_0003_drops_the_ledger_and_an_upgrade_starts_it_empty(url: str) -> None:
    async with await Store.open(url) as store:
        assert await store.reserve(DAY, "C1", 0.5, cap_day=1.0, cap_channel=None) is not None

    await run_alembic(url, "downgrade", "0003")
    assert "spend" not in await describe_schema(url)

    async with await Store.open(url) as store:
        assert await store.spent(DAY) == pytest.approx(0.0)
