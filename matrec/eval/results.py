"""What an evaluation run produced: the plan, every prediction per arm, costs, and what went wrong.

`EvalResults` is the contract between the runner (which fills it) and the report (which reads it).
It is plain pydantic data, so it round-trips through JSON (`to_json` / `from_json`) and a report
can be rebuilt from a saved run without calling Claude again.

An *arm* is one predictor: (mode, strategy, effort, model). Strategies of one mode share their
branch calls, so their predictions for a case come from the same answers; a consultation that gave
no recommendation is a `Prediction` with `best` None in every arm it feeds.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from matrec.choices import Mode, Strategy
from matrec.eval.dataset import Case
from matrec.eval.metrics import Prediction
from matrec.materials import MaterialClass
from matrec.models import Effort


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class EvalPlan(_Frozen):
    """What to run: every case x mode x effort x model x repetition; strategies come from the same calls."""

    dataset: Path
    modes: tuple[Mode, ...] = (Mode.SINGLE, Mode.PARALLEL)
    strategies: tuple[Strategy, ...] = (Strategy.CLAUDE, Strategy.VOTE, Strategy.WEIGHTED)
    efforts: tuple[Effort, ...] = ("medium",)
    models: tuple[str, ...] = ("claude-sonnet-5-5",)
    repetitions: int = Field(default=1, ge=1)


class Consultation(_Frozen):
    """One consultation of a plan: a case, in one mode, at one effort, on one model, one repetition.

    `strategy` is how it runs: `claude` feeds every strategy of parallel and nested mode (vote and
    weighted are computed from its branches), `weighted` does the same without the aggregator call
    when `claude` is not asked for. In single mode `vote` is a consultation of its own (it votes
    over `vote_samples` answers, so it needs those calls); `claude` there feeds `weighted` too.
    """

    case_id: str
    mode: Mode
    strategy: Strategy
    effort: Effort
    model: str
    repetition: int


def feeds(mode: Mode, run_as: Strategy, strategies: tuple[Strategy, ...]) -> list[Strategy]:
    """The plan's strategies a consultation run as `run_as` in `mode` answers for."""
    if mode is Mode.SINGLE and run_as is Strategy.VOTE:
        return [Strategy.VOTE]
    return [s for s in strategies if not (mode is Mode.SINGLE and s is Strategy.VOTE)]


def plan_consultations(plan: EvalPlan, case_ids: list[str]) -> list[Consultation]:
    """Every consultation `plan` makes, case by case, repetition by repetition."""
    runs: list[tuple[Mode, Strategy]] = []
    for mode in plan.modes:
        if mode is Mode.SINGLE:
            if set(plan.strategies) - {Strategy.VOTE}:
                runs.append((mode, Strategy.CLAUDE))
            if Strategy.VOTE in plan.strategies:
                runs.append((mode, Strategy.VOTE))
        else:
            runs.append((mode, Strategy.CLAUDE if Strategy.CLAUDE in plan.strategies else Strategy.WEIGHTED))
    return [
        Consultation(case_id=case_id, mode=mode, strategy=strategy, effort=effort, model=model, repetition=rep)
        for case_id in case_ids
        for rep in range(plan.repetitions)
        for model in plan.models
        for effort in plan.efforts
        for mode, strategy in runs
    ]


class Estimate(_Frozen):
    """The expected calls, tokens and cost of a plan, before anything is spent.

    `usd` is None when a model of the plan has no price (`unpriced` names it); `note` states the
    assumptions (thinking per effort, answer sizes, caching) in one paragraph.
    """

    consultations: int
    calls: int
    input_tokens: int  # uncached input, cache writes and reads included, images included
    image_tokens: int
    output_tokens: int  # answers and thinking
    thinking_tokens: int
    usd: float | None
    unpriced: list[str] = Field(default_factory=list)
    note: str = ""

    def headline(self) -> str:
        """`about N calls, about $X (thinking and image tokens included)`, or the missing price."""
        cost = (
            f"about ${self.usd:,.2f}"
            if self.usd is not None
            else "cost unknown: " + ", ".join(f"no price for {m}" for m in self.unpriced)
        )
        return f"about {self.calls:,} calls, {cost} (thinking and image tokens included)"


class Arm(_Frozen):
    """One predictor: a mode with a strategy, at one effort, on one model."""

    mode: Mode
    strategy: Strategy
    effort: Effort
    model: str

    @property
    def label(self) -> str:
        """`parallel+claude`, with effort and model appended by the report when several were run."""
        return f"{self.mode.value}+{self.strategy.value}"


class Outcome(_Frozen):
    """One prediction with what the report shows beside the metrics."""

    prediction: Prediction
    # The specialists' own suitability per class (mean over operating conditions in nested mode),
    # before any aggregation: the "uncalibrated" side of the recalibration plot.
    branch_scores: dict[MaterialClass, float] = Field(default_factory=dict)
    # The strategy's final scores (Claude's recalibrated ones for `claude`); equal to prediction.scores.
    calibrated_scores: dict[MaterialClass, float] = Field(default_factory=dict)
    failure: str | None = None  # why there is no recommendation (best is None)
    cached: bool = False  # read from the result cache rather than run now
    calls: int = 0  # Claude calls the consultation made (shared by the strategies it feeds)


class ArmResults(_Frozen):
    """Every outcome of one arm, in case then repetition order."""

    arm: Arm
    outcomes: list[Outcome]

    def predictions(self) -> list[Prediction]:
        """The arm's predictions, as the metrics take them."""
        return [o.prediction for o in self.outcomes]


class Failure(_Frozen):
    """A consultation that gave no recommendation, and why (its predictions have best None)."""

    case_id: str
    mode: Mode
    effort: Effort
    model: str
    repetition: int
    reason: str


class EvalResults(_Frozen):
    """An evaluation run: plan, cases, per-arm outcomes, cost estimate against actual, and failures."""

    plan: EvalPlan
    cases: list[Case]
    started: datetime
    finished: datetime
    matrec_version: str
    prompt_hash: str  # sha256 over the prompt files (and the grounding table they embed)
    emulated: bool  # answered by a loopback emulator: scripted, saying nothing about quality
    base_url: str | None = None
    estimate: Estimate
    actual_cost_usd: float | None  # None when a model has no price
    actual_calls: int  # calls made now (cached consultations made none)
    consultations: int  # consultations in the plan
    consultations_run: int  # run now
    consultations_cached: int  # read from the cache
    arms: list[ArmResults]
    failures: list[Failure] = Field(default_factory=list)
    stopped: str | None = None  # why the run stopped early (max cost, interrupted); None when complete

    def arm(self, mode: Mode, strategy: Strategy, effort: Effort | None = None, model: str | None = None) -> ArmResults:
        """The arm with this mode and strategy (and effort and model, when several were run); KeyError if absent."""
        for found in self.arms:
            a = found.arm
            if (
                a.mode is mode
                and a.strategy is strategy
                and (effort is None or a.effort == effort)
                and (model is None or a.model == model)
            ):
                return found
        raise KeyError(f"no arm {mode.value}+{strategy.value} effort={effort} model={model}")

    def to_json(self) -> str:
        """The whole run as JSON (`from_json` reads it back)."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> Self:
        """A run saved with `to_json`."""
        return cls.model_validate_json(text)
