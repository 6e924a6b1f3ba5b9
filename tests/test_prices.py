"""The cost estimate follows the model: list prices per model, none for an unknown one, overrides win."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from emulators.claude import ClaudeEmulator
from matrec.engine import Part
from matrec.models import PriceOverride
from matrec.results import Recommendation, TokenUsage
from matrec.settings import EngineSettings
from tests.engine_support import running_engine

PART = Part(context="A wall bracket for a 20 kg pump, indoors, 500 a year.", label="bracket")
# USD per million tokens from Anthropic's model pages: input, output, 5-minute cache write, cache read
LIST_PRICES = {
    "claude-sonnet-5-5": (2.0, 10.0, 2.5, 0.10),
    "claude-sonnet-5": (2.0, 10.0, 2.5, 0.20),
    "claude-opus-5-5": (4.0, 20.0, 5.0, 0.20),
    "claude-haiku-4-5": (1.0, 5.0, 1.25, 0.10),
}


@pytest.fixture
async def emulator() -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator() as claude:
        yield claude


def _listed(usage: TokenUsage, prices: tuple[float, float, float, float]) -> float:
    counts = (usage.input_tokens, usage.output_tokens, usage.cache_write_tokens, usage.cache_read_tokens)
    return sum(count * price for count, price in zip(counts, prices, strict=True)) / 1e6


async def _consult(emulator: ClaudeEmulator, **settings: object) -> Recommendation:
    async with running_engine(emulator, **settings) as engine:
        return await engine.evaluate(PART)


@pytest.mark.parametrize("model", list(LIST_PRICES))
async def test_the_estimate_uses_the_list_prices_of_the_configured_model(emulator: ClaudeEmulator, model: str) -> None:
    rec = await _consult(emulator, model=model)
    assert {r.body["model"] for r in emulator.requests} == {model}
    assert rec.usage.model == model
    assert rec.usage.cost_usd == pytest.approx(_listed(rec.usage.total, LIST_PRICES[model]), rel=1e-6)


def test_a_model_with_no_known_price_has_no_estimate_rather_than_a_wrong_one() -> None:
    settings = EngineSettings(model="claude-sonnet-7")
    assert settings.price_table is None


async def test_an_override_wins_over_the_table_field_by_field(emulator: ClaudeEmulator) -> None:
    override = PriceOverride(output_usd_per_mtok=30.0)
    rec = await _consult(emulator, prices=override)
    assert rec.usage.cost_usd == pytest.approx(_listed(rec.usage.total, (2.0, 30.0, 2.5, 0.10)), rel=1e-6)


def test_an_override_prices_an_unknown_model_with_the_standard_cache_multipliers() -> None:
    settings = EngineSettings(
        model="claude-sonnet-7", prices=PriceOverride(input_usd_per_mtok=3, output_usd_per_mtok=15)
    )
    table = settings.price_table
    assert table is not None
    assert (table.cache_write_usd_per_mtok, table.cache_read_usd_per_mtok) == pytest.approx((3.75, 0.3))


def test_an_override_of_one_field_alone_does_not_price_an_unknown_model() -> None:
    settings = EngineSettings(model="claude-sonnet-7", prices=PriceOverride(output_usd_per_mtok=15))
    assert settings.price_table is None
