"""Metrics of predictions against labelled cases, with bootstrap intervals over cases.

Pure functions over plain data, deterministic for a given seed. Conventions, shared by every metric:
- Every prediction must belong to one of the cases given (ValueError otherwise); a case's
  repetitions are its predictions with the same `case_id`. Case ids are unique.
- A prediction with no recommendation (`best` None) is wrong for accuracy and counts as a failure.
- Metrics on scores read the reference through `case.scores_0_10()` (None: the case has none) and
  use only classes that both the reference and the prediction score; they return None where no
  data defines them, so a report can say "n/a" rather than show a made-up number.
- Bootstrap intervals resample cases, never single predictions: repetitions of one case are not
  independent evidence, so a drawn case brings all of its repetitions.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from matrec.materials import MaterialClass

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
SPEARMAN_CACHE_ENTRIES = 4096  # distinct (predicted, reference) score vectors, a few hundred bytes each


class LabelledCase(Protocol):
    """What the metrics read from a case (`matrec.eval.dataset.Case` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def expected(self) -> Sequence[MaterialClass]: ...

    def scores_0_10(self) -> Mapping[MaterialClass, float] | None: ...


@dataclass(frozen=True)
class Prediction:
    """One consultation's outcome for one case and repetition."""

    case_id: str
    repetition: int
    best: MaterialClass | None  # None: no recommendation, which counts as wrong
    ranking: list[MaterialClass] = field(default_factory=list)  # best first, ties broken by class order
    scores: dict[MaterialClass, float] = field(default_factory=dict)  # 0-10; classes not scored are absent
    latency_s: float | None = None  # the consultation's own critical path, not time queued behind others
    cost_usd: float | None = None
    tokens: int = 0


Metric = Callable[[Sequence[Prediction], Sequence[LabelledCase]], float | None]


@dataclass(frozen=True)
class PairedResult:
    """How much predictor A beats B on one metric (A minus B), over the same resampled cases."""

    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float  # two-sided; the smallest it can be is 2 / (resamples + 1)


@dataclass(frozen=True)
class MetricValue:
    """A metric on the full set of cases with its bootstrap interval."""

    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class MetricSummary:
    """Every metric of one predictor, as the report shows it; None where the data does not define it."""

    cases: int  # cases with at least one prediction
    predictions: int
    top1: MetricValue
    top2: MetricValue
    failure_rate: MetricValue
    mae: MetricValue | None
    bias: MetricValue | None
    rank_correlation: MetricValue | None
    scenario_sensitivity: MetricValue | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    tokens_mean: float
    cost_usd_mean: float | None  # over predictions whose cost is known
    cost_usd_total: float | None


def top_k_accuracy(preds: Sequence[Prediction], cases: Sequence[LabelledCase], k: int = 1) -> float:
    """Share of predictions whose best (k=1) or any of whose top k classes is an expected class.

    The top k are `best` followed by the ranking without it, so top-1 hits are top-2 hits too.
    Each repetition counts as one prediction; a prediction without `best` is wrong.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not preds:
        raise ValueError("accuracy of no predictions")
    by_id = _cases_by_id(preds, cases)
    hits = 0
    for pred in preds:
        if pred.best is None:
            continue
        top = [pred.best, *(c for c in pred.ranking if c != pred.best)][:k]
        hits += any(c in by_id[pred.case_id].expected for c in top)
    return hits / len(preds)


def mean_absolute_error(preds: Sequence[Prediction], cases: Sequence[LabelledCase]) -> float | None:
    """Mean |predicted - reference| over every (prediction, class) cell both score, on 0-10."""
    diffs = _score_differences(preds, cases)
    return math.fsum(abs(d) for d in diffs) / len(diffs) if diffs else None


def signed_bias(preds: Sequence[Prediction], cases: Sequence[LabelledCase]) -> float | None:
    """Mean (predicted - reference) over the same cells as the MAE: positive means it over-rates."""
    diffs = _score_differences(preds, cases)
    return math.fsum(diffs) / len(diffs) if diffs else None


def rank_correlation(preds: Sequence[Prediction], cases: Sequence[LabelledCase]) -> float | None:
    """Mean over cases of the Spearman correlation between predicted and reference scores.

    Per prediction over the classes both score, with average ranks for ties; a case's value is
    the mean over its repetitions. Skipped: fewer than two shared classes, or either side
    constant (the correlation is undefined). None when no case is left.
    """
    by_id = _cases_by_id(preds, cases)
    per_case: dict[str, list[float]] = {}
    for pred in preds:
        reference = by_id[pred.case_id].scores_0_10()
        if reference is None:
            continue
        shared = [c for c in reference if c in pred.scores]
        rho = _spearman(tuple(pred.scores[c] for c in shared), tuple(reference[c] for c in shared))
        if rho is not None:
            per_case.setdefault(pred.case_id, []).append(rho)
    if not per_case:
        return None
    return math.fsum(math.fsum(v) / len(v) for v in per_case.values()) / len(per_case)


def scenario_sensitivity(preds: Sequence[Prediction], cases: Sequence[LabelledCase]) -> float | None:
    """Does a class's score move between scenarios the way the reference's does (Grandi et al. 2025)?

    Repetitions are averaged per case and class first. Each class's predicted and reference
    scores become deviations from that class's own mean over the cases where both score it;
    the result is the Pearson r of the deviations pooled over classes. A predictor whose scores
    never move gets 0.0 (it tracks none of the reference's movement); None when the reference
    never moves or no class is scored in two cases.
    """
    _cases_by_id(preds, cases)
    sums: dict[tuple[str, MaterialClass], list[float]] = {}
    for pred in preds:
        for c, score in pred.scores.items():
            sums.setdefault((pred.case_id, c), []).append(score)
    cells: dict[MaterialClass, list[tuple[float, float]]] = {}  # class -> (predicted, reference) per case
    for case in cases:
        reference = case.scores_0_10()
        if reference is None:
            continue
        for c, ref in reference.items():
            scores = sums.get((case.id, c))
            if scores:
                cells.setdefault(c, []).append((math.fsum(scores) / len(scores), ref))
    predicted_dev: list[float] = []
    reference_dev: list[float] = []
    for pairs in cells.values():
        if len(pairs) < 2:
            continue
        predicted_dev += _deviations([p for p, _ in pairs])
        reference_dev += _deviations([r for _, r in pairs])
    if not any(reference_dev):
        return None
    if not any(predicted_dev):
        return 0.0
    return _pearson(predicted_dev, reference_dev)


def failure_rate(preds: Sequence[Prediction], cases: Sequence[LabelledCase] | None = None) -> float:
    """Share of predictions with no recommendation; `cases`, when given, only checks membership."""
    if not preds:
        raise ValueError("failure rate of no predictions")
    if cases is not None:
        _cases_by_id(preds, cases)
    return sum(pred.best is None for pred in preds) / len(preds)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between order statistics.

    Position h = (n - 1) * q / 100 in the sorted values; the result is x[floor h] plus
    (h - floor h) times the gap to the next value (numpy's default, "type 7").
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0-100, got {q}")
    ordered = sorted(values)
    h = (len(ordered) - 1) * q / 100
    low = math.floor(h)
    if low + 1 >= len(ordered):
        return ordered[-1]
    return ordered[low] + (h - low) * (ordered[low + 1] - ordered[low])


def bootstrap_ci(
    preds: Sequence[Prediction],
    cases: Sequence[LabelledCase],
    metric: Metric,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric`, resampling cases with all their repetitions.

    Resamples where the metric is undefined (None) are left out. Raises ValueError when it is
    undefined on the full data. The same seed draws the same cases for every metric.
    """
    _check_bootstrap(resamples, level)
    if metric(preds, cases) is None:
        raise ValueError("the metric is undefined on these predictions")
    stats = [s for s in _resampled(metric, preds, cases, resamples, seed) if s is not None]
    return _interval(stats, level)


def paired_difference(
    a_preds: Sequence[Prediction],
    b_preds: Sequence[Prediction],
    cases: Sequence[LabelledCase],
    metric: Metric,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
) -> PairedResult:
    """metric(A) - metric(B) with a bootstrap interval and two-sided p-value, both on the same cases.

    Resampling the same cases for both keeps the comparison paired (the case-to-case variation
    cancels). The p-value inverts the percentile interval: twice the smaller share of resampled
    differences on either side of 0 (counting 0 on both), with +1 smoothing, at most 1.
    """
    _check_bootstrap(resamples, level)
    a_value, b_value = metric(a_preds, cases), metric(b_preds, cases)
    if a_value is None or b_value is None:
        raise ValueError("the metric is undefined on these predictions")
    a_stats = _resampled(metric, a_preds, cases, resamples, seed)
    b_stats = _resampled(metric, b_preds, cases, resamples, seed)
    diffs = [a - b for a, b in zip(a_stats, b_stats, strict=True) if a is not None and b is not None]
    low, high = _interval(diffs, level)
    at_or_below = sum(d <= 0 for d in diffs)
    at_or_above = sum(d >= 0 for d in diffs)
    p_value = min(1.0, 2 * (1 + min(at_or_below, at_or_above)) / (1 + len(diffs)))
    return PairedResult(mean_diff=a_value - b_value, ci_low=low, ci_high=high, p_value=p_value)


def summarise(
    preds: Sequence[Prediction],
    cases: Sequence[LabelledCase],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
) -> MetricSummary:
    """Every metric of one predictor with bootstrap intervals, plus latency, tokens and cost."""

    def measured(metric: Metric) -> MetricValue | None:
        value = metric(preds, cases)
        if value is None:
            return None
        low, high = bootstrap_ci(preds, cases, metric, resamples=resamples, seed=seed, level=level)
        return MetricValue(value=value, ci_low=low, ci_high=high)

    def always(metric: Metric) -> MetricValue:
        value = measured(metric)
        if value is None:
            raise ValueError("summary of no predictions")  # accuracy and failure rate exist for any prediction
        return value

    latencies = [p.latency_s for p in preds if p.latency_s is not None]
    costs = [p.cost_usd for p in preds if p.cost_usd is not None]
    return MetricSummary(
        cases=len({p.case_id for p in preds}),
        predictions=len(preds),
        top1=always(top_k_accuracy),
        top2=always(lambda p, c: top_k_accuracy(p, c, k=2)),
        failure_rate=always(failure_rate),
        mae=measured(mean_absolute_error),
        bias=measured(signed_bias),
        rank_correlation=measured(rank_correlation),
        scenario_sensitivity=measured(scenario_sensitivity),
        latency_p50_s=percentile(latencies, 50) if latencies else None,
        latency_p95_s=percentile(latencies, 95) if latencies else None,
        tokens_mean=sum(p.tokens for p in preds) / len(preds),
        cost_usd_mean=math.fsum(costs) / len(costs) if costs else None,
        cost_usd_total=math.fsum(costs) if costs else None,
    )


@dataclass(frozen=True)
class _DrawnCase:
    """One draw of a case in a bootstrap resample, under an id unique to its position there."""

    id: str
    expected: Sequence[MaterialClass]
    reference: Mapping[MaterialClass, float] | None

    def scores_0_10(self) -> Mapping[MaterialClass, float] | None:
        return self.reference


def _resampled(
    metric: Metric, preds: Sequence[Prediction], cases: Sequence[LabelledCase], resamples: int, seed: int
) -> list[float | None]:
    """The metric on `resamples` resamples of the cases, each drawn case with all its repetitions.

    A case drawn twice appears as two cases with distinct ids, so every metric (per-case ones
    included) counts it twice, exactly as if the data held two such cases.
    """
    by_id = _cases_by_id(preds, cases)
    own: dict[str, list[Prediction]] = {case.id: [] for case in cases}
    for pred in preds:
        own[pred.case_id].append(pred)
    references = [case.scores_0_10() for case in cases]
    copies: dict[tuple[int, int], tuple[_DrawnCase, list[Prediction]]] = {}

    def drawn(index: int, position: int) -> tuple[_DrawnCase, list[Prediction]]:
        # Built once per (case, position) pair, so 2,000 resamples copy each prediction a few times at most.
        if (index, position) not in copies:
            case = cases[index]
            copy_id = f"{case.id}#{position}"
            copies[index, position] = (
                _DrawnCase(id=copy_id, expected=by_id[case.id].expected, reference=references[index]),
                [replace(pred, case_id=copy_id) for pred in own[case.id]],
            )
        return copies[index, position]

    rng = random.Random(seed)  # noqa: S311 -- reproducible resampling, not security
    n = len(cases)
    results: list[float | None] = []
    for _ in range(resamples):
        draws = [drawn(rng.randrange(n), position) for position in range(n)]
        drawn_preds = [pred for _, group in draws for pred in group]
        results.append(metric(drawn_preds, [case for case, _ in draws]) if drawn_preds else None)
    return results


def _interval(stats: Sequence[float], level: float) -> tuple[float, float]:
    if not stats:
        raise ValueError("the metric is undefined on every resample")
    tail = (1 - level) / 2 * 100
    return percentile(stats, tail), percentile(stats, 100 - tail)


def _check_bootstrap(resamples: int, level: float) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")


def _cases_by_id(preds: Sequence[Prediction], cases: Sequence[LabelledCase]) -> dict[str, LabelledCase]:
    """The cases by id; a prediction of a case not given is a caller's bug, so it raises."""
    by_id = {case.id: case for case in cases}
    unknown = sorted({pred.case_id for pred in preds} - by_id.keys())
    if unknown:
        raise ValueError(f"predictions for cases not given: {', '.join(unknown[:5])}")
    return by_id


def _score_differences(preds: Sequence[Prediction], cases: Sequence[LabelledCase]) -> list[float]:
    """predicted - reference for every (prediction, class) cell both score."""
    by_id = _cases_by_id(preds, cases)
    diffs: list[float] = []
    for pred in preds:
        reference = by_id[pred.case_id].scores_0_10()
        if reference is not None:
            diffs += [pred.scores[c] - ref for c, ref in reference.items() if c in pred.scores]
    return diffs


@functools.lru_cache(maxsize=SPEARMAN_CACHE_ENTRIES)
def _spearman(xs: tuple[float, ...], ys: tuple[float, ...]) -> float | None:
    """Spearman's rho with average ranks for ties; cached since a bootstrap meets each prediction ~2,000 times."""
    return _pearson(_average_ranks(xs), _average_ranks(ys))


def _average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, tied values sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def _deviations(values: Sequence[float]) -> list[float]:
    """Each value minus the mean; exactly 0 for equal values (their float mean may not be exact)."""
    if min(values) == max(values):
        return [0.0] * len(values)
    mean = math.fsum(values) / len(values)
    return [v - mean for v in values]


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson r; None with fewer than two points or when either side is constant."""
    if len(xs) < 2 or min(xs) == max(xs) or min(ys) == max(ys):
        return None
    dx, dy = _deviations(xs), _deviations(ys)
    sxy = math.fsum(a * b for a, b in zip(dx, dy, strict=True))
    sxx, syy = math.fsum(a * a for a in dx), math.fsum(b * b for b in dy)
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))
