"""What the evaluation report states, computed once from an `EvalResults` for the Markdown, JSON and plots.

Every figure comes from `matrec.eval.metrics` (`summarise`, `paired_difference`) with a fixed
seed, so the same results always give the same numbers. Arms are ordered so that single and
parallel sit side by side; the paired comparison puts every other claude-strategy mode against
single+claude on the cases both answered; the recalibration compares the specialists' own scores
with the aggregator's calibrated ones against the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from matrec.choices import Mode, Strategy
from matrec.eval.dataset import Case
from matrec.eval.metrics import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    MetricSummary,
    PairedResult,
    Prediction,
    mean_absolute_error,
    paired_difference,
    scenario_sensitivity,
    signed_bias,
    summarise,
    top_k_accuracy,
)
from matrec.eval.results import Arm, ArmResults, EvalResults, Outcome
from matrec.models import EFFORT_LEVELS

MODE_ORDER: Final = (Mode.SINGLE, Mode.PARALLEL, Mode.NESTED)  # single first: the baseline beside the panel
STRATEGY_ORDER: Final = (Strategy.CLAUDE, Strategy.VOTE, Strategy.WEIGHTED)


@dataclass(frozen=True)
class ArmSummary:
    """One arm's metrics as the report shows them."""

    arm: Arm
    label: str
    summary: MetricSummary
    calls_mean: float  # Claude calls per consultation (shared by the strategies of one mode)
    source: ArmResults  # the outcomes behind the figures

    @property
    def outcomes(self) -> list[Outcome]:
        """The arm's outcomes, in case then repetition order."""
        return self.source.outcomes


@dataclass(frozen=True)
class PairedComparison:
    """`challenger` minus `baseline` on the cases both answered: top-1 (fraction) and MAE (0-10)."""

    baseline: str
    challenger: str
    cases: int
    top1: PairedResult
    mae: PairedResult | None  # None without reference scores


@dataclass(frozen=True)
class Recalibration:
    """The specialists' own scores against the aggregator's calibrated ones, both against the reference.

    Computed over the same cells: (prediction, class) where the branch, the aggregator and the
    reference all give a score.
    """

    label: str
    cells: int
    branch_bias: float | None
    calibrated_bias: float | None
    branch_mae: float | None
    calibrated_mae: float | None
    branch_sensitivity: float | None
    calibrated_sensitivity: float | None
    mean_shift: float  # mean (calibrated - branch): negative means the aggregator lowered the scores
    mean_abs_shift: float  # how far recalibration moved a score, on average


@dataclass(frozen=True)
class ReportData:
    """Everything the report states, computed once for the Markdown, the JSON and the plots."""

    arms: list[ArmSummary]
    paired: list[PairedComparison]
    recalibration: list[Recalibration]

    def arm(self, label: str) -> ArmSummary:
        """The arm with this label; KeyError if absent."""
        for summary in self.arms:
            if summary.label == label:
                return summary
        raise KeyError(label)


def analyse(results: EvalResults, *, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> ReportData:
    """Every arm's summary, the paired comparisons against single+claude, and the recalibration."""
    arms = ordered_arms(results)
    several = _several(results)
    summaries = [
        ArmSummary(
            arm=found.arm,
            label=arm_label(found.arm, several),
            summary=summarise(
                found.predictions(), _answered(results.cases, found.predictions()), resamples=resamples, seed=seed
            ),
            calls_mean=sum(o.calls for o in found.outcomes) / len(found.outcomes),
            source=found,
        )
        for found in arms
        if found.outcomes
    ]
    paired: list[PairedComparison] = []
    for found in arms:
        if found.arm.strategy is Strategy.CLAUDE and found.arm.mode is not Mode.SINGLE and found.outcomes:
            comparison = _paired(results, found, several, resamples, seed)
            if comparison is not None:
                paired.append(comparison)
    recalibration = [r for found in arms if (r := _recalibration(results, found, several)) is not None]
    return ReportData(arms=summaries, paired=paired, recalibration=recalibration)


def ordered_arms(results: EvalResults) -> list[ArmResults]:
    """The arms by model, effort, strategy, then mode, so single and parallel rows sit side by side."""

    def key(found: ArmResults) -> tuple[int, int, int, int]:
        a = found.arm
        return (
            results.plan.models.index(a.model) if a.model in results.plan.models else len(results.plan.models),
            EFFORT_LEVELS.index(a.effort),
            STRATEGY_ORDER.index(a.strategy),
            MODE_ORDER.index(a.mode),
        )

    return sorted(results.arms, key=key)


def arm_label(arm: Arm, several: tuple[bool, bool]) -> str:
    """`parallel+claude`, with the effort and the model when the run had several of them."""
    several_efforts, several_models = several
    return arm.label + (f" · {arm.effort}" if several_efforts else "") + (f" · {arm.model}" if several_models else "")


def _several(results: EvalResults) -> tuple[bool, bool]:
    return len({a.arm.effort for a in results.arms}) > 1, len({a.arm.model for a in results.arms}) > 1


def _answered(cases: Sequence[Case], preds: Sequence[Prediction]) -> list[Case]:
    """The cases with at least one prediction: a run stopped early leaves the rest out of the bootstrap."""
    ids = {p.case_id for p in preds}
    return [case for case in cases if case.id in ids]


def _paired(
    results: EvalResults, challenger: ArmResults, several: tuple[bool, bool], resamples: int, seed: int
) -> PairedComparison | None:
    """`challenger` against single+claude at the same effort and model, on the cases both answered."""
    a = challenger.arm
    try:
        baseline = results.arm(Mode.SINGLE, Strategy.CLAUDE, a.effort, a.model)
    except KeyError:
        return None
    ids = {p.case_id for p in challenger.predictions()} & {p.case_id for p in baseline.predictions()}
    cases = [case for case in results.cases if case.id in ids]
    if not cases:
        return None
    mine = [p for p in challenger.predictions() if p.case_id in ids]
    theirs = [p for p in baseline.predictions() if p.case_id in ids]
    options: dict[str, Any] = {"resamples": resamples, "seed": seed}
    top1 = paired_difference(mine, theirs, cases, top_k_accuracy, **options)
    mae = None
    if mean_absolute_error(mine, cases) is not None and mean_absolute_error(theirs, cases) is not None:
        mae = paired_difference(mine, theirs, cases, mean_absolute_error, **options)
    return PairedComparison(
        baseline=arm_label(baseline.arm, several),
        challenger=arm_label(a, several),
        cases=len(cases),
        top1=top1,
        mae=mae,
    )


def _recalibration(results: EvalResults, found: ArmResults, several: tuple[bool, bool]) -> Recalibration | None:
    """Branch vs calibrated scores of a claude-strategy panel arm whose outcomes carry branch scores."""
    # One prompt has no aggregator: its per-class scores are its verdict, so there is nothing to compare.
    if found.arm.strategy is not Strategy.CLAUDE or found.arm.mode is Mode.SINGLE:
        return None
    if not any(o.branch_scores for o in found.outcomes):
        return None
    references = {case.id: case.scores_0_10() or {} for case in results.cases}
    branch: list[Prediction] = []
    calibrated: list[Prediction] = []
    shifts: list[float] = []
    for outcome in found.outcomes:
        pred = outcome.prediction
        shared = {c for c in outcome.branch_scores if c in outcome.calibrated_scores and c in references[pred.case_id]}
        branch.append(replace(pred, scores={c: outcome.branch_scores[c] for c in shared}))
        calibrated.append(replace(pred, scores={c: outcome.calibrated_scores[c] for c in shared}))
        shifts += [outcome.calibrated_scores[c] - outcome.branch_scores[c] for c in shared]
    if not shifts:
        return None
    cases = _answered(results.cases, branch)
    return Recalibration(
        label=arm_label(found.arm, several),
        cells=len(shifts),
        branch_bias=signed_bias(branch, cases),
        calibrated_bias=signed_bias(calibrated, cases),
        branch_mae=mean_absolute_error(branch, cases),
        calibrated_mae=mean_absolute_error(calibrated, cases),
        branch_sensitivity=scenario_sensitivity(branch, cases),
        calibrated_sensitivity=scenario_sensitivity(calibrated, cases),
        mean_shift=sum(shifts) / len(shifts),
        mean_abs_shift=sum(abs(s) for s in shifts) / len(shifts),
    )
