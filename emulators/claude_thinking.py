"""How much the emulated Claude thinks: an ASSUMED heavy-tailed distribution, deterministic per seed.

Anthropic's docs say adaptive thinking decides per request whether and how much to think, that
effort is the main control (lower effort may skip thinking on simple problems), and that thinking
is billed as output tokens and counts toward `max_tokens`. No doc gives volumes, so these are the
emulator's assumptions, written down here and in the constants below:

    effort   median thinking tokens   P(no thinking)   p90 (x3.17)   p99 (x8.12)
    low             120                    40%              380           974
    medium          500                    15%            1,584         4,057
    high          1,500                     0%            4,753        12,172
    xhigh         3,000                     0%            9,507        24,345
    max           6,000                     0%           19,014        48,690

A request that thinks draws lognormal(ln(median), sigma 0.9) tokens; with probability 2% the draw
is multiplied by 5 (a "long think"); the result is at least 1. The percentiles above are of the
lognormal part alone; the long-think tail makes the real p99 longer still. Manual thinking
(`{"type": "enabled", "budget_tokens": B}`, Haiku 4.5) always thinks, with median 0.4 x B, capped
at B.

Determinism: the emulator owns one `random.Random(seed)`. Each request takes one 64-bit draw from
it when it arrives (`ThinkingDraws.next_seed`, in arrival order, before any await), and every
random choice about that request comes from its own `random.Random(request_seed)`. So a run with
the same seed and the same arrival order thinks the same amounts, however the handlers interleave.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Final

from emulators.claude_models import Effort

MEDIAN_THINKING_TOKENS: Final[Mapping[Effort, int]] = {
    "low": 120,
    "medium": 500,
    "high": 1500,
    "xhigh": 3000,
    "max": 6000,
}
SKIP_THINKING_PROBABILITY: Final[Mapping[Effort, float]] = {
    "low": 0.40,
    "medium": 0.15,
    "high": 0.0,
    "xhigh": 0.0,
    "max": 0.0,
}
THINKING_LOG_SIGMA: Final = 0.9
LONG_THINK_PROBABILITY: Final = 0.02
LONG_THINK_FACTOR: Final = 5
MANUAL_MEDIAN_SHARE_OF_BUDGET: Final = 0.4
MIN_THINKING_TOKENS: Final = 1
REQUEST_SEED_BITS: Final = 64


class ThinkingDraws:
    """The emulator's own random stream: one seed per arriving request."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed)

    def next_seed(self) -> int:
        """The seed of the next request to arrive."""
        return self._rng.getrandbits(REQUEST_SEED_BITS)


def _lognormal(rng: random.Random, median: float) -> int:
    tokens = rng.lognormvariate(math.log(median), THINKING_LOG_SIGMA)
    if rng.random() < LONG_THINK_PROBABILITY:
        tokens *= LONG_THINK_FACTOR
    return max(MIN_THINKING_TOKENS, round(tokens))


def adaptive_thinking_tokens(request_seed: int, effort: Effort) -> int:
    """Thinking tokens of one adaptive-thinking request at `effort` (0: it chose not to think)."""
    rng = random.Random(request_seed)
    if rng.random() < SKIP_THINKING_PROBABILITY[effort]:
        return 0
    return _lognormal(rng, MEDIAN_THINKING_TOKENS[effort])


def manual_thinking_tokens(request_seed: int, budget_tokens: int) -> int:
    """Thinking tokens of one request with a manual budget: never above the budget."""
    rng = random.Random(request_seed)
    return min(budget_tokens, _lognormal(rng, budget_tokens * MANUAL_MEDIAN_SHARE_OF_BUDGET))
