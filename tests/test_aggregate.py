"""The deterministic strategies (vote, weighted) and the checks on Claude's verdict."""

from __future__ import annotations

import pytest

from matrec import aggregate
from matrec.aggregate import InvalidVerdictError
from matrec.materials import Dimension, MaterialClass
from matrec.schema import AggregateVerdict, ClassScore
from tests.factories import failed, ok, single

M = MaterialClass
EVEN = {d: 1.0 for d in Dimension}


def test_weighted_ranks_by_the_weighted_mean_of_dimension_scores() -> None:
    branches = [ok(M.METAL, 8), ok(M.POLYMER, 7), ok(M.CERAMIC, 4), ok(M.COMPOSITE, 6)]
    verdict = aggregate.weighted(branches, EVEN)
    assert (verdict.best, verdict.runner_up) == (M.METAL, M.POLYMER)
    assert verdict.scores[M.METAL] == 8.0
    assert verdict.scores[M.WOOD] is None


def test_a_cost_sensitive_team_gets_the_cheaper_class() -> None:
    branches = [
        ok(M.METAL, 8, dims={Dimension.COST: 3}),
        ok(M.POLYMER, 6, dims={Dimension.COST: 9}),
        ok(M.CERAMIC, 3),
        ok(M.WOOD, 2),
    ]
    assert aggregate.weighted(branches, EVEN).best == M.METAL
    cost_heavy = EVEN | {Dimension.COST: 5.0}
    assert aggregate.weighted(branches, cost_heavy).best == M.POLYMER


def test_weighted_caps_a_hard_screened_class() -> None:
    branches = [ok(M.METAL, 6), ok(M.CERAMIC, 9, hard_screen="brittle under impact"), ok(M.WOOD, 4)]
    verdict = aggregate.weighted(branches, EVEN)
    assert verdict.best == M.METAL
    assert verdict.scores[M.CERAMIC] == aggregate.HARD_SCREEN_CAP
    assert [s.material for s in verdict.screened_out] == [M.CERAMIC]


def test_weighted_is_deterministic_and_breaks_ties_by_class_order() -> None:
    branches = [ok(M.WOOD, 7), ok(M.POLYMER, 7), ok(M.ELASTOMER, 3)]
    first = aggregate.weighted(branches, EVEN)
    assert first == aggregate.weighted(list(reversed(branches)), EVEN)
    assert (first.best, first.runner_up, first.confidence) == (M.POLYMER, M.WOOD, "low")


def test_vote_counts_recommendations_across_conditions() -> None:
    branches = [
        ok(M.METAL, 7, "nominal"),
        ok(M.METAL, 4, "hot", recommended=False),
        ok(M.METAL, 7, "wet"),
        ok(M.POLYMER, 8, "nominal"),
        ok(M.POLYMER, 8, "hot", recommended=False),
        ok(M.POLYMER, 3, "wet", recommended=False),
        ok(M.CERAMIC, 2, "nominal"),
    ]
    verdict = aggregate.vote(branches)
    assert (verdict.best, verdict.runner_up) == (M.METAL, M.POLYMER)
    assert "metal 2/3" in verdict.rationale


def test_vote_ties_go_to_the_higher_mean_suitability() -> None:
    verdict = aggregate.vote([ok(M.METAL, 7), ok(M.POLYMER, 9), ok(M.WOOD, 2)])
    assert (verdict.best, verdict.runner_up) == (M.POLYMER, M.METAL)
    assert "tie on votes" in verdict.rationale


def test_vote_with_no_recommendation_says_so() -> None:
    verdict = aggregate.vote([ok(M.METAL, 4), ok(M.POLYMER, 5), ok(M.WOOD, 2)])
    assert verdict.best == M.POLYMER
    assert verdict.notes and "No specialist recommended" in verdict.notes[0]


def test_vote_over_samples_takes_the_majority() -> None:
    scores = {m: 5 for m in MaterialClass}
    samples = [
        single(scores, M.METAL, M.POLYMER),
        single(scores, M.POLYMER, M.METAL),
        single(scores, M.METAL, M.POLYMER),
    ]
    verdict = aggregate.vote_samples(samples)
    assert (verdict.best, verdict.runner_up, verdict.confidence) == (M.METAL, M.POLYMER, "medium")


def test_claude_verdict_naming_an_unassessed_class_is_rejected() -> None:
    branches = [ok(M.METAL, 8), ok(M.POLYMER, 7), failed(M.CERAMIC)]
    answer = AggregateVerdict(
        best=M.CERAMIC,
        runner_up=M.METAL,
        rationale="r",
        confidence="high",
        questions=[],
        scores=[ClassScore(material=M.CERAMIC, score=9, note="n")],
        screened_out=[],
    )
    with pytest.raises(InvalidVerdictError, match="ceramic"):
        aggregate.from_claude(answer, branches)


def test_claude_verdict_keeps_its_recalibrated_scores_and_fills_gaps() -> None:
    branches = [ok(M.METAL, 9), ok(M.POLYMER, 8), failed(M.WOOD)]
    answer = AggregateVerdict(
        best=M.POLYMER,
        runner_up=M.METAL,
        rationale="r",
        confidence="medium",
        questions=["q1", "q2", "q3", "q4"],
        scores=[
            ClassScore(material=M.POLYMER, score=7, note="n"),
            ClassScore(material=M.WOOD, score=5, note="n"),
        ],
        screened_out=[],
    )
    verdict = aggregate.from_claude(answer, branches)
    assert verdict.scores[M.POLYMER] == 7.0
    assert verdict.scores[M.METAL] == 9.0  # not rescored: the specialist's score, with a note
    assert verdict.scores[M.WOOD] is None  # failed classes are never scored
    assert verdict.notes and "metal" in verdict.notes[0]
    assert len(verdict.questions) == 3
