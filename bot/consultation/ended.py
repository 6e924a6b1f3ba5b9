"""What one consultation came to when its job ended: the metrics and one structured log line read it.

The log line is JSON on one line, prefixed `consultation ended`, so a log pipeline can parse it:

    consultation ended {"id": "...", "channel": "C...", "user": "U...", "outcome": "done",
                        "best": "metal", "calls": 7, "tokens": {...}, "cost_usd": 0.0123, "seconds": 4.2}

It holds ids and numbers only: no text a person wrote, no token (and the log's redaction applies).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from matrec.models import Prices
from matrec.results import BranchResult, Recommendation, TokenUsage

log = logging.getLogger(__name__)

LOG_PREFIX: Final = "consultation ended"
COST_DIGITS: Final = 6
SECONDS_DIGITS: Final = 3

Outcome = Literal["done", "failed", "rejected", "cancelled"]


@dataclass(frozen=True)
class Ended:
    """One consultation's end: who asked where, how it ended, and what its Claude calls took."""

    id: str
    channel: str
    user: str | None
    outcome: Outcome
    best: str | None
    calls: int
    tokens: TokenUsage
    cost_usd: float | None
    seconds: float
    branches: tuple[BranchResult, ...]

    @classmethod
    def of(
        cls,
        *,
        id: str,
        channel: str,
        user: str | None,
        outcome: Outcome,
        recommendation: Recommendation | None,
        branches: Sequence[BranchResult],
        prices: Prices | None,
        seconds: float,
    ) -> Ended:
        """From a recommendation when there is one, else from the branches that finished."""
        if recommendation is not None:
            usage = recommendation.usage
            return cls(
                id, channel, user, outcome, recommendation.best.value, usage.calls, usage.total,
                usage.cost_usd, seconds, tuple(recommendation.branches),
            )  # fmt: skip
        tokens = TokenUsage.total([branch.usage for branch in branches])
        cost = None if prices is None else round(tokens.cost_usd(prices), COST_DIGITS)
        return cls(id, channel, user, outcome, None, len(branches), tokens, cost, seconds, tuple(branches))

    def log_line(self) -> str:
        """The structured line: prefix, then JSON of ids and numbers."""
        fields = {
            "id": self.id,
            "channel": self.channel,
            "user": self.user,
            "outcome": self.outcome,
            "best": self.best,
            "calls": self.calls,
            "tokens": {
                "input": self.tokens.input_tokens,
                "output": self.tokens.output_tokens,
                "cache_read": self.tokens.cache_read_tokens,
                "cache_write": self.tokens.cache_write_tokens,
            },
            "cost_usd": self.cost_usd,
            "seconds": round(self.seconds, SECONDS_DIGITS),
        }
        return f"{LOG_PREFIX} {json.dumps(fields, separators=(', ', ': '))}"

    def log(self) -> None:
        """Write the structured line to the log."""
        log.info("%s", self.log_line())
