"""Shared fixtures' building blocks: an engine wired to a running Claude emulator."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from emulators.claude import ClaudeEmulator
from matrec.choices import CacheStrategy
from matrec.claude import Claude
from matrec.engine import Engine
from matrec.progress import ProgressEvent
from matrec.settings import EngineSettings

KEY = "test-key"
REPO_ROOT = Path(__file__).resolve().parents[1]
EMULATOR_START_TIMEOUT_S = 20.0


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


@asynccontextmanager
async def emulator_process(*arguments: str) -> AsyncIterator[str]:
    """`python -m emulators.claude` with these arguments, as its own process; yields its base URL
    (the first line it prints), terminated at the end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "emulators.claude", *arguments, stdout=asyncio.subprocess.PIPE, cwd=REPO_ROOT
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), EMULATOR_START_TIMEOUT_S)
        yield line.decode().strip()
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
