"""What Claude is asked to return: the structured-output schemas.

One schema (`BranchAnalysis`) serves all six specialist branches, so the request prefix stays
identical across branches and can be cached. Numeric bounds reach the model only as description
text (the SDK moves them there); pydantic enforces them when the answer comes back, and an answer
that breaks them becomes a failed branch.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from matrec.materials import MaterialClass

Score = Annotated[int, Field(ge=1, le=10, description="1 = unsuitable, 10 = ideal for this part")]
Confidence = Literal["high", "medium", "low"]


def _at_most_three(items: list[str]) -> list[str]:
    return [item.strip() for item in items if item.strip()][:3]


ShortList = Annotated[
    list[str],
    Field(min_length=1, description="1 to 3 short items, most important first"),
    AfterValidator(_at_most_three),
]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CriterionScore(_Answer):
    """One of the specialist's own criteria for its class, scored for this part."""

    criterion: str = Field(description="the criterion's name exactly as listed in the brief")
    score: Score
    note: str = Field(description="one short clause: why this score")


class DimensionScores(_Answer):
    """Scores on the axes shared by every class, so classes can be weighed against each other."""

    performance: Score = Field(description="meets the load, stiffness, wear and function")
    environment: Score = Field(description="copes with the temperature, moisture, chemicals, UV")
    manufacturability: Score = Field(description="ease of making this geometry at the likely volume")
    cost: Score = Field(description="10 = cheapest plausible option for this part")
    weight: Score = Field(description="10 = lightest plausible option for this part")


class BranchAnalysis(_Answer):
    """A specialist's judgement of one material class for one part."""

    summary: str = Field(description="one sentence verdict for an engineer")
    suitability: Score
    recommended: bool = Field(description="would you put this class on the shortlist for this part")
    hard_screen: str | None = Field(
        description="if a hard requirement rules this class out, the requirement and why; else null"
    )
    strengths: ShortList
    concerns: ShortList
    example_grades: ShortList = Field(description="1 to 3 concrete grades, e.g. 6061-T6, PA66-GF30")
    processes: ShortList = Field(description="manufacturing processes that fit; say prototype or volume")
    assumptions: ShortList = Field(description="what you assumed about load, temperature, environment, volume")
    evidence: ShortList = Field(description="what in the photo or the text drove the judgement")
    criteria: list[CriterionScore] = Field(description="one entry per criterion in the brief")
    dimensions: DimensionScores


class ClassAnalysis(BranchAnalysis):
    """A `BranchAnalysis` that names its class, for answers that cover several classes at once."""

    material: MaterialClass


class ClassScore(_Answer):
    """A recalibrated score for one class."""

    material: MaterialClass
    score: Score
    note: str = Field(description="one short clause")


class ScreenedOut(_Answer):
    """A class ruled out by a hard requirement."""

    material: MaterialClass
    reason: str


class _Verdict(_Answer):
    best: MaterialClass
    runner_up: MaterialClass
    rationale: str = Field(description="2-3 sentences comparing the best class with the runner-up")
    confidence: Confidence
    questions: list[str] = Field(
        description="0-3 questions whose answers would change the choice (load, temperature, quantity)"
    )

    @model_validator(mode="after")
    def _distinct(self) -> _Verdict:
        if self.best == self.runner_up:
            raise ValueError("best and runner_up must be different classes")
        return self


class AggregateVerdict(_Verdict):
    """The aggregator's side-by-side comparison of the specialists' analyses."""

    scores: list[ClassScore] = Field(description="a recalibrated score for every assessed class")
    screened_out: list[ScreenedOut] = Field(description="classes a hard requirement rules out")


class SingleVerdict(_Verdict):
    """The single-prompt baseline: all six classes judged in one answer."""

    assessments: list[ClassAnalysis] = Field(description="one analysis per class, all six classes")
