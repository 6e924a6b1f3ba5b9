"""The answer-first board: one phone screen, the reasoning on top, feedback and next steps, re-run deltas."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from bot import actions
from bot.blocks import (
    MAX_BOARD_LINES,
    RATIONALE_WITHIN_LINES,
    Rendered,
    block_text_lines,
    board,
    board_cancelled,
    details,
    final_board,
    overflow_reply,
    text_lines,
)
from bot.board_view import BoardView, SimilarLink
from matrec.choices import Mode, Strategy
from matrec.materials import CLASS_ORDER, MaterialClass
from matrec.progress import BranchState, BranchStatus, RunSnapshot, StageStatus
from matrec.results import BranchResult, Recommendation, Timing, TokenUsage, UsageReport
from matrec.schema import ScreenedOut
from matrec.settings import DEFAULT_CONDITIONS
from tests.factories import failed, ok

M = MaterialClass
PART = "bracket.jpg"
CONTEXT = "Outdoor mounting bracket, 5 kg load, -20 to 60 C."
CID = "0123456789abcdef0123456789abcdef"
THREAD = "archives/C1/p1712345678000200?thread_ts=1712345678.000100&cid=C1"  # a thread reply's permalink
SENTENCES = [
    "Metal carries the 5 kg load outdoors for decades with a wide margin against fatigue at the bolt holes.",
    "Polymer is lighter and cheaper in volume, but glass-filled nylon creeps at 60 C under a constant load.",
    "Composite would work, yet its layup cost is hard to justify for a bracket this simple.",
    "Ceramic is brittle under impact and wood swells outdoors.",
    "If the load is lower than stated, polymer becomes the better choice.",
]
LONG_RATIONALE = " ".join(SENTENCES * 3)  # far more than a phone screen holds
QUESTIONS = [
    "What is the peak load, including shocks when the door slams, and how often does it occur in service?",
    "How many brackets a year: prototypes, hundreds, or tens of thousands?",
    "Is the bracket painted or exposed bare to rain and road salt?",
]
NOTES = ["Wood could not be assessed: the answer was cut off.", "Scores were recalibrated side by side."]


def _usage() -> UsageReport:
    total = TokenUsage(input_tokens=11_000, output_tokens=3_500)
    return UsageReport(branches=total, aggregation=TokenUsage(), total=total, cost_usd=0.0961, calls=19)


def _nested_results() -> list[BranchResult]:
    scores = {M.METAL: 8, M.POLYMER: 7, M.CERAMIC: 2, M.COMPOSITE: 6, M.ELASTOMER: 1}
    results = []
    for material, score in scores.items():
        for index, condition in enumerate(DEFAULT_CONDITIONS):
            screen = "Brittle under impact." if material is M.CERAMIC else None
            results.append(ok(material, max(score - index, 1), condition=condition, hard_screen=screen))
    results += [
        failed(M.WOOD, "the answer was cut off").model_copy(update={"condition": c}) for c in DEFAULT_CONDITIONS
    ]
    return results


def _rec(**update: Any) -> Recommendation:
    fields: dict[str, Any] = {
        "part": PART,
        "best": M.METAL,
        "runner_up": M.POLYMER,
        "rationale": SENTENCES[0] + " " + SENTENCES[1],
        "confidence": "medium",
        "scores": {M.METAL: 8.0, M.POLYMER: 6.5, M.CERAMIC: 2.0, M.COMPOSITE: 6.0, M.ELASTOMER: 1.0, M.WOOD: None},
        "screened_out": [ScreenedOut(material=M.CERAMIC, reason="brittle under impact")],
        "questions": QUESTIONS[:2],
        "strategy": Strategy.CLAUDE,
        "mode": Mode.PARALLEL,
        "branches": [ok(m, 7) for m in CLASS_ORDER[:5]] + [failed(M.WOOD, "the answer was cut off")],
        "missing": [M.WOOD],
        "usage": _usage(),
        "timing": Timing(wall_s=23.4, slowest_branch_s=18.0, aggregation_s=5.0, prepare_s=0.2),
    }
    return Recommendation.model_validate(fields | update)


def _worst_case_rec() -> Recommendation:
    """Everything at once: long reasoning, three questions, notes, screened classes, nested mode."""
    branches = _nested_results()
    # The polymer specialist screened its class out under one condition, yet it is the runner-up.
    polymer = next(
        i for i, r in enumerate(branches) if r.material is M.POLYMER and r.condition == DEFAULT_CONDITIONS[1]
    )
    screened = ok(M.POLYMER, 3, condition=DEFAULT_CONDITIONS[1], hard_screen="Softens above 60 C.")
    branches[polymer] = screened
    return _rec(
        rationale=LONG_RATIONALE,
        questions=QUESTIONS,
        notes=NOTES,
        mode=Mode.NESTED,
        branches=branches,
        screened_out=[
            ScreenedOut(material=M.CERAMIC, reason="brittle under impact"),
            ScreenedOut(material=M.ELASTOMER, reason="far too soft to hold 5 kg"),
        ],
    )


def _previous() -> Recommendation:
    scores = {M.METAL: 6.0, M.POLYMER: 7.5, M.CERAMIC: 2.0, M.COMPOSITE: None, M.ELASTOMER: 1.5, M.WOOD: None}
    return _rec(best=M.POLYMER, runner_up=M.METAL, scores=scores)


def _worst_case_view() -> BoardView:
    links = tuple(
        SimilarLink(who=f"Dana {i}", when=date(2026, 10, 12), part="steel bracket", outcome="the team chose metal")
        for i in range(5)
    )
    return BoardView(
        consultation_id=CID,
        photos=3,
        kind="rerun",
        changes=("operates at 250 °C", "10,000 a year", "food contact"),
        previous=_previous(),
        choices={M.POLYMER: 2, M.METAL: 1},
        ratings=(3, 1),
        similar=links,
    )


def _snapshot(rec: Recommendation | None, **update: Any) -> RunSnapshot:
    results = rec.branches if rec is not None else _nested_results()
    states = tuple(
        BranchState(
            material=r.material,
            condition=r.condition,
            status=BranchStatus.DONE if r.ok else BranchStatus.FAILED,
            result=r,
        )
        for r in results
    )
    fields: dict[str, Any] = {
        "run_id": "r",
        "part": PART,
        "mode": rec.mode if rec is not None else Mode.NESTED,
        "strategy": Strategy.CLAUDE,
        "branches": states,
        "recommendation": rec,
        "status": StageStatus.DONE if rec is not None else StageStatus.RUNNING,
    }
    return RunSnapshot.model_validate(fields | update)


def _elements(rendered: Rendered) -> list[dict[str, Any]]:
    return [e for b in rendered.blocks if b["type"] == "actions" for e in b["elements"]]


def _line_of(lines: list[str], needle: str) -> int:
    """The 1-based line number of the first line containing `needle`."""
    return next(i for i, line in enumerate(lines, start=1) if needle in line)


# -- the phone screen -----------------------------------------------------------------------------


def test_the_worst_case_final_board_fits_one_phone_screen_with_the_reasoning_on_top() -> None:
    rendered = final_board(_worst_case_rec(), part=PART, context=CONTEXT, view=_worst_case_view())
    lines = text_lines(rendered.blocks)
    assert block_text_lines(rendered.blocks) == len(lines)
    assert len(lines) <= MAX_BOARD_LINES == 20
    first, last = _line_of(lines, SENTENCES[0][:40]), _line_of(lines, SENTENCES[2][:30])
    assert first == 2
    assert last <= RATIONALE_WITHIN_LINES == 8  # the whole on-board rationale, not just its start
    assert _line_of(lines, QUESTIONS[0][:40]) <= RATIONALE_WITHIN_LINES
    assert QUESTIONS[2][:30] not in "\n".join(lines)  # the third question went to Details
    assert all(note[:30] not in "\n".join(lines) for note in NOTES)
    assert "More in the thread: the full reasoning, 1 more question, 2 notes." in lines[-1]
    assert len(lines) == 20  # the figure quoted in the report: every budget used at once


def test_the_board_size_measure_counts_text_lines_and_not_buttons() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Title"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "a\nb"}, "fields": [{"type": "mrkdwn", "text": "c"}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "d"}, {"type": "mrkdwn", "text": "e\nf"}]},
        {"type": "divider"},
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Go"}}]},
    ]
    assert block_text_lines(blocks) == 7
    assert text_lines(blocks) == ["Title", "a", "b", "c", "d", "e", "f"]


def test_everything_cut_from_the_board_is_in_the_details_replies() -> None:
    rec = _worst_case_rec()
    replies = details(rec)
    text = "\n".join(t for r in replies for t in [r.text, *text_lines(r.blocks)])
    assert " ".join(SENTENCES * 3) in text  # the full rationale
    assert all(q in text for q in QUESTIONS)
    assert all(n in text for n in NOTES)
    assert "far too soft to hold 5 kg" in text
    assert "Softens above 60 C." in text
    assert all(c in text for c in DEFAULT_CONDITIONS)  # each operating condition of the stress test
    assert "density (g/cm³)" in text
    assert "Young's modulus (GPa)" in text
    assert "the answer was cut off" in text
    assert "14,500 tokens" in text  # the usage the board leaves out
    assert "typical class values, not design allowables" in text
    assert len(replies) > 1  # 18 analyses do not fit one readable message
    for reply in replies:
        assert 0 < len(reply.text) <= 3_900
        assert 0 < len(reply.blocks) <= 50
        assert all(len(b["text"]["text"]) <= 3_000 for b in reply.blocks if b["type"] == "section")


# -- the answer -----------------------------------------------------------------------------------


def test_a_pick_its_specialist_screened_out_is_flagged_and_not_shown_as_screened_out() -> None:
    rec = _rec(branches=[ok(M.METAL, 6, hard_screen="Corrodes in salt spray.")] + [ok(m, 5) for m in CLASS_ORDER[1:]])
    rendered = final_board(rec, part=PART, context=CONTEXT)
    lines = text_lines(rendered.blocks)
    flag = _line_of(lines, "was picked although")
    assert lines[flag - 1] == (
        ":warning: *Metal* was picked although its specialist screened it out: Corrodes in salt spray."
    )
    metal = next(line for line in lines if "*Metal* `" in line)
    assert metal.startswith(":warning: *Metal*")
    assert " · best · picked although its specialist screened it out: Corrodes in salt spray." in metal
    assert ":no_entry:" not in metal
    assert "screened out" not in metal
    assert "Metal was picked although its specialist screened it out: Corrodes in salt spray.. " not in rendered.text
    assert "Metal was picked although its specialist screened it out: Corrodes in salt spray. Scores" in rendered.text


def test_a_pick_the_comparison_itself_screened_out_is_flagged_too() -> None:
    rec = _rec(screened_out=[ScreenedOut(material=M.POLYMER, reason="creeps at 60 C")])
    lines = text_lines(final_board(rec, part=PART, context=CONTEXT).blocks)
    assert ":warning: *Polymer* was picked although the comparison screened it out: creeps at 60 C" in lines


def test_the_final_board_renders_the_same_from_the_snapshot_and_from_the_recommendation_alone() -> None:
    rec, view = _worst_case_rec(), _worst_case_view()
    from_snapshot = board(_snapshot(rec), part=PART, context=CONTEXT, mode=Mode.NESTED, note="queued", view=view)
    assert from_snapshot == final_board(rec, part=PART, context=CONTEXT, view=view)


def test_nested_class_lines_name_the_worst_condition() -> None:
    lines = text_lines(final_board(_worst_case_rec(), part=PART, context=CONTEXT).blocks)
    metal = next(line for line in lines if "*Metal* `" in line)
    assert metal == (
        ":first_place_medal: *Metal* `████████░░` *8* · best · "
        "recommended under 3 of 3 conditions · worst: wet or corrosive 6"
    )


# -- controls -------------------------------------------------------------------------------------


def test_the_final_board_carries_feedback_choice_and_next_step_controls_for_its_consultation() -> None:
    rendered = final_board(_rec(), part=PART, context=CONTEXT, view=BoardView(consultation_id=CID))
    elements = {e["action_id"]: e for e in _elements(rendered)}
    assert list(elements) == [
        actions.HELPFUL,
        actions.NOT_HELPFUL,
        actions.CHOSE,
        actions.DETAILS,
        actions.RERUN,
        actions.STRESS,
    ]
    assert all(e["value"] == CID for e in elements.values() if e["type"] == "button")
    options = elements[actions.CHOSE]["options"]
    assert [o["value"] for o in options] == [f"{CID}:{m.value}" for m in CLASS_ORDER]
    assert [o["text"]["text"] for o in options] == ["Metal", "Polymer", "Ceramic", "Composite", "Elastomer", "Wood"]
    assert elements[actions.CHOSE]["placeholder"]["text"] == "We chose…"


def test_several_photos_add_the_different_parts_button_and_a_stress_test_has_no_stress_button() -> None:
    rendered = final_board(_worst_case_rec(), part=PART, context=CONTEXT, view=_worst_case_view())
    ids = [e["action_id"] for e in _elements(rendered)]
    assert actions.SPLIT in ids
    assert actions.STRESS not in ids  # already the nested run
    single = final_board(_rec(), part=PART, context=CONTEXT, view=BoardView(consultation_id=CID, photos=1))
    assert actions.SPLIT not in [e["action_id"] for e in _elements(single)]


def test_buttons_appear_only_on_the_final_board() -> None:
    view = BoardView(consultation_id=CID, photos=2)
    placeholder = board(None, part=PART, context=CONTEXT, view=view)
    running = board(_snapshot(None), part=PART, context=CONTEXT, mode=Mode.NESTED, view=view)
    comparing = board(_snapshot(None, aggregation=StageStatus.RUNNING), part=PART, context=CONTEXT, view=view)
    failed_run = board(
        _snapshot(None, status=StageStatus.FAILED, error="Claude is down."), part=PART, context="", view=view
    )
    for rendered in (placeholder, running, comparing, failed_run):
        assert _elements(rendered) == []
    assert "Comparing the classes side by side" in text_lines(comparing.blocks)[-1]
    assert _elements(board(_snapshot(_rec()), part=PART, context=CONTEXT, view=view))
    assert _elements(final_board(_rec(), part=PART, context=CONTEXT, view=None)) == []
    assert _elements(final_board(_rec(), part=PART, context=CONTEXT, view=BoardView(consultation_id=None))) == []


# -- re-runs --------------------------------------------------------------------------------------


def test_a_rerun_board_states_the_added_requirements_the_best_class_change_and_score_deltas() -> None:
    view = BoardView(consultation_id=CID, kind="rerun", changes=("operates at 250 °C",), previous=_previous())
    lines = text_lines(final_board(_rec(), part=PART, context=CONTEXT, view=view).blocks)
    assert lines[0] == ":trophy: *Best: Metal* (was Polymer) · runner-up *Polymer* · confidence *medium*"
    assert ":repeat: *Re-run* with: operates at 250 °C" in lines
    deltas = {m: next(line for line in lines if f"*{m.value.capitalize()}* `" in line) for m in CLASS_ORDER}
    assert "*8* (+2) · best" in deltas[M.METAL]
    assert "*6.5* (−1) · runner-up" in deltas[M.POLYMER]
    assert "*2* (±0)" in deltas[M.CERAMIC]
    assert "*6* (new)" in deltas[M.COMPOSITE]
    assert "*1* (−0.5)" in deltas[M.ELASTOMER]
    assert "*n/a* ·" in deltas[M.WOOD]


def test_a_rerun_that_keeps_the_best_class_says_so_and_a_stress_test_names_its_conditions() -> None:
    view = BoardView(consultation_id=CID, kind="stress", previous=_rec())
    lines = text_lines(final_board(_worst_case_rec(), part=PART, context=CONTEXT, view=view).blocks)
    assert lines[0].startswith(":trophy: *Best: Metal* (kept) ·")
    assert ":microscope: *Stress test*: each class judged under 3 operating conditions" in lines


def test_a_running_rerun_board_says_what_it_reruns() -> None:
    view = BoardView(consultation_id=CID, kind="rerun", changes=("food contact",))
    intro = board(None, part=PART, context=CONTEXT, view=view).blocks[1]["text"]["text"]
    assert intro.split("\n")[-1] == ":repeat: *Re-run* with: food contact"


# -- the team -------------------------------------------------------------------------------------


def test_the_teams_choices_and_ratings_are_one_line() -> None:
    view = BoardView(consultation_id=CID, choices={M.METAL: 1, M.POLYMER: 2, M.WOOD: 0}, ratings=(3, 1))
    lines = text_lines(final_board(_rec(), part=PART, context=CONTEXT, view=view).blocks)
    assert ":busts_in_silhouette: Team chose: Polymer ×2, Metal ×1 · 3 found it helpful, 1 not" in lines
    only_rating = BoardView(consultation_id=CID, ratings=(0, 2))
    lines = text_lines(final_board(_rec(), part=PART, context=CONTEXT, view=only_rating).blocks)
    assert ":busts_in_silhouette: 2 found it not helpful" in lines
    quiet = text_lines(final_board(_rec(), part=PART, context=CONTEXT, view=BoardView(consultation_id=CID)).blocks)
    assert not [line for line in quiet if "busts_in_silhouette" in line]


def test_similar_consultations_are_at_most_three_lines_with_names_that_never_ping() -> None:
    links = (
        SimilarLink("Dana <@U123> @here", date(2026, 10, 12), "bracket <!channel>", "the team chose polymer", None),
        SimilarLink("Sam", date(2026, 9, 1), "hinge", "matrec recommended metal", f"https://acme.slack.com/{THREAD}"),
        SimilarLink("Kim", date(2026, 8, 2), "clip", "", "https://evil.example|click>"),
        SimilarLink("Lee", date(2026, 7, 3), "cover", "x", None),
    )
    lines = text_lines(final_board(_rec(), part=PART, context=CONTEXT, view=BoardView(CID, similar=links)).blocks)
    similar = [line for line in lines if line.startswith(":mag:")]
    assert similar == [
        ":mag: Dana &lt;@U123&gt; @\u2060here looked at a similar part on 12 Oct 2026: bracket &lt;!channel&gt;; "
        "the team chose polymer",
        f":mag: Sam looked at a similar part on <https://acme.slack.com/{THREAD}|1 Sep 2026>: hinge; "
        "matrec recommended metal",
        ":mag: Kim looked at a similar part on 2 Aug 2026: clip",  # a link that could break out is dropped
    ]


def test_details_of_a_run_without_a_recommendation_still_show_each_analysis() -> None:
    snapshot = _snapshot(None, status=StageStatus.FAILED, error="Only 1 of 6 classes could be assessed.")
    replies = details(snapshot)
    text = "\n".join(line for r in replies for line in text_lines(r.blocks))
    assert "(no recommendation was made)" in text
    assert "not design allowables" in text
    assert "*Metal*" in text and DEFAULT_CONDITIONS[2] in text


def test_a_cancelled_board_says_why_and_how_to_start_over_without_a_photo_format_tip() -> None:
    rendered = board_cancelled(part=PART, context=CONTEXT, reason="Cancelled: the upload was deleted.")
    shown = "\n".join(text_lines(rendered.blocks))
    assert [b["type"] for b in rendered.blocks] == ["header", "section", "section", "context"]
    assert ":no_entry_sign: *No recommendation.* Cancelled: the upload was deleted." in shown
    assert "post it again" in shown and "JPEG" not in shown and "could not analyse" not in shown
    assert rendered.text == f"Material consultation for {PART} stopped: Cancelled: the upload was deleted."


def test_the_rest_of_a_recommendation_is_one_reply_only_when_the_board_left_something_out() -> None:
    short = _rec().model_copy(update={"rationale": "Short.", "questions": ["Q1?"], "notes": []})
    assert overflow_reply(short) is None
    long = short.model_copy(
        update={
            "rationale": "Metal wins. " * 80 + "<!channel> see <https://evil.example|here>",
            "questions": ["Q1?", "Q2?", "Q3 <@U123>?"],
            "notes": ["A note."],
        }
    )
    rest = overflow_reply(long)
    assert rest is not None
    text = json.dumps(rest.blocks)
    assert "Metal wins." in text and "Q3" in text and "A note." in text and "Q1?" not in text
    assert "<!channel>" not in text and "<@U123>" not in text and "<https://" not in text
    assert all(len(b["text"]["text"]) <= 3000 for b in rest.blocks)
