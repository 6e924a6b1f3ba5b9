"""A finished consultation as text: the six analyses and the recommendation, for follow-up questions.

The text is the cached prefix of every follow-up on the consultation (after the system prompt and
the photos), so it must be the same bytes for the same Recommendation: it holds only what the
analyses and the verdict say, never timings, usage or costs, and lists everything in a fixed order.
Tags follow the other prompts' convention (`<analysis material="...">`); the person's text is
escaped so it cannot close them.
"""

from __future__ import annotations

from collections.abc import Sequence

from matrec.materials import CLASS_ORDER, PROFILES, MaterialClass
from matrec.results import BranchResult, Recommendation
from matrec.schema import BranchAnalysis

_NO_CONTEXT = "(no description was given)"


def _escape(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _items(values: Sequence[str]) -> str:
    return "; ".join(_escape(v) for v in values) if values else "none"


def _attribute(value: str) -> str:
    return _escape(value).replace('"', "&quot;")


def render_consultation(rec: Recommendation) -> str:
    """The consultation as deterministic text: part, each class's analysis, the recommendation."""
    photos = len(rec.images) if rec.images else (1 if rec.image is not None else 0)
    lines = [
        f'<consultation part="{_attribute(rec.part)}" photos="{photos}" mode="{rec.mode.value}">',
        f"<part_context>\n{_escape(rec.context.strip()) or _NO_CONTEXT}\n</part_context>",
    ]
    for material in CLASS_ORDER:
        branches = [b for b in rec.branches if b.material == material]
        if not branches:
            lines.append(f'<analysis material="{material.value}" status="not analysed"></analysis>')
        lines.extend(_branch(branch) for branch in branches)
    lines.append(_recommendation(rec))
    lines.append("</consultation>")
    return "\n".join(lines)


def _branch(branch: BranchResult) -> str:
    condition = f' condition="{_attribute(branch.condition)}"' if branch.condition else ""
    head = f'<analysis material="{branch.material.value}"{condition}'
    if branch.analysis is None:
        return f'{head} status="failed">\nNot assessed: {_escape(branch.error or "no answer")}\n</analysis>'
    return f'{head} status="assessed">\n{_analysis(branch.material, branch.analysis)}\n</analysis>'


def _analysis(material: MaterialClass, a: BranchAnalysis) -> str:
    verdict = "recommended" if a.recommended else "not recommended"
    if a.hard_screen:
        verdict = "screened out"
    d = a.dimensions
    lines = [
        f"Verdict: {verdict}. {_escape(a.summary)}",
        f"Suitability: {a.suitability}/10",
        f"Scores: performance {d.performance}/10, environment {d.environment}/10, "
        f"manufacturability {d.manufacturability}/10, cost {d.cost}/10, weight {d.weight}/10",
        "Criteria: "
        + ("; ".join(f"{_escape(c.criterion)} {c.score}/10 ({_escape(c.note)})" for c in a.criteria) or "none"),
        f"Grades: {_items(a.example_grades)}",
        f"Processes: {_items(a.processes)}",
        f"Key properties: {_properties(material)}",
        f"Strengths: {_items(a.strengths)}",
        f"Concerns: {_items(a.concerns)}",
        f"Assumptions: {_items(a.assumptions)}",
    ]
    if a.hard_screen:
        lines.append(f"Screened out because: {_escape(a.hard_screen)}")
    lines.append(f"Evidence: {_items(a.evidence)}")
    return "\n".join(lines)


def _properties(material: MaterialClass) -> str:
    p = PROFILES[material]
    return (  # " | " between properties: the values themselves contain ";"
        f"density {p.density_g_cm3} g/cm3 | Young's modulus {p.youngs_modulus_gpa} GPa | "
        f"strength {p.strength_mpa} MPa | max service temperature {p.max_service_temp_c} °C | "
        f"relative cost {p.relative_cost}"
    )


def _recommendation(rec: Recommendation) -> str:
    runner_up = rec.runner_up.value if rec.runner_up else "none"
    scores = ", ".join(
        f"{m.value} {score:.1f}/10" if (score := rec.scores.get(m)) is not None else f"{m.value} not assessed"
        for m in CLASS_ORDER
    )
    lines = [
        f'<recommendation best="{rec.best.value}" runner_up="{runner_up}" confidence="{rec.confidence}">',
        f"Best: {rec.best.value}; runner-up: {runner_up}; confidence: {rec.confidence}",
        f"Calibrated scores: {scores}",
        f"Rationale: {_escape(rec.rationale)}",
    ]
    if rec.screened_out:
        lines.append("Screened out: " + "; ".join(f"{s.material.value}: {_escape(s.reason)}" for s in rec.screened_out))
    if rec.missing:
        lines.append("Not assessed: " + ", ".join(m.value for m in rec.missing))
    lines.append(f"Open questions: {_items(rec.questions)}")
    if rec.notes:
        lines.append(f"Notes: {_items(rec.notes)}")
    lines.append("</recommendation>")
    return "\n".join(lines)
