"""Engine configuration, read once from the environment and `.env` at start-up."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from matrec.materials import Dimension

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_CONDITIONS = (
    "nominal service: room temperature, dry, the stated load",
    "elevated temperature: sustained at the top of the plausible range for this part",
    "wet or corrosive: outdoor weather, salt spray or cleaning chemicals",
)


class Strategy(StrEnum):
    """How branch analyses become one recommendation."""

    CLAUDE = "claude"
    VOTE = "vote"
    WEIGHTED = "weighted"


class Mode(StrEnum):
    """Which calls a consultation makes."""

    PARALLEL = "parallel"
    NESTED = "nested"
    SINGLE = "single"


class CacheStrategy(StrEnum):
    """How the shared prompt prefix (system + image) is cached across parallel branches."""

    NONE = "none"
    PRIME = "prime"


class Prices(BaseModel):
    """USD per million tokens, used for the estimated cost of each consultation."""

    input_usd_per_mtok: float = 3.0
    output_usd_per_mtok: float = 15.0
    cache_write_usd_per_mtok: float = 3.75
    cache_read_usd_per_mtok: float = 0.30


PositiveFloat = Annotated[float, Field(gt=0)]


class EngineSettings(BaseSettings):
    """Everything the engine needs; env names are MATREC_<FIELD> unless noted."""

    model_config = SettingsConfigDict(
        env_prefix="MATREC_",
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
    )

    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_API_KEY", "anthropic_api_key")
    )
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_BASE_URL", "anthropic_base_url")
    )
    model: str = DEFAULT_MODEL
    concurrency: int = Field(default=8, ge=1, le=256)
    quorum: int = Field(default=4, ge=1, le=6)
    strategy: Strategy = Strategy.CLAUDE
    cache: CacheStrategy = CacheStrategy.PRIME
    branch_timeout_s: PositiveFloat = 90.0
    run_timeout_s: PositiveFloat = 300.0
    request_timeout_s: PositiveFloat = 60.0
    max_retries: int = Field(default=2, ge=0, le=10)
    branch_max_tokens: int = Field(default=2048, ge=256)
    aggregate_max_tokens: int = Field(default=2048, ge=256)
    max_image_edge_px: int = Field(default=1568, ge=64, le=8000)
    max_image_bytes: int = Field(default=25_000_000, ge=1)
    max_image_pixels: int = Field(default=100_000_000, ge=1)
    max_image_payload_bytes: int = Field(default=3_750_000, ge=10_000)
    conditions: list[str] = Field(default_factory=lambda: list(DEFAULT_CONDITIONS), min_length=1)
    weights: dict[Dimension, float] = Field(default_factory=lambda: {d: 1.0 for d in Dimension})
    vote_samples: int = Field(default=5, ge=1, le=25)
    prices: Prices = Field(default_factory=Prices)

    @field_validator("weights")
    @classmethod
    def _every_dimension_weighted(cls, weights: dict[Dimension, float]) -> dict[Dimension, float]:
        """Dimensions left out keep weight 1, so `{"cost": 3}` means "cost counts three times"."""
        if any(w < 0 for w in weights.values()):
            raise ValueError("weights must not be negative")
        return {d: weights.get(d, 1.0) for d in Dimension}
