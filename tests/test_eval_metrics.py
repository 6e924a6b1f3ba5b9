"""Evaluation metrics on small hand-computed cases: every expected number is worked out in a comment."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from matrec.eval.dataset import Case
from matrec.eval.metrics import (
    LabelledCase,
    Prediction,
    bootstrap_ci,
    failure_rate,
    mean_absolute_error,
    paired_difference,
    percentile,
    rank_correlation,
    scenario_sensitivity,
    signed_bias,
    summarise,
    top_k_accuracy,
)
from matrec.materials import CLASS_ORDER, MaterialClass

M = MaterialClass


def case(
    case_id: str,
    *expected: MaterialClass,
    reference: dict[MaterialClass, float] | None = None,
    scale: tuple[float, float] = (0, 10),
) -> Case:
    return Case(
        id=case_id, text=f"scenario {case_id}", expected=list(expected), reference_scores=reference, scale=scale
    )


def pred(
    case_id: str,
    best: MaterialClass | None,
    scores: dict[MaterialClass, float] | None = None,
    *,
    rep: int = 0,
    ranking: list[MaterialClass] | None = None,
) -> Prediction:
    scores = scores or {}
    if ranking is None:  # highest score first, ties in class order, as the engine ranks
        ranking = sorted(scores, key=lambda c: (-scores[c], CLASS_ORDER.index(c)))
    return Prediction(case_id=case_id, repetition=rep, best=best, ranking=ranking, scores=scores)


def exact(cases: Sequence[Case]) -> list[Prediction]:
    """A perfect predictor: the reference scores themselves, best = the first expected class."""
    return [pred(c.id, c.expected[0], c.scores_0_10()) for c in cases]


# --- accuracy and failures ---------------------------------------------------------------------


def test_top1_accepts_any_expected_class_and_counts_a_failure_wrong() -> None:
    cases = [case("a", M.METAL, M.POLYMER), case("b", M.CERAMIC), case("c", M.WOOD)]
    preds = [
        pred("a", M.POLYMER),  # right: the second acceptable class
        pred("b", M.METAL),  # wrong
        pred("c", M.WOOD),  # right
        pred("c", None, rep=1, ranking=[M.WOOD]),  # no recommendation: wrong even though its ranking is right
    ]
    assert top_k_accuracy(preds, cases) == 0.5  # 2 right / 4 predictions
    assert failure_rate(preds) == 0.25  # 1 failure / 4 predictions


def test_top2_uses_the_ranking_after_the_best() -> None:
    cases = [case("a", M.METAL), case("b", M.CERAMIC), case("c", M.WOOD)]
    preds = [
        pred("a", M.POLYMER, ranking=[M.METAL, M.POLYMER, M.CERAMIC]),  # top 2 = best + ranking without it = P, M
        pred("b", M.METAL, ranking=[M.METAL, M.COMPOSITE, M.CERAMIC]),  # top 2 = M, COMPOSITE: miss
        pred("c", None, ranking=[M.WOOD, M.METAL]),  # a failure stays wrong at any k
    ]
    assert top_k_accuracy(preds, cases, k=1) == 0.0  # P, M, None: no hit
    assert top_k_accuracy(preds, cases, k=2) == pytest.approx(1 / 3)  # only a hits
    assert top_k_accuracy(preds, cases, k=3) == pytest.approx(2 / 3)  # b's third is CERAMIC


def test_every_repetition_counts_as_one_prediction() -> None:
    cases = [case("a", M.METAL), case("b", M.POLYMER)]
    preds = [pred("a", M.METAL), pred("a", M.METAL, rep=1), pred("a", M.WOOD, rep=2), pred("b", M.POLYMER)]
    # 3 right / 4 predictions = 0.75 (a mean of per-case means would be (2/3 + 1) / 2 = 0.833)
    assert top_k_accuracy(preds, cases) == 0.75


def test_an_always_wrong_predictor_scores_zero_without_failing() -> None:
    cases = [case("a", M.METAL), case("b", M.POLYMER), case("c", M.WOOD)]
    preds = [pred("a", M.WOOD), pred("b", M.WOOD), pred("c", M.METAL)]
    assert top_k_accuracy(preds, cases) == 0.0
    assert failure_rate(preds) == 0.0


def test_predictions_for_cases_not_given_are_a_bug() -> None:
    with pytest.raises(ValueError, match="cases not given: x"):
        top_k_accuracy([pred("x", M.METAL)], [case("a", M.METAL)])
    with pytest.raises(ValueError, match="no predictions"):
        top_k_accuracy([], [case("a", M.METAL)])


# --- scores against the reference ---------------------------------------------------------------


def test_a_perfect_predictor_gets_accuracy_1_error_0_and_correlations_1() -> None:
    cases = [
        case("a", M.METAL, reference={M.METAL: 8, M.POLYMER: 5, M.CERAMIC: 2}),
        case("b", M.POLYMER, reference={M.METAL: 3, M.POLYMER: 9, M.CERAMIC: 4}),
        case("c", M.CERAMIC, reference={M.METAL: 1, M.POLYMER: 2, M.CERAMIC: 7}),
    ]
    preds = exact(cases)
    assert top_k_accuracy(preds, cases) == 1.0
    assert mean_absolute_error(preds, cases) == 0.0
    assert signed_bias(preds, cases) == 0.0
    assert rank_correlation(preds, cases) == pytest.approx(1.0)
    assert scenario_sensitivity(preds, cases) == pytest.approx(1.0)


def test_error_and_bias_use_only_cells_both_score_on_the_0_10_scale() -> None:
    cases = [
        case("a", M.METAL, reference={M.METAL: 8, M.POLYMER: 4, M.CERAMIC: 6}),
        case("b", M.METAL),  # no reference: no cells
        case("c", M.METAL, reference={M.METAL: 4}, scale=(0, 5)),  # 4 of 5 is 8 on 0-10
    ]
    preds = [
        pred("a", M.METAL, {M.METAL: 9, M.POLYMER: 2, M.WOOD: 5}),  # cells M: +1, P: -2 (C unscored, W unreferenced)
        pred("b", M.METAL, {M.METAL: 3}),
        pred("c", M.METAL, {M.METAL: 9}),  # cell M: 9 - 8 = +1
    ]
    assert mean_absolute_error(preds, cases) == pytest.approx(4 / 3)  # (1 + 2 + 1) / 3 cells
    assert signed_bias(preds, cases) == pytest.approx(0.0)  # (1 - 2 + 1) / 3


def test_an_over_rating_predictor_has_a_positive_bias() -> None:
    cases = [case("a", M.METAL, reference={M.METAL: 6, M.WOOD: 2})]
    preds = [pred("a", M.METAL, {M.METAL: 7, M.WOOD: 3.5}), pred("a", M.METAL, {M.METAL: 7}, rep=1)]
    # cells: +1, +1.5 (rep 0), +1 (rep 1): bias = 3.5 / 3, MAE the same since all are positive
    assert signed_bias(preds, cases) == pytest.approx(3.5 / 3)
    assert mean_absolute_error(preds, cases) == pytest.approx(3.5 / 3)


def test_score_metrics_are_undefined_without_reference_scores() -> None:
    cases = [case("a", M.METAL), case("b", M.WOOD)]
    preds = [pred("a", M.METAL, {M.METAL: 8, M.WOOD: 2}), pred("b", M.WOOD, {M.METAL: 1, M.WOOD: 9})]
    assert mean_absolute_error(preds, cases) is None
    assert signed_bias(preds, cases) is None
    assert rank_correlation(preds, cases) is None
    assert scenario_sensitivity(preds, cases) is None


def test_rank_correlation_gives_tied_scores_their_average_rank() -> None:
    cases = [case("a", M.METAL, reference={M.METAL: 9, M.POLYMER: 7, M.CERAMIC: 5, M.WOOD: 1})]
    preds = [pred("a", M.METAL, {M.METAL: 8, M.POLYMER: 6, M.CERAMIC: 6, M.WOOD: 2})]
    # ranks (M, P, C, W): predicted 4, 2.5, 2.5, 1 (P and C share ranks 2 and 3); reference 4, 3, 2, 1.
    # Both means 2.5; deviations x = 1.5, 0, 0, -1.5 and y = 1.5, 0.5, -0.5, -1.5.
    # sxy = 2.25 + 2.25 = 4.5, sxx = 4.5, syy = 2.25 + 0.25 + 0.25 + 2.25 = 5: r = 4.5 / sqrt(22.5) = sqrt(0.9)
    assert rank_correlation(preds, cases) == pytest.approx(math.sqrt(0.9))


def test_rank_correlation_averages_repetitions_within_a_case_then_cases() -> None:
    cases = [
        case("a", M.METAL, reference={M.METAL: 3, M.POLYMER: 2, M.CERAMIC: 1}),
        case("b", M.METAL, reference={M.METAL: 9, M.POLYMER: 1}),
        case("c", M.METAL, reference={M.METAL: 5, M.WOOD: 3}),
        case("d", M.METAL, reference={M.METAL: 9, M.POLYMER: 5, M.CERAMIC: 1}),
        case("e", M.METAL, reference={M.METAL: 3, M.POLYMER: 2, M.CERAMIC: 1}),
    ]
    preds = [
        pred("a", M.CERAMIC, {M.METAL: 1, M.POLYMER: 2, M.CERAMIC: 3}),  # reversed: -1
        pred("b", M.METAL, {M.METAL: 5, M.POLYMER: 4}),  # two classes in the same order: +1
        pred("c", M.METAL, {M.METAL: 5, M.POLYMER: 4}),  # one shared class (M): skipped
        pred("d", M.METAL, {M.METAL: 5, M.POLYMER: 5, M.CERAMIC: 5}),  # constant: skipped
        pred("e", M.METAL, {M.METAL: 3, M.POLYMER: 2, M.CERAMIC: 1}),  # +1
        # ranks x = 3, 1, 2 against y = 3, 2, 1: deviations 1, -1, 0 and 1, 0, -1: r = 1 / sqrt(2 * 2) = 0.5
        pred("e", M.METAL, {M.METAL: 3, M.POLYMER: 1, M.CERAMIC: 2}, rep=1),
    ]
    # case e = (1 + 0.5) / 2 = 0.75; mean of a, b, e = (-1 + 1 + 0.75) / 3 = 0.25
    # (a mean over the four predictions would be (-1 + 1 + 1 + 0.5) / 4 = 0.375)
    assert rank_correlation(preds, cases) == pytest.approx(0.25)


def test_a_constant_predictor_gets_no_rank_correlation_and_zero_sensitivity() -> None:
    cases = [
        case("a", M.METAL, reference={M.METAL: 8, M.POLYMER: 2}),
        case("b", M.POLYMER, reference={M.METAL: 4, M.POLYMER: 6}),
    ]
    preds = [pred(c.id, M.METAL, {M.METAL: 5, M.POLYMER: 5}) for c in cases]  # ties go to METAL, first in class order
    assert top_k_accuracy(preds, cases) == 0.5
    assert mean_absolute_error(preds, cases) == 2.0  # (3 + 3 + 1 + 1) / 4
    assert signed_bias(preds, cases) == 0.0  # (-3 + 3 + 1 - 1) / 4
    assert rank_correlation(preds, cases) is None  # every case skipped: the predicted vector is constant
    assert scenario_sensitivity(preds, cases) == 0.0  # its scores never move between scenarios


def test_a_scenario_blind_prior_can_rank_well_yet_has_zero_sensitivity() -> None:
    # Grandi et al.'s point: a class prior that ignores the scenario matches the ranking but does not move.
    cases = [
        case("a", M.METAL, reference={M.METAL: 8, M.POLYMER: 2}),
        case("b", M.METAL, reference={M.METAL: 6, M.POLYMER: 4}),
    ]
    preds = [pred(c.id, M.METAL, {M.METAL: 7, M.POLYMER: 3}) for c in cases]
    assert rank_correlation(preds, cases) == 1.0
    assert scenario_sensitivity(preds, cases) == 0.0


def test_scenario_sensitivity_correlates_deviations_from_each_classes_own_mean() -> None:
    cases = [
        case("a", M.METAL, reference={M.METAL: 8, M.POLYMER: 2, M.CERAMIC: 5, M.WOOD: 1}),
        case("b", M.POLYMER, reference={M.METAL: 6, M.POLYMER: 4, M.CERAMIC: 7}),
        case("c", M.POLYMER, reference={M.METAL: 4, M.POLYMER: 9, M.CERAMIC: 3}),
    ]
    preds = [
        pred("a", M.METAL, {M.METAL: 10, M.POLYMER: 3, M.CERAMIC: 6}),
        pred("a", M.METAL, {M.METAL: 8, M.POLYMER: 3, M.COMPOSITE: 4}, rep=1),  # a averages to M 9, P 3, C 6
        pred("b", M.METAL, {M.METAL: 9, M.POLYMER: 4, M.CERAMIC: 6}),
        pred("c", M.METAL, {M.METAL: 6, M.POLYMER: 5, M.WOOD: 2}),  # C unscored in c; W referenced in a only
    ]
    # METAL:   predicted 9, 9, 6 (mean 8) -> 1, 1, -2;   reference 8, 6, 4 (mean 6) -> 2, 0, -2
    # POLYMER: predicted 3, 4, 5 (mean 4) -> -1, 0, 1;   reference 2, 4, 9 (mean 5) -> -3, -1, 4
    # CERAMIC, in a and b only: predicted 6, 6 -> 0, 0; reference 5, 7 (mean 6, not 5 over all three) -> -1, 1
    # WOOD is never both referenced and scored in one case, COMPOSITE never referenced: neither counts.
    # pooled: sxy = 2 + 0 + 4 + 3 + 0 + 4 + 0 + 0 = 13; sxx = 1 + 1 + 4 + 1 + 0 + 1 = 8;
    # syy = 4 + 0 + 4 + 9 + 1 + 16 + 1 + 1 = 36: r = 13 / sqrt(8 * 36) = 13 / sqrt(288)
    assert scenario_sensitivity(preds, cases) == pytest.approx(13 / math.sqrt(288))


def test_scenario_sensitivity_is_undefined_when_the_reference_never_moves() -> None:
    cases = [case(i, M.METAL, reference={M.METAL: 7, M.WOOD: 2}) for i in ("a", "b")]
    preds = [pred("a", M.METAL, {M.METAL: 8, M.WOOD: 1}), pred("b", M.METAL, {M.METAL: 6, M.WOOD: 3})]
    assert scenario_sensitivity(preds, cases) is None


# --- percentile ---------------------------------------------------------------------------------


def test_percentile_interpolates_linearly_between_sorted_values() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # sorted 1, 2, 3, 4
    assert percentile(values, 50) == 2.5  # h = 3 * 0.5 = 1.5: 2 + 0.5 * (3 - 2)
    assert percentile(values, 95) == pytest.approx(3.85)  # h = 3 * 0.95 = 2.85: 3 + 0.85 * (4 - 3)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="0-100"):
        percentile(values, 101)


# --- bootstrap ----------------------------------------------------------------------------------


def half_right(n: int) -> tuple[list[Case], list[Prediction]]:
    """n cases, each with two repetitions: one right, one wrong."""
    cases = [case(f"c{i}", M.METAL) for i in range(n)]
    preds = [p for c in cases for p in (pred(c.id, M.METAL), pred(c.id, M.WOOD, rep=1))]
    return cases, preds


def test_resampling_keeps_each_cases_repetitions_together() -> None:
    cases, preds = half_right(3)
    # Every case is 1 of 2 right, so every resample of whole cases is exactly 0.5; resampling the
    # six predictions one by one would give anything from 0 to 1.
    assert bootstrap_ci(preds, cases, top_k_accuracy, resamples=200) == (0.5, 0.5)


def test_each_drawn_case_brings_all_its_repetitions_and_a_repeated_draw_counts_twice() -> None:
    cases = [case("a", M.METAL), case("b", M.POLYMER), case("c", M.WOOD)]
    preds = [pred("a", M.METAL), pred("a", M.WOOD, rep=1), pred("b", M.CERAMIC), pred("c", M.WOOD, rep=4)]
    own = {c.expected[0]: sorted((p.repetition, p.best) for p in preds if p.case_id == c.id) for c in cases}
    calls: list[tuple[list[Prediction], list[LabelledCase]]] = []

    def spy(p: Sequence[Prediction], c: Sequence[LabelledCase]) -> float:
        calls.append((list(p), list(c)))
        return 0.0

    bootstrap_ci(preds, cases, spy, resamples=50)
    resamples = calls[1:]  # the first call is the point estimate on the data itself
    assert len(resamples) == 50
    for drawn_preds, drawn_cases in resamples:
        assert len(drawn_cases) == 3
        assert len({c.id for c in drawn_cases}) == 3  # a case drawn twice appears as two cases
        for c in drawn_cases:
            mine = sorted((p.repetition, p.best) for p in drawn_preds if p.case_id == c.id)
            assert mine == own[c.expected[0]]
        assert len(drawn_preds) == sum(len(own[c.expected[0]]) for c in drawn_cases)
    assert any(len({c.expected[0] for c in drawn}) < 3 for _, drawn in resamples)  # draws with replacement


def test_the_interval_contains_the_point_estimate() -> None:
    cases = [case(f"c{i}", M.METAL) for i in range(10)]
    preds = [pred(c.id, M.METAL if i % 2 else M.WOOD) for i, c in enumerate(cases)]  # 5 of 10 right
    low, high = bootstrap_ci(preds, cases, top_k_accuracy)
    assert low < 0.5 < high


def test_the_same_seed_gives_the_same_interval() -> None:
    cases = [case(f"c{i}", M.METAL, reference={M.METAL: 5}) for i in range(10)]
    preds = [pred(c.id, M.METAL, {M.METAL: 5 + i * 0.37}) for i, c in enumerate(cases)]  # ten distinct errors
    first = bootstrap_ci(preds, cases, mean_absolute_error, resamples=300, seed=7)
    assert bootstrap_ci(preds, cases, mean_absolute_error, resamples=300, seed=7) == first
    assert bootstrap_ci(preds, cases, mean_absolute_error, resamples=300, seed=8) != first


def test_a_metric_undefined_on_the_data_has_no_interval() -> None:
    cases, preds = half_right(2)
    with pytest.raises(ValueError, match="undefined"):
        bootstrap_ci(preds, cases, mean_absolute_error)


def test_a_predictor_compared_with_itself_differs_by_nothing() -> None:
    cases = [case(f"c{i}", M.METAL) for i in range(8)]
    preds = [pred(c.id, M.METAL if i % 2 else M.WOOD) for i, c in enumerate(cases)]
    result = paired_difference(preds, preds, cases, top_k_accuracy, resamples=500)
    assert (result.mean_diff, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_difference_resamples_the_same_cases_for_both_predictors() -> None:
    cases = [case(f"c{i}", M.METAL) for i in range(10)]
    a = [pred(c.id, M.METAL if i < 5 else M.WOOD) for i, c in enumerate(cases)]  # right on c0-c4
    b = [pred(c.id, M.METAL if i < 4 else M.WOOD) for i, c in enumerate(cases)]  # right on c0-c3
    result = paired_difference(a, b, cases, top_k_accuracy)
    assert result.mean_diff == pytest.approx(0.1)  # 0.5 - 0.4
    # Paired, a resample's difference is (draws of c4) / 10, never negative; drawing cases for a
    # and b independently would put the lower end near -0.3.
    assert result.ci_low == 0.0
    assert result.ci_high > 0.1


def test_a_difference_in_every_resample_has_the_smallest_p_value() -> None:
    cases = [case(f"c{i}", M.METAL) for i in range(5)]
    right = [pred(c.id, M.METAL) for c in cases]
    wrong = [pred(c.id, M.WOOD) for c in cases]
    result = paired_difference(right, wrong, cases, top_k_accuracy, resamples=999)
    assert (result.mean_diff, result.ci_low, result.ci_high) == (1.0, 1.0, 1.0)
    assert result.p_value == pytest.approx(2 / 1000)  # 2 * (1 + 0 differences <= 0) / (1 + 999)


# --- summary ------------------------------------------------------------------------------------


def test_summary_bundles_every_metric_with_intervals_and_the_costs() -> None:
    cases = [
        case("a", M.METAL, reference={M.METAL: 8, M.WOOD: 2}),
        case("b", M.WOOD, reference={M.METAL: 3, M.WOOD: 7}),
    ]
    preds = [
        Prediction("a", 0, M.METAL, [M.METAL, M.WOOD], {M.METAL: 9, M.WOOD: 3}, 1.0, 0.01, 100),
        Prediction("a", 1, M.METAL, [M.METAL, M.WOOD], {M.METAL: 9, M.WOOD: 3}, 2.0, 0.02, 200),
        Prediction("b", 0, None, [], {}, 3.0, None, 300),
        Prediction("b", 1, M.METAL, [M.METAL, M.WOOD], {M.METAL: 6, M.WOOD: 4}, 4.0, 0.03, 400),
    ]
    summary = summarise(preds, cases, resamples=200)
    assert (summary.cases, summary.predictions) == (2, 4)
    assert summary.top1.value == 0.5  # a twice right; b failed once, wrong once
    assert summary.top2.value == 0.75  # b rep 1's runner-up is WOOD
    assert summary.failure_rate.value == 0.25
    assert summary.mae is not None and summary.bias is not None
    assert summary.mae.value == pytest.approx(10 / 6)  # cells 1, 1, 1, 1, 3, 3 over 6
    assert summary.bias.value == pytest.approx(4 / 6)  # +1 +1 +1 +1 +3 -3
    for metric in (summary.top1, summary.top2, summary.failure_rate, summary.mae, summary.bias):
        assert metric.ci_low <= metric.value <= metric.ci_high
    assert summary.rank_correlation is not None and summary.rank_correlation.value == 0.0  # a: +1, b: -1
    # METAL 9 vs 6 (mean 7.5): 1.5, -1.5 against 8 vs 3: 2.5, -2.5; WOOD 3 vs 4: -0.5, 0.5 against 2 vs 7: -2.5, 2.5
    # sxy = 3.75 + 3.75 + 1.25 + 1.25 = 10; sxx = 4.5 + 0.5 = 5; syy = 25: r = 10 / sqrt(125)
    assert summary.scenario_sensitivity is not None
    assert summary.scenario_sensitivity.value == pytest.approx(10 / math.sqrt(125))
    assert summary.latency_p50_s == 2.5  # as in the percentile test
    assert summary.latency_p95_s == pytest.approx(3.85)
    assert summary.tokens_mean == 250.0  # 1000 / 4
    assert summary.cost_usd_total == pytest.approx(0.06)  # the unknown cost is left out
    assert summary.cost_usd_mean == pytest.approx(0.02)


def test_summary_leaves_out_score_metrics_without_a_reference() -> None:
    cases, preds = half_right(3)
    summary = summarise(preds, cases, resamples=100)
    assert summary.top1.value == 0.5
    assert (summary.mae, summary.bias, summary.rank_correlation, summary.scenario_sensitivity) == (None,) * 4
    assert (summary.latency_p50_s, summary.cost_usd_mean, summary.cost_usd_total) == (None, None, None)
