"""Small builders for engine values used by the pure-function tests."""

from __future__ import annotations

from matrec.materials import PROFILES, Dimension, MaterialClass
from matrec.results import BranchResult
from matrec.schema import BranchAnalysis, ClassAnalysis, CriterionScore, DimensionScores, SingleVerdict


def analysis(
    material: MaterialClass,
    score: int,
    *,
    recommended: bool | None = None,
    hard_screen: str | None = None,
    dims: dict[Dimension, int] | None = None,
) -> BranchAnalysis:
    """A specialist analysis whose every score is `score` unless `dims` says otherwise."""
    dimension_scores = {d.value: score for d in Dimension} | {d.value: v for d, v in (dims or {}).items()}
    return BranchAnalysis(
        summary=f"{material.value} scores {score}",
        suitability=score,
        recommended=score >= 6 if recommended is None else recommended,
        hard_screen=hard_screen,
        strengths=[f"{material.value} strength"],
        concerns=[f"{material.value} concern"],
        example_grades=[f"{material.value} grade"],
        processes=["machining"],
        assumptions=["room temperature"],
        evidence=["photo"],
        criteria=[CriterionScore(criterion=c, score=score, note="n") for c in PROFILES[material].criteria],
        dimensions=DimensionScores.model_validate(dimension_scores),
    )


def ok(material: MaterialClass, score: int, condition: str | None = None, **kwargs: object) -> BranchResult:
    """A successful branch."""
    return BranchResult(
        material=material,
        condition=condition,
        status="ok",
        analysis=analysis(material, score, **kwargs),  # type: ignore[arg-type]
    )


def failed(material: MaterialClass, reason: str = "Claude is overloaded") -> BranchResult:
    """A failed branch."""
    return BranchResult(material=material, status="failed", error=reason)


def single(scores: dict[MaterialClass, int], best: MaterialClass, runner_up: MaterialClass) -> SingleVerdict:
    """A single-prompt answer with the given per-class scores."""
    return SingleVerdict(
        best=best,
        runner_up=runner_up,
        rationale="side by side",
        confidence="medium",
        questions=["What load?"],
        assessments=[ClassAnalysis(material=m, **analysis(m, s).model_dump()) for m, s in scores.items()],
    )
