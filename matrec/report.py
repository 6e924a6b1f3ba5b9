"""Plain renderings of a recommendation: the JSON shape, one-line progress, and the text shared by CLI and bot.

Everything here is plain text, one logical line per line: output that is piped or logged is
never wrapped, so each line can be grepped whole.
"""

from __future__ import annotations

from typing import Any

from matrec.errors import BadInputError, MatrecError
from matrec.materials import CLASS_ORDER, PROFILES, MaterialClass
from matrec.progress import BranchState, BranchStatus, ProgressEvent
from matrec.results import BranchResult, Recommendation
from matrec.schema import BranchAnalysis
from matrec.settings import EngineSettings, env_name

TYPICAL_VALUES_NOTE = "Property figures are typical class values, not design allowables."


def branch_json(result: BranchResult) -> dict[str, Any]:
    """One branch as JSON: status, score and the analysis, or the error."""
    analysis = result.analysis
    return {
        "material": result.material.value,
        "condition": result.condition,
        "status": result.status,
        "suitability": result.suitability,
        "recommended": analysis.recommended if analysis else None,
        "error": result.error,
        "failure": result.failure.value if result.failure else None,
        "analysis": analysis.model_dump(mode="json") if analysis else None,
        "usage": result.usage.model_dump(),
        "elapsed_s": round(result.elapsed_s, 3),
        "queued_s": round(result.queued_s, 3),
    }


def recommendation_json(rec: Recommendation) -> dict[str, Any]:
    """The `--json` object for one part; `usage.cost_usd` is null when the model has no price."""
    usage = {**rec.usage.total.model_dump(), "cost_usd": rec.usage.cost_usd, "calls": rec.usage.calls}
    return {
        "part": rec.part,
        "best": rec.best.value,
        "runner_up": rec.runner_up.value if rec.runner_up else None,
        "confidence": rec.confidence,
        "rationale": rec.rationale,
        "scores": {m.value: rec.scores.get(m) for m in CLASS_ORDER},
        "screened_out": [s.model_dump(mode="json") for s in rec.screened_out],
        "questions": rec.questions,
        "missing": [m.value for m in rec.missing],
        "notes": rec.notes,
        "strategy": rec.strategy.value,
        "mode": rec.mode.value,
        "branches": [branch_json(b) for b in rec.branches],
        "usage": {**usage, "model": rec.usage.model},
        "timing": {
            "wall_s": round(rec.timing.wall_s, 3),
            "critical_path_s": round(rec.timing.critical_path_s, 3),
            "slowest_branch_s": round(rec.timing.slowest_branch_s, 3),
            "aggregation_s": round(rec.timing.aggregation_s, 3),
            "prepare_s": round(rec.timing.prepare_s, 3),
        },
        "image": rec.image.model_dump() if rec.image else None,
    }


def error_json(part: str, error: MatrecError) -> dict[str, Any]:
    """The `--json` object for a part that got no recommendation."""
    kind = "bad_input" if isinstance(error, BadInputError) else "failed"
    return {"part": part, "best": None, "error": str(error), "error_kind": kind}


def label(material: MaterialClass) -> str:
    """A class's display name."""
    return PROFILES[material].label


def one_line(text: str) -> str:
    """`text` with every run of whitespace, newlines included, as one space."""
    return " ".join(text.split())


def branch_name(state: BranchState) -> str:
    """A branch's class, and its operating condition's short name in nested mode."""
    condition = f" / {state.condition.split(':')[0]}" if state.condition else ""
    return label(state.material) + condition


def grades(analysis: BranchAnalysis) -> str:
    """The example grades, comma-separated."""
    return ", ".join(one_line(g) for g in analysis.example_grades)


def listing(items: list[str]) -> str:
    """Short items (strengths, concerns) on one line."""
    return "; ".join(one_line(i) for i in items)


def progress_line(event: ProgressEvent) -> str | None:
    """One line for a branch that just finished, for output that is not a terminal; else None.

    A consultation that fails as a whole gets no line here: the caller reports it once, on stderr.
    """
    if event.branch is None:
        return None
    snapshot = event.snapshot
    state = snapshot.branches[event.branch]
    if state.status not in (BranchStatus.DONE, BranchStatus.FAILED) or state.result is None:
        return None
    head = f"[{snapshot.part}] {branch_name(state)}"
    analysis = state.result.analysis
    if analysis is None:
        return f"{head}: failed: {one_line(state.result.error or 'no analysis')}"
    verdict = "recommended" if analysis.recommended else "not recommended"
    strengths, concerns = listing(analysis.strengths), listing(analysis.concerns)
    details = f"Grades: {grades(analysis)}. Strengths: {strengths}. Concerns: {concerns}."
    return f"{head}: {analysis.suitability}/10, {verdict}. {one_line(analysis.summary)} {details}"


def headline(rec: Recommendation) -> tuple[str, str]:
    """The best class, then the runner-up and confidence: two pieces a renderer may style apart."""
    runner = f"   runner-up: {label(rec.runner_up)}" if rec.runner_up else ""
    return f"Best: {label(rec.best)}", f"{runner}   confidence: {rec.confidence}"


def scores_line(rec: Recommendation) -> str:
    """The calibrated scores of every class."""
    scores = "  ".join(f"{m.value} {s:g}" if s is not None else f"{m.value} n/a" for m, s in rec.scores.items())
    return f"Calibrated scores: {scores}"


def recommendation_text(rec: Recommendation) -> str:
    """The recommendation as plain lines, none wrapped: for output that is not a terminal."""
    best, rest = headline(rec)
    lines = [f"{rec.part}: {best}{rest}", one_line(rec.rationale), scores_line(rec)]
    lines += [f"Screened out: {s.material.value}: {one_line(s.reason)}" for s in rec.screened_out]
    if rec.missing:
        lines.append("Could not be assessed: " + ", ".join(m.value for m in rec.missing))
    lines += [f"? {one_line(q)}" for q in rec.questions]
    lines += [one_line(n) for n in rec.notes]
    lines.append(footer(rec))
    return "\n".join(lines)


def cost_text(rec: Recommendation) -> str:
    """`~$0.012`, or how to give a price when the model has none."""
    if rec.usage.cost_usd is not None:
        return f"~${rec.usage.cost_usd:.3f}"
    prices = [env_name(EngineSettings, ("prices", field)) for field in ("input_usd_per_mtok", "output_usd_per_mtok")]
    model = rec.usage.model or "this model"
    return f"cost: no price for {model} (set {prices[0]} and {prices[1]})"


def footer(rec: Recommendation) -> str:
    """Time, tokens and estimated cost, in one line."""
    usage = rec.usage.total
    tokens = usage.input_tokens + usage.output_tokens + usage.cache_write_tokens + usage.cache_read_tokens
    cached = f", {usage.cache_read_tokens:,} read from cache" if usage.cache_read_tokens else ""
    return (
        f"{rec.timing.wall_s:.1f} s, {rec.usage.calls} calls, {tokens:,} tokens{cached}, "
        f"{cost_text(rec)}. {TYPICAL_VALUES_NOTE}"
    )
