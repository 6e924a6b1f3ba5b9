"""The closed sets of choices a consultation takes: strategy, mode, caching (no pydantic here, so the
CLI can offer them before anything heavy is imported)."""

from __future__ import annotations

from enum import StrEnum


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
