"""Engine configuration, read once from the environment and `.env` at start-up.

Effort per call kind (`output_config.effort`): Claude 5.x thinks adaptively, and effort is the
main control of how much. Anthropic's effort guidance puts `medium`/`low` for latency-sensitive
work and `high` (the API default) where quality matters most. A consultation is interactive (an
engineer watches the board fill in), so branches, the aggregator and the single-prompt baseline
all default to `medium`: six branches in parallel wait for the slowest one's thinking, and a
shorter thinking tail is what keeps that wait short. Raise `MATREC_AGGREGATE_EFFORT=high` to
spend more on the one call that decides the answer; `matrec eval` re-sweeps effort as the docs
advise. A follow-up question in a thread is chat, the latency-sensitive case the docs name, so
it defaults to `low` (`MATREC_FOLLOWUP_EFFORT`).

`max_tokens` is a hard limit on thinking plus the answer, so the defaults leave room for the
heavy tail of thinking (see emulators/claude_thinking.py for the distribution they are sized
against); a call cut off at the limit is retried once with twice the budget before it fails.

Claude's limits: `MATREC_CONCURRENCY` bounds calls in flight. Where a shared budget is used (the
bot: in its database) it is the number for every instance together, as are the optional per-minute
limits `MATREC_CLAUDE_REQUESTS_PER_MINUTE`, `MATREC_CLAUDE_INPUT_TOKENS_PER_MINUTE` and
`MATREC_CLAUDE_OUTPUT_TOKENS_PER_MINUTE` (unset: only the limits Anthropic reports in its
`anthropic-ratelimit-*` headers). `MATREC_CLAUDE_LEASE_TTL_S` is how long a crashed instance's
calls keep their slots.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import pydantic
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from matrec.choices import CacheStrategy, Strategy
from matrec.materials import Dimension
from matrec.models import Effort, PriceOverride, Prices, model_info

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_CONDITIONS = (
    "nominal service: room temperature, dry, the stated load",
    "elevated temperature: sustained at the top of the plausible range for this part",
    "wet or corrosive: outdoor weather, salt spray or cleaning chemicals",
)
ENV_PREFIX = "MATREC_"


PositiveFloat = Annotated[float, Field(gt=0)]


def parse_weights(text: str) -> dict[Dimension, float]:
    """`cost=3,weight=2` or `{"cost": 3}`; dimensions left out keep weight 1. Raises ValueError."""
    text = text.strip()
    given: dict[str, Any]
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON ({error.msg})") from None
        if not isinstance(loaded, dict):
            raise ValueError('expected a JSON object such as {"cost": 3}')
        given = loaded
    else:
        given = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"expected NAME=NUMBER, got {item!r}")
            given[name.strip()] = value.strip()
    names = ", ".join(d.value for d in Dimension)
    weights = {d: 1.0 for d in Dimension}
    for name, value in given.items():
        try:
            dimension = Dimension(name)
        except ValueError:
            raise ValueError(f"unknown dimension {name!r}; use {names}") from None
        try:
            weights[dimension] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: {value!r} is not a number") from None
        if weights[dimension] < 0:
            raise ValueError(f"{name}: weights must not be negative")
    return weights


def parse_conditions(text: str) -> list[str]:
    """A JSON list of strings, or conditions separated by `;`. Raises ValueError."""
    text = text.strip()
    if text.startswith("["):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON ({error.msg})") from None
        if not isinstance(loaded, list) or not all(isinstance(c, str) for c in loaded):
            raise ValueError("expected a JSON list of strings") from None
        conditions = [c.strip() for c in loaded]
    else:
        conditions = [c.strip() for c in text.split(";")]
    conditions = [c for c in conditions if c]
    if not conditions:
        raise ValueError("give at least one operating condition")
    return conditions


class EngineSettings(BaseSettings):
    """Everything the engine needs; env names are MATREC_<FIELD> unless noted."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
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
    concurrency: int = Field(default=8, ge=1, le=256)  # organisation-wide with a shared budget
    claude_requests_per_minute: int | None = Field(default=None, ge=1)
    claude_input_tokens_per_minute: int | None = Field(default=None, ge=1)
    claude_output_tokens_per_minute: int | None = Field(default=None, ge=1)
    claude_lease_ttl_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    quorum: int = Field(default=4, ge=1, le=6)
    strategy: Strategy = Strategy.CLAUDE
    cache: CacheStrategy = CacheStrategy.PRIME
    prime_wait_s: float = Field(default=1.5, ge=0)
    branch_timeout_s: PositiveFloat = 90.0
    run_timeout_s: PositiveFloat = 300.0
    request_timeout_s: PositiveFloat = 60.0
    max_retries: int = Field(default=2, ge=0, le=10)
    branch_effort: Effort = "medium"
    aggregate_effort: Effort = "medium"
    single_effort: Effort = "medium"
    followup_effort: Effort = "low"
    branch_max_tokens: int = Field(default=16_000, ge=1024)
    aggregate_max_tokens: int = Field(default=16_000, ge=1024)
    single_max_tokens: int = Field(default=32_000, ge=1024)
    followup_max_tokens: int = Field(default=8_000, ge=1024)  # thinking + the answer
    followup_timeout_s: PositiveFloat = 60.0  # to the first words of a follow-up answer, retries included
    max_consultations: int = Field(default=4, ge=1, le=256)
    max_decodes: int = Field(default=2, ge=1, le=64)
    max_image_edge_px: int = Field(default=1568, ge=64, le=8000)
    max_image_bytes: int = Field(default=25_000_000, ge=1)
    max_image_pixels: int = Field(default=100_000_000, ge=1)
    max_image_payload_bytes: int = Field(default=3_750_000, ge=10_000)
    max_photos: int = Field(default=10, ge=1, le=100)  # per part; the API takes at most 100 images a request
    max_request_image_bytes: int = Field(default=22_000_000, ge=10_000, le=24_000_000)  # all photos of one request
    conditions: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_CONDITIONS), min_length=1)
    weights: Annotated[dict[Dimension, float], NoDecode] = Field(default_factory=lambda: {d: 1.0 for d in Dimension})
    vote_samples: int = Field(default=5, ge=1, le=25)
    prices: PriceOverride = Field(default_factory=PriceOverride)

    @field_validator("anthropic_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL such as https://api.anthropic.com, got {value!r}")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError(f"the port in {value!r} is not a number") from None
        return value.strip()

    @field_validator("conditions", mode="before")
    @classmethod
    def _conditions(cls, value: object) -> object:
        return parse_conditions(value) if isinstance(value, str) else value

    @field_validator("weights", mode="before")
    @classmethod
    def _weights_text(cls, value: object) -> object:
        return parse_weights(value) if isinstance(value, str) else value

    @field_validator("weights")
    @classmethod
    def _every_dimension_weighted(cls, weights: dict[Dimension, float]) -> dict[Dimension, float]:
        """Dimensions left out keep weight 1, so `{"cost": 3}` means "cost counts three times"."""
        if any(w < 0 for w in weights.values()):
            raise ValueError("weights must not be negative")
        return {d: weights.get(d, 1.0) for d in Dimension}

    @property
    def price_table(self) -> Prices | None:
        """The prices for `model`, with `MATREC_PRICES__*` applied; None for a model we have no price for."""
        info = model_info(self.model)
        return self.prices.apply(info.prices if info else None)


def env_name(settings_type: type[BaseSettings], loc: tuple[int | str, ...]) -> str:
    """The environment variable behind a validation error's location, e.g. MATREC_WEIGHTS."""
    if not loc:
        return "a setting"
    field = settings_type.model_fields.get(str(loc[0]))
    alias = field.validation_alias if field else None
    if field is None and any(_is_alias(f.validation_alias, str(loc[0])) for f in settings_type.model_fields.values()):
        head = str(loc[0])  # the error names the variable itself (an alias such as ANTHROPIC_BASE_URL)
    elif isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        head = alias.choices[0]
    elif isinstance(alias, str):
        head = alias
    else:
        prefix = settings_type.model_config.get("env_prefix", "")
        head = f"{prefix}{loc[0]}".upper()
    nested = [str(part).upper() for part in loc[1:] if isinstance(part, str)]
    return "__".join([head, *nested])


def settings_error(settings_type: type[BaseSettings], error: pydantic.ValidationError | SettingsError) -> str:
    """One line naming the variable to fix, for a settings class that failed to load."""
    if isinstance(error, SettingsError):
        field = _field_in(str(error), settings_type.model_fields)
        name = env_name(settings_type, (field,)) if field else "a setting"
        return f"{name} could not be read: {error}"
    first = error.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if not first["loc"]:
        return message  # a check across settings names its variables itself
    return f"{env_name(settings_type, tuple(first['loc']))}: {message}"


def _is_alias(alias: object, name: str) -> bool:
    if isinstance(alias, AliasChoices):
        return name in alias.choices
    return alias == name


def _field_in(text: str, fields: Mapping[str, object]) -> str | None:
    return next((name for name in fields if f'"{name}"' in text), None)
