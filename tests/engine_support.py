"""Shared fixtures' building blocks: an engine wired to a running Claude emulator."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from PIL import Image

from emulators.claude import ClaudeEmulator
from matrec.choices import CacheStrategy
from matrec.claude import Claude
from matrec.engine import Engine
from matrec.progress import ProgressEvent
from matrec.settings import EngineSettings

KEY = "test-key"


def engine_settings(emulator: ClaudeEmulator, **overrides: Any) -> EngineSettings:
    """Settings pointing at the emulator, with fast retries and no caching unless asked."""
    values: dict[str, Any] = {
        "anthropic_api_key": KEY,
        "anthropic_base_url": emulator.base_url,
        "max_retries": 2,
        "request_timeout_s": 10.0,
        "cache": CacheStrategy.NONE,
    }
    values.update(overrides)
    return EngineSettings.model_validate(values)


@asynccontextmanager
async def running_engine(emulator: ClaudeEmulator, **overrides: Any) -> AsyncIterator[Engine]:
    """An Engine on the emulator; its HTTP client is closed afterwards."""
    settings = engine_settings(emulator, **overrides)
    claude = Claude.from_settings(settings)
    try:
        yield Engine(claude, settings)
    finally:
        await claude.aclose()


def jpeg_bytes(width: int = 640, height: int = 480, color: tuple[int, int, int] = (120, 130, 140)) -> bytes:
    """A plain JPEG photo of the given size."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class EventLog:
    """A ProgressSink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        """The event kinds, in order."""
        return [e.kind.value for e in self.events]
