"""matrec: which material class suits this part? Six parallel Claude specialists, one verdict.

The public API: build a `Claude` adapter and an `Engine` once per process, then call
`Engine.evaluate(Part(...))` for a `Recommendation`, optionally watching `ProgressEvent`s.

The names below load on first use, so `import matrec` (and `matrec --help`) does not pay for
anthropic, Pillow and pydantic until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matrec.choices import CacheStrategy, Mode, Strategy
    from matrec.claude import Claude
    from matrec.engine import Engine, Part, RunOptions
    from matrec.errors import (
        BadInputError,
        ConfigError,
        ImageError,
        MatrecError,
        QuorumError,
        RunTimeoutError,
    )
    from matrec.followup import FollowUpReply, PriorTurn, render_consultation
    from matrec.images import PreparedImage
    from matrec.materials import MaterialClass
    from matrec.progress import BranchStatus, EventKind, ProgressEvent, RunSnapshot, StageStatus
    from matrec.results import BranchResult, Recommendation
    from matrec.settings import EngineSettings

_HOMES = {
    "BadInputError": "matrec.errors",
    "BranchResult": "matrec.results",
    "BranchStatus": "matrec.progress",
    "CacheStrategy": "matrec.choices",
    "Claude": "matrec.claude",
    "ConfigError": "matrec.errors",
    "Engine": "matrec.engine",
    "EngineSettings": "matrec.settings",
    "EventKind": "matrec.progress",
    "FollowUpReply": "matrec.followup",
    "ImageError": "matrec.errors",
    "MaterialClass": "matrec.materials",
    "MatrecError": "matrec.errors",
    "Mode": "matrec.choices",
    "Part": "matrec.engine",
    "PreparedImage": "matrec.images",
    "PriorTurn": "matrec.followup",
    "ProgressEvent": "matrec.progress",
    "QuorumError": "matrec.errors",
    "Recommendation": "matrec.results",
    "RunOptions": "matrec.engine",
    "RunSnapshot": "matrec.progress",
    "RunTimeoutError": "matrec.errors",
    "StageStatus": "matrec.progress",
    "Strategy": "matrec.choices",
    "render_consultation": "matrec.followup",
}

__all__ = [
    "BadInputError",
    "BranchResult",
    "BranchStatus",
    "CacheStrategy",
    "Claude",
    "ConfigError",
    "Engine",
    "EngineSettings",
    "EventKind",
    "FollowUpReply",
    "ImageError",
    "MaterialClass",
    "MatrecError",
    "Mode",
    "Part",
    "PreparedImage",
    "PriorTurn",
    "ProgressEvent",
    "QuorumError",
    "Recommendation",
    "RunOptions",
    "RunSnapshot",
    "RunTimeoutError",
    "StageStatus",
    "Strategy",
    "render_consultation",
]


if not TYPE_CHECKING:  # hidden from type checkers, so a misspelt name stays an error for them

    def __getattr__(name: str) -> Any:
        """Import a public name's module on first access, and keep the name for next time."""
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
