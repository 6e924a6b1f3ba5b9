"""What a consultation is asked to do: the part, and the per-run choices."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from matrec.choices import CacheStrategy, Mode, Strategy
from matrec.materials import Dimension
from matrec.settings import EngineSettings

MAX_CONTEXT_CHARS = 4000


class Part(BaseModel):
    """What to analyse: photos of one part (several angles), a description, or both.

    `Part(image=b)` is the one-photo form, kept for callers that have one: it becomes `images=(b,)`.
    """

    model_config = ConfigDict(frozen=True)

    images: tuple[bytes, ...] = ()
    context: str = ""
    label: str = "part"

    @model_validator(mode="before")
    @classmethod
    def _one_image(cls, data: Any) -> Any:
        if isinstance(data, dict) and "image" in data:
            data = dict(data)
            image = data.pop("image")
            if "images" in data and image is not None:
                raise ValueError("give either image or images, not both")
            if image is not None:
                data["images"] = (image,)
        return data

    @property
    def image(self) -> bytes | None:
        """The first photo, or None for a text-only part."""
        return self.images[0] if self.images else None


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
