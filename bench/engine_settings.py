"""Engine settings for a benchmark: the defaults, with only what the benchmark sets.

The environment and `.env` are ignored, so a MATREC_* variable left in a shell cannot change
what a benchmark measures.
"""

from __future__ import annotations

from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from bench.claude_process import KEY
from matrec.settings import EngineSettings


class _Defaults(EngineSettings):
    """EngineSettings read from the constructor's arguments only."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def engine_settings(base_url: str, **overrides: Any) -> EngineSettings:
    """The default EngineSettings pointed at the emulator, with `overrides` (field names) applied."""
    return _Defaults.model_validate({"anthropic_api_key": KEY, "anthropic_base_url": base_url, **overrides})
