"""The spend cap's reckoning: a consultation's and a follow-up's worst case, and the start-up check of its price."""

from __future__ import annotations

from typing import Any

import pytest

from bot.settings import BotSettings
from bot.spend import WorstCase, unpriced_cap
from matrec.choices import Mode
from matrec.models import PriceOverride, Prices
from matrec.settings import EngineSettings

OUTPUT_ONLY = Prices(
    input_usd_per_mtok=0.0, output_usd_per_mtok=10.0, cache_write_usd_per_mtok=0.0, cache_read_usd_per_mtok=0.0
)
INPUT_ONLY = Prices(
    input_usd_per_mtok=2.0, output_usd_per_mtok=0.0, cache_write_usd_per_mtok=2.5, cache_read_usd_per_mtok=0.1
)
MAX_TOKENS = 16_000
BRACKET = "Wall bracket for a 20 kg pump, indoors, 500 a year"


def engine(**values: Any) -> EngineSettings:
    return EngineSettings.model_validate({"branch_max_tokens": MAX_TOKENS, "aggregate_max_tokens": MAX_TOKENS} | values)


def bot(**values: Any) -> BotSettings:
    return BotSettings.model_validate(values)


@pytest.mark.parametrize(("mode", "calls"), [(Mode.PARALLEL, 7), (Mode.NESTED, 19)])
def test_a_consultations_worst_case_is_every_call_at_its_max_tokens(mode: Mode, calls: int) -> None:
    worst = WorstCase(engine(), OUTPUT_ONLY)

    assert worst.consultation_usd(mode, photos=1, context=BRACKET) == pytest.approx(calls * MAX_TOKENS * 10.0 / 1e6)


def test_a_follow_ups_worst_case_is_one_answer_at_its_max_tokens() -> None:
    worst = WorstCase(engine(followup_max_tokens=8_000), OUTPUT_ONLY)

    assert worst.follow_up_usd(photos=2, texts=["the consultation", "why?"]) == pytest.approx(8_000 * 10.0 / 1e6)


def test_the_worst_case_input_grows_with_photos_and_text_at_the_cache_write_price() -> None:
    worst = WorstCase(engine(), INPUT_ONLY)
    one = worst.consultation_usd(Mode.PARALLEL, photos=1, context=BRACKET)

    assert worst.consultation_usd(Mode.PARALLEL, photos=3, context=BRACKET) > one
    assert worst.consultation_usd(Mode.PARALLEL, photos=1, context=BRACKET * 20) > one
    at_input_price = WorstCase(engine(), INPUT_ONLY.model_copy(update={"cache_write_usd_per_mtok": 2.0}))
    assert one == pytest.approx(at_input_price.consultation_usd(Mode.PARALLEL, photos=1, context=BRACKET) * 1.25)


def test_without_a_cap_any_model_is_fine() -> None:
    assert unpriced_cap(bot(), engine(model="claude-unlisted-9")) is None


@pytest.mark.parametrize("variable", ["MATREC_DAILY_CAP_USD", "MATREC_CHANNEL_DAILY_CAP_USD"])
def test_a_cap_with_an_unpriced_model_is_one_line_naming_the_variables(variable: str) -> None:
    problem = unpriced_cap(bot(**{variable: 10}), engine(model="claude-unlisted-9"))

    assert problem is not None and "\n" not in problem
    assert variable in problem and "claude-unlisted-9" in problem and "MATREC_PRICES__INPUT_USD_PER_MTOK" in problem


def test_a_cap_with_a_listed_model_or_a_price_override_is_fine() -> None:
    override = PriceOverride(input_usd_per_mtok=1.0, output_usd_per_mtok=5.0)
    assert unpriced_cap(bot(MATREC_DAILY_CAP_USD=10), engine()) is None
    assert unpriced_cap(bot(MATREC_DAILY_CAP_USD=10), engine(model="claude-unlisted-9", prices=override)) is None
