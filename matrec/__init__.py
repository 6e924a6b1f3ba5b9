"""matrec: which material class suits this part? Six parallel Claude specialists, one verdict.

The public API: build a `Claude` adapter and an `Engine` once per process, then call
`Engine.evaluate(Part(...))` for a `Recommendation`, optionally watching `ProgressEvent`s.
"""

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
from matrec.materials import MaterialClass
from matrec.progress import BranchStatus, EventKind, ProgressEvent, RunSnapshot, StageStatus
from matrec.results import BranchResult, Recommendation
from matrec.settings import CacheStrategy, EngineSettings, Mode, Strategy

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
    "ImageError",
    "MaterialClass",
    "MatrecError",
    "Mode",
    "Part",
    "ProgressEvent",
    "QuorumError",
    "Recommendation",
    "RunOptions",
    "RunSnapshot",
    "RunTimeoutError",
    "StageStatus",
    "Strategy",
]
