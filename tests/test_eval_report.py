"""The evaluation report on a hand-built run: files written, numbers as the metrics compute them,
the emulator warning by flag, plots that decode, JSON that reads back, the same bytes twice."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from matrec.choices import Mode, Strategy
from matrec.eval.dataset import Case
from matrec.eval.metrics import Prediction, mean_absolute_error, paired_difference, summarise, top_k_accuracy
from matrec.eval.report import EMULATOR_WARNING, write_report
from matrec.eval.results import Arm, ArmResults, Estimate, EvalPlan, EvalResults, Failure, Outcome
from matrec.materials import CLASS_ORDER, MaterialClass

M = MaterialClass
RESAMPLES = 200  # enough to exercise the intervals; the default 2,000 only makes the test slower
MODEL = "claude-sonnet-5-5"

# Reference scores in class order: metal, polymer, ceramic, composite, elastomer, wood.
REFERENCES = {
    "kiln-shelf": ([M.CERAMIC], (3, 1, 9, 2, 0, 0)),
    "drone-arm": ([M.COMPOSITE], (6, 4, 1, 9, 1, 3)),
    "garden-bench": ([M.WOOD, M.METAL], (6, 5, 1, 4, 0, 8)),
    "pump-bracket": ([M.METAL], (9, 4, 2, 6, 1, 2)),
}
SINGLE_BEST = {"kiln-shelf": M.CERAMIC, "drone-arm": M.METAL, "garden-bench": M.WOOD, "pump-bracket": None}
PARALLEL_BEST = {"kiln-shelf": M.CERAMIC, "drone-arm": M.COMPOSITE, "garden-bench": M.METAL, "pump-bracket": M.METAL}


def cases() -> list[Case]:
    return [
        Case(
            id=case_id,
            text=f"scenario {case_id}",
            expected=expected,
            reference_scores=dict(zip(CLASS_ORDER, map(float, scores), strict=True)),
            origin="author estimate",
        )
        for case_id, (expected, scores) in REFERENCES.items()
    ]


def outcome(
    case_id: str, best: MaterialClass | None, *, shift: float, branch_shift: float, latency: float, calls: int
) -> Outcome:
    """A consultation whose scores are the reference plus `shift` (and branch scores plus `branch_shift`)."""
    reference = dict(zip(CLASS_ORDER, REFERENCES[case_id][1], strict=True))
    scores = {} if best is None else {c: min(10.0, s + shift) for c, s in reference.items()}
    ranking = sorted(scores, key=lambda c: (-scores[c], CLASS_ORDER.index(c)))
    prediction = Prediction(
        case_id=case_id,
        repetition=0,
        best=best,
        ranking=ranking,
        scores=scores,
        latency_s=latency,
        cost_usd=None if best is None else 0.002 * (1 + latency),
        tokens=0 if best is None else int(1000 * latency),
    )
    branch = {} if best is None else {c: min(10.0, s + branch_shift) for c, s in reference.items()}
    return Outcome(
        prediction=prediction,
        branch_scores=branch,
        calibrated_scores=scores,
        failure="every call failed" if best is None else None,
        calls=0 if best is None else calls,
    )


def results(*, emulated: bool = True, with_references: bool = True) -> EvalResults:
    """Single over-rates by a point and fails once; parallel's branches over-rate and its aggregator corrects them."""
    single = [
        # The runner gives single mode "branch" scores too: the one prompt's own, equal to its verdict's.
        outcome(case_id, best, shift=1.0, branch_shift=1.0, latency=1.0 + 0.1 * i, calls=1)
        for i, (case_id, best) in enumerate(SINGLE_BEST.items())
    ]
    parallel = [
        outcome(case_id, best, shift=0.0, branch_shift=1.0, latency=2.0 + 0.2 * i, calls=7)
        for i, (case_id, best) in enumerate(PARALLEL_BEST.items())
    ]
    the_cases = cases() if with_references else [c.model_copy(update={"reference_scores": None}) for c in cases()]
    return EvalResults(
        plan=EvalPlan(
            dataset=Path("datasets/tiny.jsonl"), modes=(Mode.SINGLE, Mode.PARALLEL), strategies=(Strategy.CLAUDE,)
        ),
        cases=the_cases,
        started=datetime(2026, 12, 1, 4, 0, 0, tzinfo=UTC),
        finished=datetime(2026, 12, 1, 4, 1, 30, tzinfo=UTC),
        matrec_version="0.1.0",
        prompt_hash="0123456789abcdef" * 4,
        emulated=emulated,
        base_url="http://127.0.0.1:8765" if emulated else None,
        estimate=Estimate(
            consultations=8,
            calls=32,
            input_tokens=40_000,
            image_tokens=0,
            output_tokens=8_000,
            thinking_tokens=2_000,
            usd=0.05,
        ),
        actual_cost_usd=0.04,
        actual_calls=31,
        consultations=8,
        consultations_run=8,
        consultations_cached=0,
        arms=[
            # Parallel first: the report, not the runner, puts single beside parallel.
            ArmResults(
                arm=Arm(mode=Mode.PARALLEL, strategy=Strategy.CLAUDE, effort="medium", model=MODEL), outcomes=parallel
            ),
            ArmResults(
                arm=Arm(mode=Mode.SINGLE, strategy=Strategy.CLAUDE, effort="medium", model=MODEL), outcomes=single
            ),
        ],
        failures=[
            Failure(
                case_id="pump-bracket",
                mode=Mode.SINGLE,
                effort="medium",
                model=MODEL,
                repetition=0,
                reason="every call failed",
            )
        ],
    )


def table_rows(markdown: str, heading: str) -> dict[str, list[str]]:
    """The rows of the first table under `## heading`, by their first cell."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # past the header and rule
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    return {row[0]: row[1:] for row in cells}


def pct(value: float) -> str:
    return f"{value * 100:.0f}%"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[EvalResults, Path, Any]:
    run = results()
    out = tmp_path_factory.mktemp("report")
    return run, out, write_report(run, out / "nested" / "dir", resamples=RESAMPLES)


def test_the_report_writes_markdown_json_and_four_plots_that_decode(written: tuple[EvalResults, Path, Any]) -> None:
    _, out, files = written
    assert files.markdown == out / "nested" / "dir" / "report.md"
    assert files.json == out / "nested" / "dir" / "report.json"
    assert [p.name for p in files.plots] == [
        "accuracy.png",
        "scores_vs_reference.png",
        "recalibration.png",
        "latency.png",
    ]
    for path in files.plots:
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG"
            assert image.size[0] >= 600 and image.size[1] >= 400
        assert f"]({path.name})" in files.markdown.read_text(encoding="utf-8")


def test_the_headline_numbers_are_those_of_summarise(written: tuple[EvalResults, Path, Any]) -> None:
    run, _, files = written
    headline = table_rows(files.markdown.read_text(encoding="utf-8"), "Headline")
    assert list(headline) == ["single+claude", "parallel+claude"]  # single beside parallel, single first
    for mode in (Mode.SINGLE, Mode.PARALLEL):
        s = summarise(run.arm(mode, Strategy.CLAUDE).predictions(), run.cases, resamples=RESAMPLES)
        row = headline[f"{mode.value}+claude"]
        assert row[0] == "4"
        assert row[1] == f"{pct(s.top1.value)} ({s.top1.ci_low * 100:.0f}–{s.top1.ci_high * 100:.0f}%)"
        assert row[2] == f"{pct(s.top2.value)} ({s.top2.ci_low * 100:.0f}–{s.top2.ci_high * 100:.0f}%)"
        assert row[3] == pct(s.failure_rate.value)
        assert s.mae is not None and s.bias is not None
        assert row[4:6] == [f"{s.mae.value:.2f}", f"{s.bias.value:+.2f}"]
        assert row[8:10] == [f"{s.latency_p50_s:.2f} s", f"{s.latency_p95_s:.2f} s"]
    # Hand-computed: single hits kiln and bench, misses drone, fails the pump (25% failures);
    # parallel hits all four (the bench accepts metal).
    assert headline["single+claude"][1].startswith("50% ")
    assert headline["single+claude"][3] == "25%"
    assert headline["parallel+claude"][1].startswith("100% ")
    assert headline["parallel+claude"][5] == "+0.00"  # the calibrated scores are the reference


def test_the_paired_comparison_is_parallel_minus_single_on_the_same_cases(
    written: tuple[EvalResults, Path, Any],
) -> None:
    run, _, files = written
    parallel = run.arm(Mode.PARALLEL, Strategy.CLAUDE).predictions()
    single = run.arm(Mode.SINGLE, Strategy.CLAUDE).predictions()
    top1 = paired_difference(parallel, single, run.cases, top_k_accuracy, resamples=RESAMPLES)
    mae = paired_difference(parallel, single, run.cases, mean_absolute_error, resamples=RESAMPLES)
    row = table_rows(files.markdown.read_text(encoding="utf-8"), "Single prompt against the panel (paired)")[
        "parallel+claude − single+claude"
    ]
    assert top1.mean_diff == pytest.approx(0.5)
    assert row[1] == f"{top1.mean_diff * 100:+.0f} pts ({top1.ci_low * 100:+.0f} to {top1.ci_high * 100:+.0f})"
    assert row[2] == f"{top1.p_value:.3f}"
    assert row[3] == f"{mae.mean_diff:+.2f} ({mae.ci_low:+.2f} to {mae.ci_high:+.2f})"


def test_the_recalibration_section_shows_branch_bias_corrected_by_the_aggregator(
    written: tuple[EvalResults, Path, Any],
) -> None:
    _, _, files = written
    rows = table_rows(files.markdown.read_text(encoding="utf-8"), "What the aggregator's recalibration did")
    assert list(rows) == ["parallel+claude"]  # one prompt has no aggregator to recalibrate
    cells, bias, _, _, shift, _ = rows["parallel+claude"]
    # 4 consultations x 6 classes; branches are the reference + 1 (capped at 10: the kiln's
    # ceramic 9 -> 10 is a full point too), calibrated the reference itself.
    assert cells == "24"
    assert bias == "+1.00 → +0.00"
    assert shift == "-1.00"


def test_an_emulator_run_is_said_plainly_at_the_top(written: tuple[EvalResults, Path, Any]) -> None:
    _, _, files = written
    markdown = files.markdown.read_text(encoding="utf-8")
    assert EMULATOR_WARNING in markdown.split("## Headline")[0]
    assert json.loads(files.json.read_text(encoding="utf-8"))["warning"] == EMULATOR_WARNING


def test_a_run_against_claude_carries_no_emulator_warning(tmp_path: Path) -> None:
    files = write_report(results(emulated=False), tmp_path, resamples=RESAMPLES)
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "emulator" not in markdown.lower()
    assert "| Answered by | the Anthropic API |" in markdown
    assert json.loads(files.json.read_text(encoding="utf-8"))["warning"] is None


def test_the_header_records_what_the_run_ran_with(written: tuple[EvalResults, Path, Any]) -> None:
    _, _, files = written
    header = files.markdown.read_text(encoding="utf-8").split("## Headline")[0]
    for line in (
        "| Dataset | `datasets/tiny.jsonl` |",
        "| Cases | 4 (4 with reference scores) |",
        "| Repetitions | 1 |",
        f"| Model | {MODEL} |",
        "| Effort | medium |",
        "| Prompt hash | `0123456789ab` |",
        "| matrec version | 0.1.0 |",
        "| Date | 2026-12-01 04:01 UTC (took 1 min 30 s) |",
    ):
        assert line in header


def test_the_json_holds_the_same_figures_and_the_whole_run(written: tuple[EvalResults, Path, Any]) -> None:
    run, _, files = written
    report = json.loads(files.json.read_text(encoding="utf-8"))
    assert EvalResults.model_validate(report["results"]) == run
    by_label = {arm["label"]: arm for arm in report["arms"]}
    single = summarise(run.arm(Mode.SINGLE, Strategy.CLAUDE).predictions(), run.cases, resamples=RESAMPLES)
    assert by_label["single+claude"]["metrics"] == json.loads(json.dumps(asdict(single)))
    assert report["run"]["prompt_hash"] == run.prompt_hash
    assert report["cost"]["estimate"]["usd"] == 0.05
    assert report["per_case"][3] == {
        "id": "pump-bracket",
        "expected": ["metal"],
        "predicted": {"single+claude": [None], "parallel+claude": ["metal"]},
    }


def test_every_case_and_every_failure_is_in_the_appendix(written: tuple[EvalResults, Path, Any]) -> None:
    _, _, files = written
    markdown = files.markdown.read_text(encoding="utf-8")
    per_case = table_rows(markdown, "Appendix: every case")
    assert per_case["drone-arm"] == ["composite", "metal ✗", "composite"]
    assert per_case["garden-bench"] == ["wood / metal", "wood", "metal"]
    assert per_case["pump-bracket"] == ["metal", "none ✗", "metal"]
    assert table_rows(markdown, "Appendix: failures")["pump-bracket"] == [
        "single",
        "medium",
        MODEL,
        "0",
        "every call failed",
    ]


def test_the_same_results_write_the_same_bytes(tmp_path: Path) -> None:
    first = write_report(results(), tmp_path / "a", resamples=RESAMPLES)
    second = write_report(results(), tmp_path / "b", resamples=RESAMPLES)
    for one, other in zip(
        [first.markdown, first.json, *first.plots], [second.markdown, second.json, *second.plots], strict=True
    ):
        assert one.read_bytes() == other.read_bytes(), one.name


def test_without_reference_scores_the_score_columns_say_na_and_the_scatter_is_left_out(tmp_path: Path) -> None:
    files = write_report(results(with_references=False), tmp_path, resamples=RESAMPLES)
    assert [p.name for p in files.plots] == ["accuracy.png", "latency.png"]
    headline = table_rows(files.markdown.read_text(encoding="utf-8"), "Headline")
    assert headline["parallel+claude"][4:8] == ["n/a", "n/a", "n/a", "n/a"]


def test_importing_the_report_does_not_import_matplotlib() -> None:
    code = "import sys, matrec.eval.report; print('matplotlib' in sys.modules)"
    repo = Path(__file__).resolve().parents[1]  # this checkout's matrec, whatever is installed
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=repo, check=False
    )
    assert done.stdout.strip() == "False", done.stderr


def test_a_run_with_several_efforts_names_the_effort_in_each_arm(tmp_path: Path) -> None:
    run = results()
    high = [a.model_copy(update={"arm": a.arm.model_copy(update={"effort": "high"})}) for a in run.arms]
    run = run.model_copy(
        update={"arms": run.arms + high, "plan": run.plan.model_copy(update={"efforts": ("medium", "high")})}
    )
    files = write_report(run, tmp_path, resamples=RESAMPLES)
    markdown = files.markdown.read_text(encoding="utf-8")
    assert list(table_rows(markdown, "Headline")) == [
        "single+claude · medium",
        "parallel+claude · medium",
        "single+claude · high",
        "parallel+claude · high",
    ]
    paired = table_rows(markdown, "Single prompt against the panel (paired)")
    assert list(paired) == [
        "parallel+claude · medium − single+claude · medium",
        "parallel+claude · high − single+claude · high",
    ]
    assert "| Efforts | medium, high |" in markdown


def test_a_stopped_run_says_why_and_that_cached_consultations_cost_nothing_now(tmp_path: Path) -> None:
    run = results().model_copy(
        update={"stopped": "the cost limit of $0.04 was reached", "consultations_run": 5, "consultations_cached": 3}
    )
    markdown = write_report(run, tmp_path, resamples=RESAMPLES).markdown.read_text(encoding="utf-8")
    header = markdown.split("## Headline")[0]
    assert "**The run stopped early: the cost limit of $0.04 was reached.**" in header
    assert "| Consultations | 8 planned: 5 run now, 3 from the cache, 1 without a recommendation |" in header
    assert "3 consultations came from the cache and cost nothing now" in markdown
    # $0.04 over the 5 run now against the estimate's $0.05 over 8: $0.0080 vs $0.0063 each.
    assert "Per consultation: estimated $0.0063, actual $0.0080 (128% of the estimate)." in markdown


def test_a_run_stopped_before_any_answer_still_writes_a_report_without_plots(tmp_path: Path) -> None:
    run = results()
    empty = [a.model_copy(update={"outcomes": []}) for a in run.arms]
    run = run.model_copy(update={"arms": empty, "failures": [], "stopped": "interrupted", "consultations_run": 0})
    files = write_report(run, tmp_path, resamples=RESAMPLES)
    assert files.plots == []
    markdown = files.markdown.read_text(encoding="utf-8")
    assert table_rows(markdown, "Headline") == {}
    assert "No consultation finished, so there is nothing to measure." in markdown
    assert table_rows(markdown, "Appendix: every case")["drone-arm"] == ["composite"]
    assert json.loads(files.json.read_text(encoding="utf-8"))["arms"] == []
