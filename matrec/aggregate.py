"""Turning branch analyses into one verdict: the deterministic strategies and checks on Claude's.

`claude` (the aggregator call itself lives in the engine) is validated here; `vote` and
`weighted` are pure functions of the analyses, so they cost no extra call and give the same
answer for the same input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean

from matrec.materials import CLASS_ORDER, Dimension, MaterialClass
from matrec.results import BranchResult
from matrec.schema import AggregateVerdict, Confidence, ScreenedOut, SingleVerdict

HARD_SCREEN_CAP = 3.0
WEIGHTED_HIGH_MARGIN = 1.5
WEIGHTED_MEDIUM_MARGIN = 0.5
VOTE_HIGH_SHARE = 0.8
VOTE_MEDIUM_SHARE = 0.5


class InvalidVerdictError(ValueError):
    """The aggregator's answer names a class that was not assessed, or misses the assessed ones."""


@dataclass(frozen=True)
class ClassSummary:
    """One class's analyses combined across operating conditions (one condition in parallel mode)."""

    material: MaterialClass
    suitability: float
    dimensions: dict[Dimension, float]
    recommended_votes: int
    conditions_ok: int
    hard_screen: str | None


@dataclass(frozen=True)
class Verdict:
    """A strategy's answer, before it is dressed as a Recommendation."""

    best: MaterialClass
    runner_up: MaterialClass | None
    rationale: str
    confidence: Confidence
    scores: dict[MaterialClass, float | None]
    screened_out: list[ScreenedOut] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def summarize(branches: Sequence[BranchResult]) -> dict[MaterialClass, ClassSummary]:
    """Per-class summaries of the successful branches, in class order."""
    summaries: dict[MaterialClass, ClassSummary] = {}
    for material in CLASS_ORDER:
        analyses = [b.analysis for b in branches if b.material == material and b.analysis is not None]
        if not analyses:
            continue
        dims = {d: fmean(getattr(a.dimensions, d.value) for a in analyses) for d in Dimension}
        screens = [a.hard_screen for a in analyses if a.hard_screen]
        summaries[material] = ClassSummary(
            material=material,
            suitability=fmean(a.suitability for a in analyses),
            dimensions=dims,
            recommended_votes=sum(1 for a in analyses if a.recommended),
            conditions_ok=len(analyses),
            hard_screen=screens[0] if screens else None,
        )
    return summaries


def _all_scores(known: Mapping[MaterialClass, float]) -> dict[MaterialClass, float | None]:
    return {m: (round(known[m], 1) if m in known else None) for m in CLASS_ORDER}


def _ranked(keys: Mapping[MaterialClass, tuple[float, ...]]) -> list[MaterialClass]:
    """Classes by descending key; ties fall to class order."""
    return sorted(keys, key=lambda m: (*(-k for k in keys[m]), CLASS_ORDER.index(m)))


def _screens(summaries: Mapping[MaterialClass, ClassSummary]) -> list[ScreenedOut]:
    return [ScreenedOut(material=s.material, reason=s.hard_screen) for s in summaries.values() if s.hard_screen]


def weighted(branches: Sequence[BranchResult], weights: Mapping[Dimension, float]) -> Verdict:
    """Deterministic: a weighted mean of the shared dimension scores; hard-screened classes capped."""
    summaries = summarize(branches)
    total_weight = sum(max(w, 0.0) for w in weights.values()) or 1.0
    scores: dict[MaterialClass, float] = {}
    for material, summary in summaries.items():
        score = sum(max(weights.get(d, 0.0), 0.0) * summary.dimensions[d] for d in Dimension) / total_weight
        scores[material] = min(score, HARD_SCREEN_CAP) if summary.hard_screen else score
    order = _ranked({m: (scores[m], summaries[m].suitability) for m in scores})
    best, runner_up = order[0], (order[1] if len(order) > 1 else None)
    margin = scores[best] - scores[runner_up] if runner_up else scores[best]
    confidence: Confidence = (
        "high" if margin >= WEIGHTED_HIGH_MARGIN else "medium" if margin >= WEIGHTED_MEDIUM_MARGIN else "low"
    )
    if confidence == "high" and len(summaries) < len(CLASS_ORDER):
        confidence = "medium"
    shown = ", ".join(f"{d.value} {weights.get(d, 0.0):g}" for d in Dimension)
    rationale = f"Weighted score of the shared dimensions (weights: {shown}): " + _compare(
        best, runner_up, scores, summaries
    )
    return Verdict(best, runner_up, rationale, confidence, _all_scores(scores), _screens(summaries))


def _compare(
    best: MaterialClass,
    runner_up: MaterialClass | None,
    scores: Mapping[MaterialClass, float],
    summaries: Mapping[MaterialClass, ClassSummary],
) -> str:
    if runner_up is None:
        return f"{best.value} {scores[best]:.1f} is the only class assessed."
    a, b = summaries[best], summaries[runner_up]
    ahead = [d.value for d in Dimension if a.dimensions[d] > b.dimensions[d]]
    behind = [d.value for d in Dimension if a.dimensions[d] < b.dimensions[d]]
    text = f"{best.value} {scores[best]:.1f} vs {runner_up.value} {scores[runner_up]:.1f}."
    if ahead:
        text += f" {best.value.capitalize()} leads on {', '.join(ahead)}"
        text += f"; {runner_up.value} leads on {', '.join(behind)}." if behind else "."
    elif behind:
        text += f" {runner_up.value.capitalize()} leads on {', '.join(behind)} but is held back by a screen."
    return text


def vote(branches: Sequence[BranchResult]) -> Verdict:
    """Majority vote over branch verdicts: each successful branch that recommends its class is a vote.

    Tie rule: more votes wins; equal votes go to the higher mean suitability, then class order.
    """
    summaries = summarize(branches)
    votes = {m: s.recommended_votes for m, s in summaries.items()}
    order = _ranked({m: (votes[m], summaries[m].suitability) for m in summaries})
    best, runner_up = order[0], (order[1] if len(order) > 1 else None)
    notes: list[str] = []
    cast = sum(votes.values())
    if cast == 0:
        notes.append("No specialist recommended its own class; the highest suitability decided.")
    lead = votes[best] - (votes[runner_up] if runner_up else 0)
    confidence: Confidence = "high" if lead >= 2 or (cast and lead == votes[best]) else "medium" if lead else "low"
    tally = ", ".join(f"{m.value} {votes[m]}/{summaries[m].conditions_ok}" for m in order)
    rationale = (
        f"Majority vote over the specialists' verdicts (votes/analyses: {tally}); "
        "ties go to the higher mean suitability, then class order. " + _vote_reason(best, runner_up, votes, summaries)
    )
    scores = {m: s.suitability for m, s in summaries.items()}
    return Verdict(best, runner_up, rationale, confidence, _all_scores(scores), _screens(summaries), notes=notes)


def _vote_reason(
    best: MaterialClass,
    runner_up: MaterialClass | None,
    votes: Mapping[MaterialClass, int],
    summaries: Mapping[MaterialClass, ClassSummary],
) -> str:
    if runner_up is None:
        return f"{best.value} is the only class assessed."
    if votes[best] > votes[runner_up]:
        return f"{best.value} has more votes than {runner_up.value}."
    return (
        f"{best.value} and {runner_up.value} tie on votes; {best.value} has the higher mean suitability "
        f"({summaries[best].suitability:.1f} vs {summaries[runner_up].suitability:.1f})."
    )


def vote_samples(samples: Sequence[SingleVerdict]) -> Verdict:
    """Majority vote over K answers to the same all-classes question.

    Each sample's `best` is one vote. Tie rule: equal votes go to the higher mean score across
    samples, then class order.
    """
    if not samples:
        raise ValueError("vote_samples needs at least one sample")
    votes = {m: sum(1 for s in samples if s.best == m) for m in CLASS_ORDER}
    means = {m: fmean(_sample_score(s, m) for s in samples) for m in CLASS_ORDER}
    order = _ranked({m: (votes[m], means[m]) for m in CLASS_ORDER})
    best, runner_up = order[0], order[1]
    share = votes[best] / len(samples)
    confidence: Confidence = "high" if share >= VOTE_HIGH_SHARE else "medium" if share > VOTE_MEDIUM_SHARE else "low"
    tally = ", ".join(f"{m.value} {votes[m]}" for m in order if votes[m])
    rationale = (
        f"Majority vote over {len(samples)} independent answers to the same question ({tally}); ties go "
        f"to the higher mean score, then class order. {best.value} won {votes[best]} of {len(samples)}; "
        f"{runner_up.value} is next (mean score {means[runner_up]:.1f} vs {means[best]:.1f})."
    )
    questions = list(dict.fromkeys(q for s in samples for q in s.questions))[:3]
    return Verdict(best, runner_up, rationale, confidence, _all_scores(means), questions=questions)


def _sample_score(sample: SingleVerdict, material: MaterialClass) -> float:
    scores = [a.suitability for a in sample.assessments if a.material == material]
    return float(scores[0]) if scores else 0.0


def from_claude(answer: AggregateVerdict | SingleVerdict, branches: Sequence[BranchResult]) -> Verdict:
    """Check Claude's verdict against what was assessed; raises InvalidVerdictError."""
    summaries = summarize(branches)
    assessed = set(summaries)
    for role, material in (("best", answer.best), ("runner-up", answer.runner_up)):
        if material not in assessed:
            raise InvalidVerdictError(f"the aggregator chose {material.value} as {role}, which was not assessed")
    given = (
        {s.material: float(s.score) for s in answer.scores}
        if isinstance(answer, AggregateVerdict)
        else {a.material: float(a.suitability) for a in answer.assessments}
    )
    scores = {m: v for m, v in given.items() if m in assessed}
    notes: list[str] = []
    unscored = [m for m in CLASS_ORDER if m in assessed and m not in scores]
    for material in unscored:
        scores[material] = summaries[material].suitability
    if unscored:
        notes.append("Not rescored by the aggregator, specialist score shown: " + ", ".join(m.value for m in unscored))
    screened = (
        [s for s in answer.screened_out if s.material in assessed]
        if isinstance(answer, AggregateVerdict)
        else _screens(summaries)
    )
    return Verdict(
        answer.best,
        answer.runner_up,
        answer.rationale,
        answer.confidence,
        _all_scores(scores),
        screened,
        answer.questions[:3],
        notes,
    )
