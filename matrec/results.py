"""What the engine returns: branch results, usage, timing and the recommendation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from matrec.choices import Mode, Strategy
from matrec.errors import CallFailure
from matrec.materials import MaterialClass
from matrec.models import Prices
from matrec.schema import BranchAnalysis, Confidence, ScreenedOut

_MTOK = 1_000_000


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class TokenUsage(_Result):
    """Tokens billed for one or more calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
        )

    def cost_usd(self, prices: Prices) -> float:
        """Estimated cost of these tokens at `prices`."""
        return (
            self.input_tokens * prices.input_usd_per_mtok
            + self.output_tokens * prices.output_usd_per_mtok
            + self.cache_write_tokens * prices.cache_write_usd_per_mtok
            + self.cache_read_tokens * prices.cache_read_usd_per_mtok
        ) / _MTOK

    @staticmethod
    def total(usages: list[TokenUsage]) -> TokenUsage:
        """The sum of `usages`."""
        return sum(usages, TokenUsage())


class BranchResult(_Result):
    """One specialist call's outcome: an analysis, or the reason there is none."""

    material: MaterialClass
    condition: str | None = None
    status: Literal["ok", "failed"]
    analysis: BranchAnalysis | None = None
    error: str | None = None
    failure: CallFailure | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    queued_s: float = 0.0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the branch produced an analysis."""
        return self.analysis is not None

    @property
    def suitability(self) -> int | None:
        """The specialist's 1-10 score, or None when the branch failed."""
        return self.analysis.suitability if self.analysis else None


class UsageReport(_Result):
    """Tokens and estimated cost of a consultation; `cost_usd` is None when the model has no price."""

    branches: TokenUsage
    aggregation: TokenUsage
    total: TokenUsage
    cost_usd: float | None
    calls: int
    model: str = ""


class Timing(_Result):
    """Where a consultation's time went, in seconds.

    `branch_path_s` is the longest branch measured from when it was ready, without time spent
    queueing for a concurrency slot: its wait for the cache primer (if any) plus its calls. So
    `critical_path_s` (that plus aggregation) is the least wall time the calls allowed, and never
    more than `wall_s`.
    """

    wall_s: float
    slowest_branch_s: float
    aggregation_s: float
    prepare_s: float
    prime_wait_s: float = 0.0  # the primer's time to first byte
    branch_path_s: float = 0.0

    @property
    def critical_path_s(self) -> float:
        """The least wall time the calls allowed: the longest branch path, then aggregation."""
        return self.branch_path_s + self.aggregation_s


class ImageInfo(_Result):
    """The image as it was sent to Claude."""

    media_type: str
    width: int
    height: int
    original_width: int
    original_height: int
    encoded_bytes: int
    sha256: str


class Recommendation(_Result):
    """The answer to a consultation: best class, runner-up, why, and how sure."""

    part: str
    best: MaterialClass
    runner_up: MaterialClass | None
    rationale: str
    confidence: Confidence
    scores: dict[MaterialClass, float | None]
    screened_out: list[ScreenedOut] = Field(default_factory=list)
    questions: list[str] = Field(default_factory=list)
    strategy: Strategy
    mode: Mode
    branches: list[BranchResult]
    missing: list[MaterialClass] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    usage: UsageReport
    timing: Timing
    image: ImageInfo | None = None  # the first photo (kept for one-photo readers)
    images: list[ImageInfo] = Field(default_factory=list)  # every photo, in order
    context: str = ""
