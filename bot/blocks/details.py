"""The full analyses behind a board, as thread replies: what the phone-sized board leaves out.

The reasoning in full, every question and note, then each class (each operating condition in a
stress test): scores, summary, grades, processes, typical properties with units, strengths,
concerns, assumptions, evidence, the hard screen. Split into as many messages as Slack's limits
need, each within them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from bot.blocks.classes import outcomes, score_text
from bot.blocks.kit import ELLIPSIS, MAX_FALLBACK_CHARS, Block, Rendered, clip, context, fit, section
from bot.blocks.surroundings import part_name
from bot.escape import escape
from matrec.materials import CLASS_ORDER, PROFILES, MaterialClass
from matrec.progress import RunSnapshot
from matrec.report import TYPICAL_VALUES_NOTE, footer, label
from matrec.results import BranchResult, Recommendation

RATIONALE_CHARS: Final = 2_800
LIST_CHARS: Final = 300  # a question or a note
MAX_LISTED: Final = 10
SUMMARY_CHARS: Final = 600
ITEM_CHARS: Final = 160
MAX_ITEMS: Final = 3
CRITERIA_CHARS: Final = 400
SCREEN_CHARS: Final = 400
ERROR_CHARS: Final = 400
CONDITION_CHARS: Final = 200
MESSAGE_CHARS: Final = 10_000  # block text per reply: six classes usually fit one; a stress test needs more
MESSAGE_BLOCKS: Final = 40


def details(source: Recommendation | RunSnapshot) -> list[Rendered]:
    """The full analysis of a consultation as one or more thread replies, each within Slack's limits."""
    if isinstance(source, Recommendation):
        rec: Recommendation | None = source
        branches: Sequence[BranchResult] = source.branches
        part = source.part
    else:
        rec = source.recommendation
        branches = rec.branches if rec is not None else [s.result for s in source.branches if s.result is not None]
        part = source.part
    pieces: list[tuple[str, Block]] = [("", block) for block in _overview(rec, part)]
    for material in CLASS_ORDER:
        for block in _class_blocks(material, [b for b in branches if b.material is material], rec):
            pieces.append((label(material), block))
    return _messages(pieces, part)


def _listed(title: str, items: Sequence[str]) -> str:
    texts = [t for t in (clip(item, LIST_CHARS) for item in items[:MAX_LISTED]) if t]
    more = len([i for i in items if i.strip()]) - len(texts)
    lines = [f"*{title}*", *(f"• {t}" for t in texts)]
    if more > 0:
        lines.append(f"_{more} more not shown._")
    return "\n".join(lines) if texts else ""


def _overview(rec: Recommendation | None, part: str) -> list[Block]:
    if rec is None:
        return [
            section(f":mag: *Full analysis of {part_name(part)}* (no recommendation was made)"),
            context(f":information_source: {TYPICAL_VALUES_NOTE}"),
        ]
    runner = f" over *{label(rec.runner_up)}*" if rec.runner_up is not None else ""
    lines = [
        f":mag: *Full analysis of {part_name(part)}*: *{label(rec.best)}*{runner}, confidence *{rec.confidence}*",
        clip(rec.rationale, RATIONALE_CHARS),
    ]
    blocks = [section("\n".join(line for line in lines if line))]
    screens = [f"{label(o.material)}: {o.screen}" for o in outcomes(rec) if o.screen]
    for title, items in (
        ("Questions that would sharpen this", rec.questions),
        ("Notes", rec.notes),
        ("Screened out", screens),
    ):
        text = _listed(title, items)
        if text:
            blocks.append(section(text))
    blocks.append(context(f":stopwatch: {escape(footer(rec))}"))  # ends with the typical-values caveat
    return blocks


def _properties(material: MaterialClass) -> str:
    p = PROFILES[material]
    values = (
        ("density (g/cm³)", p.density_g_cm3),
        ("Young's modulus (GPa)", p.youngs_modulus_gpa),
        ("strength (MPa)", p.strength_mpa),
        ("max service temperature (°C)", p.max_service_temp_c),
        ("relative cost (A36 steel = 1)", p.relative_cost),
    )
    listed = " · ".join(f"{name} {escape(value)}" for name, value in values)  # "<= 100" must not open a link
    return f"*Typical {label(material).lower()} values* (not design allowables): {listed}"


def _items(items: Sequence[str]) -> list[str]:
    return [f"• {t}" for t in (clip(i, ITEM_CHARS) for i in items[:MAX_ITEMS]) if t]


def _headline(material: MaterialClass, rec: Recommendation | None) -> str:
    head = f"*{label(material)}*"
    if rec is None:
        return head
    outcome = next(o for o in outcomes(rec) if o.material is material)
    rank = f" · {outcome.rank}" if outcome.rank else ""
    flag = f" · :warning: picked although {outcome.screened_by} screened it out" if outcome.flagged else ""
    return f"{head} · calibrated *{score_text(outcome.score)}*{rank}{flag}"


def _branch_blocks(result: BranchResult) -> list[Block]:
    title = f"_{clip(result.condition, CONDITION_CHARS)}_" if result.condition else ""
    analysis = result.analysis
    if analysis is None:
        reason = clip(result.error or "", ERROR_CHARS) or "no reason was given"
        return [section("\n".join(t for t in (title, f":x: Could not be assessed: {reason}") if t))]
    verdict = "recommended" if analysis.recommended else "not recommended"
    overview = [title, f"Specialist: *{analysis.suitability}/10*, {verdict}", clip(analysis.summary, SUMMARY_CHARS)]
    overview.append("*Grades:* " + ", ".join(clip(g, ITEM_CHARS) for g in analysis.example_grades[:MAX_ITEMS]))
    overview.append("*Processes:* " + "; ".join(clip(p, ITEM_CHARS) for p in analysis.processes[:MAX_ITEMS]))
    if analysis.hard_screen:
        overview.append(f":no_entry: *Hard screen:* {clip(analysis.hard_screen, SCREEN_CHARS)}")
    criteria = " · ".join(f"{c.criterion} {c.score} ({c.note})" for c in analysis.criteria)
    if criteria:
        overview.append(f"*Criteria:* {clip(criteria, CRITERIA_CHARS)}")
    lists = []
    for name, items in (
        ("Strengths", analysis.strengths),
        ("Concerns", analysis.concerns),
        ("Assumptions", analysis.assumptions),
        ("Evidence", analysis.evidence),
    ):
        lines = _items(items)
        if lines:
            lists.extend([f"*{name}:*", *lines])
    blocks = [section("\n".join(t for t in overview if t))]
    if lists:
        blocks.append(section("\n".join(lists)))
    return blocks


def _class_blocks(material: MaterialClass, results: Sequence[BranchResult], rec: Recommendation | None) -> list[Block]:
    blocks = [section(f"{_headline(material, rec)}\n{_properties(material)}")]
    if not results:
        blocks.append(section(":heavy_minus_sign: Not assessed."))
    for result in results:
        blocks.extend(_branch_blocks(result))
    return blocks


def _size(block: Block) -> int:
    text = block.get("text", {}).get("text", "") if block["type"] == "section" else ""
    return len(text) + sum(len(e.get("text", "")) for e in block.get("elements", []))


def _messages(pieces: list[tuple[str, Block]], part: str) -> list[Rendered]:
    """Pack the pieces into replies, keeping each class in one reply unless it alone is too long."""
    units: list[list[tuple[str, Block]]] = []
    for name, block in pieces:
        if units and units[-1][0][0] == name:
            units[-1].append((name, block))
        else:
            units.append([(name, block)])
    groups: list[list[tuple[str, Block]]] = [[]]
    used = 0
    for unit in units:
        unit_size = sum(_size(block) for _, block in unit)
        if groups[-1] and (used + unit_size > MESSAGE_CHARS or len(groups[-1]) + len(unit) > MESSAGE_BLOCKS):
            groups.append([])
            used = 0
        for name, block in unit:  # a unit larger than a reply is split where it must be
            size = _size(block)
            if groups[-1] and (used + size > MESSAGE_CHARS or len(groups[-1]) >= MESSAGE_BLOCKS):
                groups.append([])
                used = 0
            groups[-1].append((name, block))
            used += size
    rendered = []
    for index, group in enumerate(groups, start=1):
        names = list(dict.fromkeys(name for name, _ in group if name))
        about = ", ".join(names) if names else "the reasoning"
        count = f" ({index} of {len(groups)})" if len(groups) > 1 else ""
        text = f"Full analysis of {part_name(part)}{count}: {about}"
        rendered.append(Rendered(text=fit(text, MAX_FALLBACK_CHARS) or ELLIPSIS, blocks=[block for _, block in group]))
    return rendered
