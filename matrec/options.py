"""What a consultation is asked to do: the part, and the per-run choices."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from matrec.choices import CacheStrategy, Mode, Strategy
from matrec.materials import Dimension
from matrec.settings import EngineSettings

MAX_CONTEXT_CHARS = 4000


class Part(BaseModel):
    """What to analyse: a photo, a description, or both."""

    model_config = ConfigDict(frozen=True)

    image: bytes | None = None
    context: str = ""
    label: str = "part"


class RunOptions(BaseModel):
    """Per-consultation choices; `from_settings` fills in the configured defaults."""

    model_config = ConfigDict(frozen=True)

    strategy: Strategy
    mode: Mode = Mode.PARALLEL
    cache: CacheStrategy
    quorum: int = Field(ge=1, le=6)
    conditions: tuple[str, ...] = Field(min_length=1)
    weights: dict[Dimension, float]
    samples: int = Field(ge=1)

    @classmethod
    def from_settings(cls, settings: EngineSettings, **overrides: object) -> Self:
        """The settings' defaults, with `overrides` applied."""
        values: dict[str, object] = {
            "strategy": settings.strategy,
            "cache": settings.cache,
            "quorum": settings.quorum,
            "conditions": tuple(settings.conditions),
            "weights": dict(settings.weights),
            "samples": settings.vote_samples,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
