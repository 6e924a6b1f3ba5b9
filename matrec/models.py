"""What matrec knows about each Claude model: list prices, whether it takes an effort level, its output cap.

Prices are USD per million tokens from Anthropic's model pages (checked 2026-12-01):

    model               input  output  cache write (5 min)  cache read
    claude-sonnet-5-5    2.00   10.00   2.50                 0.10   (cut from 0.20 on 2026-10-07)
    claude-sonnet-5      2.00   10.00   2.50                 0.20
    claude-opus-5-5      4.00   20.00   5.00                 0.20
    claude-opus-5        5.00   25.00   6.25                 0.50
    claude-haiku-4-5     1.00    5.00   1.25                 0.10

A model that is not in the table has no price: the estimate says so instead of guessing, unless
`MATREC_PRICES__*` gives one (an override always wins, field by field).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

Effort = Literal["low", "medium", "high", "xhigh", "max"]
EFFORT_LEVELS: Final[tuple[Effort, ...]] = ("low", "medium", "high", "xhigh", "max")

# Anthropic's standard multipliers of the input price, used when an override gives input but no cache price.
CACHE_WRITE_MULTIPLIER: Final = 1.25
CACHE_READ_MULTIPLIER: Final = 0.1


class Prices(BaseModel):
    """USD per million tokens, for the estimated cost of a consultation."""

    model_config = ConfigDict(frozen=True)

    input_usd_per_mtok: float
    output_usd_per_mtok: float
    cache_write_usd_per_mtok: float
    cache_read_usd_per_mtok: float


class PriceOverride(BaseModel):
    """`MATREC_PRICES__*`: explicit prices that win over the table, field by field."""

    model_config = ConfigDict(frozen=True)

    input_usd_per_mtok: float | None = None
    output_usd_per_mtok: float | None = None
    cache_write_usd_per_mtok: float | None = None
    cache_read_usd_per_mtok: float | None = None

    def apply(self, listed: Prices | None) -> Prices | None:
        """The listed prices with this override applied; None when neither gives input and output."""
        given = self.model_dump(exclude_none=True)
        if listed is not None:
            return listed.model_copy(update=given)
        if self.input_usd_per_mtok is None or self.output_usd_per_mtok is None:
            return None
        return Prices(
            input_usd_per_mtok=self.input_usd_per_mtok,
            output_usd_per_mtok=self.output_usd_per_mtok,
            cache_write_usd_per_mtok=self.cache_write_usd_per_mtok
            if self.cache_write_usd_per_mtok is not None
            else self.input_usd_per_mtok * CACHE_WRITE_MULTIPLIER,
            cache_read_usd_per_mtok=self.cache_read_usd_per_mtok
            if self.cache_read_usd_per_mtok is not None
            else self.input_usd_per_mtok * CACHE_READ_MULTIPLIER,
        )


@dataclass(frozen=True)
class ModelInfo:
    """One model's list prices and the request rules that matter to us."""

    prices: Prices
    takes_effort: bool  # output_config.effort is accepted (adaptive-thinking models)
    max_output_tokens: int  # thinking + answer


def _prices(input_usd: float, output_usd: float, write_usd: float, read_usd: float) -> Prices:
    return Prices(
        input_usd_per_mtok=input_usd,
        output_usd_per_mtok=output_usd,
        cache_write_usd_per_mtok=write_usd,
        cache_read_usd_per_mtok=read_usd,
    )


_SONNET_5_5 = ModelInfo(_prices(2.0, 10.0, 2.5, 0.10), takes_effort=True, max_output_tokens=128_000)
_SONNET_5 = ModelInfo(_prices(2.0, 10.0, 2.5, 0.20), takes_effort=True, max_output_tokens=128_000)
_OPUS_5_5 = ModelInfo(_prices(4.0, 20.0, 5.0, 0.20), takes_effort=True, max_output_tokens=128_000)
_OPUS_5 = ModelInfo(_prices(5.0, 25.0, 6.25, 0.50), takes_effort=True, max_output_tokens=128_000)
_HAIKU_4_5 = ModelInfo(_prices(1.0, 5.0, 1.25, 0.10), takes_effort=False, max_output_tokens=64_000)

MODELS: Final[Mapping[str, ModelInfo]] = {
    "claude-sonnet-5-5": _SONNET_5_5,
    "claude-sonnet-5": _SONNET_5,
    "claude-opus-5-5": _OPUS_5_5,
    "claude-opus-5": _OPUS_5,
    "claude-haiku-4-5": _HAIKU_4_5,
    "claude-haiku-4-5-20251001": _HAIKU_4_5,
}


def model_info(model: str) -> ModelInfo | None:
    """What we know of `model`, or None for a model not in the table."""
    return MODELS.get(model)


def lower_effort(effort: Effort) -> Effort:
    """The next lower effort level (low stays low)."""
    return EFFORT_LEVELS[max(EFFORT_LEVELS.index(effort) - 1, 0)]
