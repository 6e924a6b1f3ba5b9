"""A nudge: one thing in a request that moves one class's score, and the words the answer cites for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Dimension = Literal["performance", "environment", "manufacturability", "cost", "weight"]

DIMENSIONS: Final[tuple[Dimension, ...]] = ("performance", "environment", "manufacturability", "cost", "weight")
MIN_SCORE: Final = 1
MAX_SCORE: Final = 10


@dataclass(frozen=True)
class Nudge:
    """`delta` points for `material` on `dimension` (and on its overall suitability), because of `cause`."""

    material: str
    delta: int
    dimension: Dimension
    cause: str

    def cited(self) -> str:
        """The cause with its effect, as the answer's evidence shows it."""
        return f"{self.cause} ({self.delta:+d})"


def clamp_score(score: int) -> int:
    """A score within the schema's 1-10."""
    return max(MIN_SCORE, min(MAX_SCORE, score))
