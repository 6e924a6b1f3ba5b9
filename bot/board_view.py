"""What the board shows beyond the engine's snapshot: the team's feedback, what a re-run changed, links.

The job that renders a board gathers these from the store (`bot.memory`) and passes them in, so
the renderers in `bot.blocks` stay pure functions of their arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType

from matrec.materials import MaterialClass
from matrec.results import Recommendation


@dataclass(frozen=True)
class SimilarLink:
    """An earlier consultation of a similar part: who looked at it (a display name, never a mention)."""

    who: str
    when: date
    part: str
    outcome: str  # e.g. "the team chose polymer" or "matrec recommended metal"
    link: str | None = None  # a permalink to the earlier board, when known


def _no_choices() -> Mapping[MaterialClass, int]:
    return MappingProxyType({})


@dataclass(frozen=True)
class BoardView:
    """The board's surroundings: its consultation, photos, re-run changes, the team's feedback, links."""

    consultation_id: str | None
    photos: int = 1
    kind: str = "upload"  # "upload", "rerun" or "stress" (bot.store ConsultationKind values)
    changes: tuple[str, ...] = ()  # the requirements a re-run added
    previous: Recommendation | None = None  # a re-run's parent recommendation, to say what changed
    choices: Mapping[MaterialClass, int] = field(default_factory=_no_choices)  # each person's latest
    ratings: tuple[int, int] = (0, 0)  # (helpful, not helpful)
    similar: tuple[SimilarLink, ...] = ()
