"""What the terminal view and the plain renderings show: details per class, whole lines, the cost."""

from __future__ import annotations

import io

from rich.console import Console, RenderableType

from matrec.choices import Mode, Strategy
from matrec.materials import CLASS_ORDER, MaterialClass
from matrec.progress import BranchState, BranchStatus, EventKind, ProgressEvent, RunSnapshot, StageStatus
from matrec.report import footer, progress_line, recommendation_json, recommendation_text
from matrec.results import BranchResult, Recommendation, Timing, TokenUsage, UsageReport
from matrec.terminal import Frame, recommendation_panel, snapshot_table
from tests.factories import analysis, failed, ok

PRICE_HINT = "(set MATREC_PRICES__INPUT_USD_PER_MTOK and MATREC_PRICES__OUTPUT_USD_PER_MTOK)"


def _branches() -> list[BranchResult]:
    results = [ok(m, 8 - i) for i, m in enumerate(CLASS_ORDER)]
    results[2] = failed(MaterialClass.CERAMIC, "Claude had a server error")
    return results


def _recommendation(cost_usd: float | None = 0.0123, model: str = "claude-sonnet-5-5") -> Recommendation:
    total = TokenUsage(input_tokens=9_000, output_tokens=1_000)
    return Recommendation(
        part="bracket.jpg",
        best=MaterialClass.METAL,
        runner_up=MaterialClass.POLYMER,
        rationale="Metal is stiffer.\nPolymer is cheaper at volume.",
        confidence="medium",
        scores={m: 5.0 for m in CLASS_ORDER},
        strategy=Strategy.CLAUDE,
        mode=Mode.PARALLEL,
        branches=_branches(),
        usage=UsageReport(
            branches=total, aggregation=TokenUsage(), total=total, cost_usd=cost_usd, calls=7, model=model
        ),
        timing=Timing(wall_s=4.2, slowest_branch_s=3.0, aggregation_s=1.0, prepare_s=0.1, branch_path_s=3.0),
    )


def _snapshot(recommendation: Recommendation | None = None) -> RunSnapshot:
    states = tuple(
        BranchState(material=b.material, status=BranchStatus.DONE if b.ok else BranchStatus.FAILED, result=b)
        for b in _branches()
    )
    return RunSnapshot(
        run_id="r1",
        part="bracket.jpg",
        mode=Mode.PARALLEL,
        strategy=Strategy.CLAUDE,
        branches=states,
        aggregation=StageStatus.RUNNING,
        recommendation=recommendation,
    )


def _text(renderable: RenderableType, height: int = 200) -> str:
    console = Console(record=True, width=120, height=height, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_each_finished_class_shows_its_grades_strengths_and_concerns() -> None:
    shown = _text(snapshot_table(_snapshot()))
    for material in (MaterialClass.METAL, MaterialClass.WOOD):
        assert f"grades: {material.value} grade" in shown
        assert f"+ {material.value} strength" in shown
        assert f"- {material.value} concern" in shown
    assert "Claude had a server error" in shown and "ceramic grade" not in shown


def test_the_live_frame_drops_details_that_do_not_fit_but_keeps_the_aggregation_line() -> None:
    shown = _text(Frame([_snapshot()]), height=20)
    assert "grades:" not in shown
    assert "metal scores 8" in shown
    assert "aggregation: comparing the classes" in shown


def test_the_last_frame_keeps_every_detail_whatever_the_height() -> None:
    shown = _text(Frame([_snapshot(_recommendation())], final=True), height=20)
    assert "grades: metal grade" in shown and "Best: Metal" in shown


def test_the_footer_shows_an_estimated_cost_when_the_model_has_a_price() -> None:
    assert "~$0.012." in footer(_recommendation(cost_usd=0.0123))
    assert "~$0.012" in _text(recommendation_panel(_recommendation(cost_usd=0.0123)))


def test_the_footer_says_how_to_give_a_price_when_the_model_has_none() -> None:
    shown = footer(_recommendation(cost_usd=None, model="claude-future-9"))
    assert f"cost: no price for claude-future-9 {PRICE_HINT}" in shown
    assert shown.startswith("4.2 s, 7 calls, 10,000 tokens, ")
    assert "$" not in shown


def test_json_has_a_null_cost_and_names_the_model_when_there_is_no_price() -> None:
    usage = recommendation_json(_recommendation(cost_usd=None, model="claude-future-9"))["usage"]
    assert (usage["cost_usd"], usage["model"], usage["calls"]) == (None, "claude-future-9", 7)


def test_plain_text_keeps_each_item_on_one_whole_line() -> None:
    lines = recommendation_text(_recommendation()).splitlines()
    assert lines[0] == "bracket.jpg: Best: Metal   runner-up: Polymer   confidence: medium"
    assert lines[1] == "Metal is stiffer. Polymer is cheaper at volume."
    assert lines[-1] == footer(_recommendation())


def test_a_branch_line_is_one_line_however_long_its_summary() -> None:
    summary = "A long verdict.\n" + "word " * 80
    long = BranchResult(
        material=MaterialClass.METAL,
        status="ok",
        analysis=analysis(MaterialClass.METAL, 8).model_copy(update={"summary": summary}),
    )
    snapshot = _snapshot().model_copy(
        update={"branches": (BranchState(material=MaterialClass.METAL, status=BranchStatus.DONE, result=long),)}
    )
    line = progress_line(ProgressEvent(kind=EventKind.BRANCH_DONE, branch=0, snapshot=snapshot))
    assert line is not None and "\n" not in line
    assert line.startswith("[bracket.jpg] Metal: 8/10, recommended. A long verdict. word word")
    assert line.endswith("Grades: metal grade. Strengths: metal strength. Concerns: metal concern.")


def test_a_failed_consultation_gets_no_progress_line_since_it_is_reported_once_on_stderr() -> None:
    snapshot = _snapshot().model_copy(update={"status": StageStatus.FAILED, "error": "Only 0 of 6"})
    assert progress_line(ProgressEvent(kind=EventKind.RUN_FAILED, snapshot=snapshot)) is None
