"""The evaluation report: an `EvalResults` written as Markdown, JSON and PNG plots.

The Markdown is for people: the run's facts and (for an emulator run) a plain warning first, then
the headline table with single and parallel side by side, the paired comparison, what the
aggregator's recalibration did, how to read each figure, and every case in an appendix. The JSON
holds the same figures for programs plus the whole `EvalResults` (every raw prediction), so a
report can be rebuilt from it without calling Claude again. The figures come from
`matrec.eval.analysis` with a fixed seed and the date is the run's own, so the same results
always give the same report.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from matrec.eval.analysis import ArmSummary, ReportData, analyse
from matrec.eval.dataset import Case
from matrec.eval.metrics import DEFAULT_RESAMPLES, DEFAULT_SEED, MetricValue
from matrec.eval.plots import write_plots
from matrec.eval.results import EvalResults

REPORT_MD: Final = "report.md"
REPORT_JSON: Final = "report.json"
PROMPT_HASH_CHARS: Final = 12
EMULATOR_WARNING: Final = (
    "These answers came from the Claude emulator: scripted, saying nothing about quality; "
    "the report shows the mechanics only."
)
NA: Final = "n/a"
AUTHOR_ESTIMATE_NOTE: Final = (
    "Author estimates (as in the example set shipped with matrec) are the dataset authors' judgement, "
    "not an expert panel's mean: read these columns as agreement with that judgement, and top-1/top-2 "
    "accuracy as the headline."
)


@dataclass(frozen=True)
class ReportFiles:
    """The files `write_report` wrote."""

    markdown: Path
    json: Path
    plots: list[Path]


def write_report(
    results: EvalResults, out_dir: Path, *, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> ReportFiles:
    """Write report.md, report.json and the PNG plots into `out_dir` (created if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = analyse(results, resamples=resamples, seed=seed)
    plots = write_plots(results.cases, data, out_dir, emulated=results.emulated)
    markdown = out_dir / REPORT_MD
    markdown.write_text(render_markdown(results, data, [p.name for p in plots]), encoding="utf-8")
    json_path = out_dir / REPORT_JSON
    json_path.write_text(json.dumps(report_json(results, data), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return ReportFiles(markdown=markdown, json=json_path, plots=plots)


# --- JSON ----------------------------------------------------------------------------------------


def report_json(results: EvalResults, data: ReportData) -> dict[str, Any]:
    """The report's figures as JSON-ready data, with the whole run (raw predictions) under "results"."""
    return {
        "emulated": results.emulated,
        "warning": EMULATOR_WARNING if results.emulated else None,
        "run": _run_facts(results),
        "reference_origins": dict(_origins(results.cases)),
        "arms": [
            {
                "label": s.label,
                "mode": s.arm.mode.value,
                "strategy": s.arm.strategy.value,
                "effort": s.arm.effort,
                "model": s.arm.model,
                "calls_mean": s.calls_mean,
                "metrics": asdict(s.summary),
            }
            for s in data.arms
        ],
        "paired": [asdict(p) for p in data.paired],
        "recalibration": [asdict(r) for r in data.recalibration],
        "cost": {
            "estimate": results.estimate.model_dump(mode="json"),
            "actual_usd": results.actual_cost_usd,
            "actual_calls": results.actual_calls,
            "consultations": results.consultations,
            "consultations_run": results.consultations_run,
            "consultations_cached": results.consultations_cached,
        },
        "per_case": [
            {
                "id": case.id,
                "expected": [c.value for c in case.expected],
                "predicted": {s.label: _predicted(s, case.id) for s in data.arms},
            }
            for case in results.cases
        ],
        "results": results.model_dump(mode="json"),  # EvalResults.model_validate reads it back
    }


def _run_facts(results: EvalResults) -> dict[str, Any]:
    plan = results.plan
    return {
        "dataset": str(plan.dataset),
        "cases": len(results.cases),
        "repetitions": plan.repetitions,
        "models": list(plan.models),
        "efforts": list(plan.efforts),
        "modes": [m.value for m in plan.modes],
        "strategies": [s.value for s in plan.strategies],
        "prompt_hash": results.prompt_hash,
        "matrec_version": results.matrec_version,
        "started": results.started.isoformat(),
        "finished": results.finished.isoformat(),
        "base_url": results.base_url,
        "stopped": results.stopped,
    }


def _origins(cases: Sequence[Case]) -> Counter[str]:
    """How many cases' reference scores come from each origin ("unstated" when the row does not say)."""
    return Counter((case.origin or "unstated") for case in cases if case.reference_scores is not None)


def _predicted(arm: ArmSummary, case_id: str) -> list[str | None]:
    """The arm's best class for the case, one entry per repetition (None: no recommendation)."""
    return [
        o.prediction.best.value if o.prediction.best else None for o in arm.outcomes if o.prediction.case_id == case_id
    ]


# --- Markdown ------------------------------------------------------------------------------------

HOW_TO_READ: Final = """\
**Top-1 and top-2 accuracy.** The share of consultations whose best class (top-1), or either of
its two best (top-2), is the case's expected class or one of its acceptable set. A consultation
with no recommendation counts as wrong. These lead the report: they need no reference scores.
The interval is a 95% bootstrap over cases (a case brings all its repetitions), so with a few
dozen cases a difference of ten points may well be noise; look at the paired comparison.

**Failure rate.** The share of consultations that gave no recommendation at all (every call
failed, the run timed out, no quorum). Already counted as wrong above; shown so that an accuracy
lost to failures is not mistaken for an accuracy lost to bad judgement.

**MAE and bias.** Mean absolute and mean signed difference between the predicted and the reference
score per class, on 0-10. Grandi et al. (2025) found that one LLM asked to rate materials
over-rates them by about a point (GPT-4: about +1): a bias near +1 is that failure; near 0 is what
the recalibrating aggregator is for.

**Rank correlation.** Per case, the Spearman correlation between the predicted and the reference
scores over the classes, averaged over cases: does the predictor order the classes as the
reference does.

**Scenario sensitivity.** Does a class's score move between scenarios the way the reference's
does (the Pearson correlation of each class's deviations from its own mean over cases)? Grandi et
al. measured about 0.14 for an LLM against about 0.93 between two halves of the expert panel: a
predictor that rates a class the same whatever the scenario scores near 0. The example set's
one-requirement pairs exist to measure this.

**Latency.** p50 and p95 of each consultation's own critical path (its longest branch, then
aggregation), not time spent queueing behind other cases, so it is what a user would wait.
In the panel modes, vote and weighted reuse the claude run's branch calls and make no
aggregation call, so their latency is the branches' alone.

**Tokens and cost.** Per consultation, from the billed usage and the price table; the estimate
made before the run is shown beside the actual cost.

**Recalibration.** The specialists' own suitability scores (branch) and the aggregator's
calibrated scores, each against the reference: if the branches over-rate and the calibrated
scores have less bias and more scenario sensitivity, the aggregator is doing its job."""


def render_markdown(results: EvalResults, data: ReportData, plots: Sequence[str]) -> str:
    """The whole report.md: facts and warning, headline, details, comparison, recalibration, appendix."""
    sections = [
        _header(results),
        _headline(data),
        _scores(results, data),
        _speed_and_cost(results, data),
        _paired_section(data),
        _recalibration_section(data),
        "## Plots\n\n" + "\n\n".join(f"![{Path(name).stem}]({name})" for name in plots) if plots else "",
        "## How to read this report\n\n" + HOW_TO_READ,
        _per_case(results, data),
        _failures(results),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _header(results: EvalResults) -> str:
    plan = results.plan
    references = sum(case.reference_scores is not None for case in results.cases)
    failed = len(results.failures)
    answered_by = results.base_url or "the Anthropic API"
    lines = [f"# matrec evaluation: {plan.dataset.name}", ""]
    if results.emulated:
        lines += [f"> **Emulator run.** {EMULATOR_WARNING}", ""]
    lines += [
        "| | |",
        "|---|---|",
        f"| Dataset | `{plan.dataset}` |",
        f"| Cases | {len(results.cases)} ({references} with reference scores) |",
        f"| Repetitions | {plan.repetitions} |",
        f"| Modes | {', '.join(m.value for m in plan.modes)} |",
        f"| Strategies | {', '.join(s.value for s in plan.strategies)} |",
        f"| Model{'s' if len(plan.models) > 1 else ''} | {', '.join(plan.models)} |",
        f"| Effort{'s' if len(plan.efforts) > 1 else ''} | {', '.join(plan.efforts)} |",
        f"| Prompt hash | `{results.prompt_hash[:PROMPT_HASH_CHARS]}` |",
        f"| matrec version | {results.matrec_version} |",
        f"| Date | {_utc(results.finished)} (took {_duration(results.finished - results.started)}) |",
        f"| Answered by | {answered_by}{' (emulator)' if results.emulated else ''} |",
        f"| Consultations | {results.consultations} planned: {results.consultations_run} run now, "
        f"{results.consultations_cached} from the cache, {failed} without a recommendation |",
    ]
    if results.stopped:
        lines += ["", f"**The run stopped early: {_cell(results.stopped)}.** The figures cover the cases it finished."]
    return "\n".join(lines)


def _headline(data: ReportData) -> str:
    rows = [
        "## Headline",
        "",
        "| Arm | Predictions | Top-1 (95% CI) | Top-2 (95% CI) | Failure rate | MAE | Bias | Rank corr. "
        "| Scenario sens. | Latency p50 | Latency p95 | Tokens | Cost |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in data.arms:
        m = s.summary
        rows.append(
            f"| {s.label} | {m.predictions} | {_pct_ci(m.top1)} | {_pct_ci(m.top2)} | {_pct(m.failure_rate.value)} "
            f"| {_num(m.mae)} | {_num(m.bias, signed=True)} | {_num(m.rank_correlation)} "
            f"| {_num(m.scenario_sensitivity)} | {_seconds(m.latency_p50_s)} | {_seconds(m.latency_p95_s)} "
            f"| {m.tokens_mean:,.0f} | {_usd(m.cost_usd_mean)} |"
        )
    if not data.arms:
        rows.append("\nNo consultation finished, so there is nothing to measure.")
    rows += [
        "",
        "Per consultation: latency is its own critical path, tokens and cost its mean. MAE and bias are on "
        "0-10 against the reference scores; a positive bias over-rates.",
    ]
    return "\n".join(rows)


def _scores(results: EvalResults, data: ReportData) -> str:
    origins = _origins(results.cases)
    if not origins:
        return (
            "## Scores against the reference\n\n"
            "No case gives reference scores: MAE, bias, correlation and sensitivity are n/a."
        )
    said = ", ".join(f"{origin} ({count} case{'s' if count > 1 else ''})" for origin, count in origins.most_common())
    rows = [
        "## Scores against the reference",
        "",
        f"Reference scores: {said}. " + (AUTHOR_ESTIMATE_NOTE if any("author" in o.lower() for o in origins) else ""),
        "",
        "| Arm | MAE (95% CI) | Bias (95% CI) | Rank correlation (95% CI) | Scenario sensitivity (95% CI) |",
        "|---|--:|--:|--:|--:|",
    ]
    for s in data.arms:
        m = s.summary
        rows.append(
            f"| {s.label} | {_num_ci(m.mae)} | {_num_ci(m.bias, signed=True)} | {_num_ci(m.rank_correlation)} "
            f"| {_num_ci(m.scenario_sensitivity)} |"
        )
    return "\n".join(rows)


def _speed_and_cost(results: EvalResults, data: ReportData) -> str:
    rows = [
        "## Speed and cost",
        "",
        "| Arm | Latency p50 | Latency p95 | Calls / consultation | Tokens / consultation | Cost / consultation |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for s in data.arms:
        m = s.summary
        rows.append(
            f"| {s.label} | {_seconds(m.latency_p50_s)} | {_seconds(m.latency_p95_s)} | {s.calls_mean:.1f} "
            f"| {m.tokens_mean:,.0f} | {_usd(m.cost_usd_mean)} |"
        )
    estimate = results.estimate
    rows += ["", f"**Estimate against actual.** Before the run: {estimate.headline()}."]
    actual = f"Actual: {_usd(results.actual_cost_usd)} over {results.actual_calls:,} calls made now"
    if results.consultations_cached:
        actual += f" ({results.consultations_cached} consultations came from the cache and cost nothing now)"
    rows[-1] += " " + actual + "."
    if estimate.usd and results.actual_cost_usd is not None and estimate.consultations and results.consultations_run:
        per_estimate = estimate.usd / estimate.consultations
        per_actual = results.actual_cost_usd / results.consultations_run
        rows[-1] += (
            f" Per consultation: estimated {_usd(per_estimate)}, actual {_usd(per_actual)} "
            f"({per_actual / per_estimate:.0%} of the estimate)."
        )
    return "\n".join(rows)


def _paired_section(data: ReportData) -> str:
    if not data.paired:
        return ""
    rows = [
        "## Single prompt against the panel (paired)",
        "",
        "The same cases resampled for both arms (95% bootstrap CI, two-sided p). Differences are the panel "
        "minus the single prompt: a positive top-1 difference and a negative MAE difference favour the panel.",
        "",
        "| Comparison | Cases | Top-1 difference (95% CI) | p | MAE difference (95% CI) | p |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for p in data.paired:
        top1 = f"{p.top1.mean_diff * 100:+.0f} pts ({p.top1.ci_low * 100:+.0f} to {p.top1.ci_high * 100:+.0f})"
        mae = NA if p.mae is None else f"{p.mae.mean_diff:+.2f} ({p.mae.ci_low:+.2f} to {p.mae.ci_high:+.2f})"
        rows.append(
            f"| {p.challenger} − {p.baseline} | {p.cases} | {top1} | {p.top1.p_value:.3f} | {mae} "
            f"| {NA if p.mae is None else f'{p.mae.p_value:.3f}'} |"
        )
    return "\n".join(rows)


def _recalibration_section(data: ReportData) -> str:
    if not data.recalibration:
        return ""
    rows = [
        "## What the aggregator's recalibration did",
        "",
        "The specialists' own suitability scores (branch) and the aggregator's calibrated scores, each against "
        "the reference, over the same cells (consultation × class). Shift is calibrated minus branch.",
        "",
        "| Arm | Cells | Bias: branch → calibrated | MAE: branch → calibrated | Sensitivity: branch → calibrated "
        "| Mean shift | Mean abs. shift |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in data.recalibration:
        rows.append(
            f"| {r.label} | {r.cells} | {_num(r.branch_bias, signed=True)} → {_num(r.calibrated_bias, signed=True)} "
            f"| {_num(r.branch_mae)} → {_num(r.calibrated_mae)} "
            f"| {_num(r.branch_sensitivity)} → {_num(r.calibrated_sensitivity)} "
            f"| {r.mean_shift:+.2f} | {r.mean_abs_shift:.2f} |"
        )
    return "\n".join(rows)


def _per_case(results: EvalResults, data: ReportData) -> str:
    rows = [
        "## Appendix: every case",
        "",
        'The best class per arm, one per repetition; ✗ marks a wrong one, "none" no recommendation.',
        "",
        _row(["Case", "Expected", *(s.label for s in data.arms)]),
        "|---|---|" + "---|" * len(data.arms),
    ]
    for case in results.cases:
        cells = []
        for s in data.arms:
            predicted = _predicted(s, case.id)
            cells.append(
                ", ".join(
                    "none ✗" if best is None else best if best in case.expected else f"{best} ✗" for best in predicted
                )
                or "–"
            )
        expected = " / ".join(c.value for c in case.expected)
        rows.append(_row([_cell(case.id), expected, *cells]))
    return "\n".join(rows)


def _failures(results: EvalResults) -> str:
    if not results.failures:
        return ""
    rows = [
        "## Appendix: failures",
        "",
        "| Case | Mode | Effort | Model | Repetition | Reason |",
        "|---|---|---|---|--:|---|",
    ]
    for f in results.failures:
        rows.append(
            f"| {_cell(f.case_id)} | {f.mode.value} | {f.effort} | {f.model} | {f.repetition} | {_cell(f.reason)} |"
        )
    return "\n".join(rows)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def _pct_ci(metric: MetricValue) -> str:
    return f"{_pct(metric.value)} ({metric.ci_low * 100:.0f}–{metric.ci_high * 100:.0f}%)"


def _num(metric: MetricValue | float | None, *, signed: bool = False) -> str:
    if metric is None:
        return NA
    value = metric.value if isinstance(metric, MetricValue) else metric
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _num_ci(metric: MetricValue | None, *, signed: bool = False) -> str:
    if metric is None:
        return NA
    form = "+.2f" if signed else ".2f"
    return f"{metric.value:{form}} ({metric.ci_low:{form}} to {metric.ci_high:{form}})"


def _seconds(value: float | None) -> str:
    return NA if value is None else f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _usd(value: float | None) -> str:
    return NA if value is None else f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def _utc(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # the runner records UTC
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(elapsed: timedelta) -> str:
    seconds = max(0, round(elapsed.total_seconds()))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")
