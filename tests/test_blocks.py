"""The Slack rendering layer: board states, escaping, and Slack's size limits."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

import pytest

from bot.blocks import Rendered, block_text_lines, board, board_error, details, notice, text_lines
from bot.board_view import BoardView, SimilarLink
from bot.escape import WORD_JOINER, escape
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
HOSTILE = "<!channel> <!here> <@U123> <https://evil.example|click> @here &lt; <#C1> <!subteam^S1>"
HOSTILE_ESCAPED = (
    "&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &lt;https://evil.example|click&gt; "
    f"@{WORD_JOINER}here &amp;lt; &lt;#C1&gt; &lt;!subteam^S1&gt;"
)
MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3_000
MAX_FALLBACK_CHARS = 3_900
RANDOM_SEED = 20240611
RANDOM_CASES = 150


# -- builders -------------------------------------------------------------------------------------


def _state(result: BranchResult | None, material: MaterialClass, status: BranchStatus) -> BranchState:
    return BranchState(material=material, condition=result.condition if result else None, status=status, result=result)


def _done(result: BranchResult) -> BranchState:
    status = BranchStatus.DONE if result.ok else BranchStatus.FAILED
    return _state(result, result.material, status)


def _snapshot(branches: Sequence[BranchState], **update: Any) -> RunSnapshot:
    fields: dict[str, Any] = {
        "run_id": "run1",
        "part": PART,
        "mode": Mode.PARALLEL,
        "strategy": Strategy.CLAUDE,
        "branches": tuple(branches),
    }
    return RunSnapshot.model_validate(fields | update)


def _recommendation(branches: list[BranchResult], **update: Any) -> Recommendation:
    fields: dict[str, Any] = {
        "part": PART,
        "best": M.METAL,
        "runner_up": M.POLYMER,
        "rationale": "Metal carries the load outdoors; polymer is lighter but creeps at 60 C.",
        "confidence": "medium",
        "scores": {
            M.METAL: 8.0,
            M.POLYMER: 6.5,
            M.CERAMIC: 2.0,
            M.COMPOSITE: 6.0,
            M.ELASTOMER: 1.0,
            M.WOOD: None,
        },
        "screened_out": [ScreenedOut(material=M.CERAMIC, reason="brittle under impact")],
        "questions": ["What is the peak load?", "How many parts a year?"],
        "strategy": Strategy.CLAUDE,
        "mode": Mode.PARALLEL,
        "branches": branches,
        "missing": [M.WOOD],
        "notes": ["A fallback note."],
        "usage": UsageReport(
            branches=TokenUsage(input_tokens=9_000, output_tokens=3_000),
            aggregation=TokenUsage(input_tokens=2_000, output_tokens=500),
            total=TokenUsage(input_tokens=11_000, output_tokens=3_500, cache_read_tokens=40_000),
            cost_usd=0.0961,
            calls=7,
        ),
        "timing": Timing(wall_s=23.4, slowest_branch_s=18.0, aggregation_s=5.0, prepare_s=0.2),
    }
    return Recommendation.model_validate(fields | update)


def _finished_results() -> list[BranchResult]:
    scores = {M.METAL: 8, M.POLYMER: 7, M.CERAMIC: 2, M.COMPOSITE: 6, M.ELASTOMER: 1}
    return [ok(m, s) for m, s in scores.items()] + [failed(M.WOOD, "the answer was cut off")]


def _finished_snapshot() -> RunSnapshot:
    results = _finished_results()
    return _snapshot(
        [_done(r) for r in results],
        aggregation=StageStatus.DONE,
        status=StageStatus.DONE,
        recommendation=_recommendation(results),
    )


def _class_texts(rendered: Rendered) -> list[str]:
    """The six class lines: the section right after the first divider, one line per class."""
    start = next(i for i, block in enumerate(rendered.blocks) if block["type"] == "divider") + 1
    lines: list[str] = rendered.blocks[start]["text"]["text"].split("\n")
    assert len(lines) == len(CLASS_ORDER)
    return lines


def _text_objects(value: object) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if value.get("type") in ("mrkdwn", "plain_text") and "text" in value:
            yield value
        for child in value.values():
            yield from _text_objects(child)
    elif isinstance(value, list):
        for child in value:
            yield from _text_objects(child)


def _all_text(rendered: Rendered) -> str:
    return "\n".join([rendered.text, *(obj["text"] for obj in _text_objects(rendered.blocks))])


def _assert_within_slack_limits(rendered: Rendered) -> None:
    assert 0 < len(rendered.text) <= MAX_FALLBACK_CHARS
    assert 0 < len(rendered.blocks) <= MAX_BLOCKS
    for block in rendered.blocks:
        assert block["type"] in {"section", "context", "divider", "header", "actions"}
        if block["type"] == "actions":
            assert 0 < len(block["elements"]) <= 25
            for element in block["elements"]:
                assert 0 < len(element.get("text", element.get("placeholder", {})).get("text", "")) <= 75
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= MAX_SECTION_CHARS
        if block["type"] == "header":
            assert 0 < len(block["text"]["text"]) <= 150
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
    for obj in _text_objects(rendered.blocks):
        assert obj["text"]
        if obj["type"] == "mrkdwn":
            assert obj["verbatim"] is True


# -- escaping -------------------------------------------------------------------------------------


def test_escape_turns_every_control_character_and_mass_mention_inert() -> None:
    assert escape(HOSTILE) == HOSTILE_ESCAPED


@pytest.mark.parametrize("mention", ["@channel", "@here", "@everyone", "@HERE", "@Everyone"])
def test_escape_splits_plain_mass_mentions_with_an_invisible_word_joiner(mention: str) -> None:
    assert escape(f"ping {mention} now") == f"ping @{WORD_JOINER}{mention[1:]} now"


def test_escape_leaves_ordinary_text_and_harmless_formatting_alone() -> None:
    text = "6061-T6 *bold* _it_ ~x~ `code` user@example.com 50 % 'quote' \"q\""
    assert escape(text) == text


# -- board states ---------------------------------------------------------------------------------


def test_placeholder_lists_the_six_classes_as_waiting() -> None:
    rendered = board(None, part=PART, context=CONTEXT)
    texts = _class_texts(rendered)
    assert texts == [f":hourglass_flowing_sand: *{m.value.capitalize()}* waiting" for m in CLASS_ORDER]
    assert rendered.blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Material consultation", "emoji": True},
    }
    assert f"*{PART}*" in rendered.blocks[1]["text"]["text"]
    assert f"> {CONTEXT}" in rendered.blocks[1]["text"]["text"]
    assert "Comparing" not in _all_text(rendered)
    assert rendered.text == f"Material consultation for {PART}: starting, 6 material classes queued."
    assert not [b for b in rendered.blocks if b["type"] == "actions"]
    _assert_within_slack_limits(rendered)


def test_placeholder_without_requirements_says_the_photo_alone_is_judged() -> None:
    rendered = board(None, part=PART, context="  \n ")
    assert "No requirements given" in rendered.blocks[1]["text"]["text"]


def test_long_requirements_are_quoted_in_at_most_three_lines_while_running() -> None:
    rendered = board(None, part=PART, context="\n".join(f"requirement {i}" for i in range(10)))
    quoted = [line for line in rendered.blocks[1]["text"]["text"].split("\n") if line.startswith("> ")]
    assert quoted[:2] == ["> requirement 0", "> requirement 1"]
    assert len(quoted) == 3
    assert quoted[2].startswith("> requirement 2 requirement 3")


def test_nested_placeholder_still_lists_the_six_classes() -> None:
    rendered = board(None, part=PART, context="", mode=Mode.NESTED)
    texts = _class_texts(rendered)
    assert [t.split("*")[1] for t in texts] == [m.value.capitalize() for m in CLASS_ORDER]
    assert all("waiting" in t for t in texts)
    assert "operating conditions" in rendered.blocks[1]["text"]["text"]


def test_running_board_shows_one_compact_line_per_class() -> None:
    states = [
        _done(ok(M.METAL, 8)),
        _done(ok(M.POLYMER, 4, recommended=False)),
        _done(ok(M.CERAMIC, 2, hard_screen="Brittle under the bolt preload.")),
        _done(failed(M.COMPOSITE, "Claude was overloaded")),
        BranchState(material=M.ELASTOMER, status=BranchStatus.RUNNING),
        BranchState(material=M.WOOD, status=BranchStatus.QUEUED),
    ]
    rendered = board(_snapshot(states), part=PART, context=CONTEXT)
    assert _class_texts(rendered) == [
        ":large_green_circle: *Metal* `████████░░` *8* · recommended · metal scores 8",
        ":white_circle: *Polymer* `████░░░░░░` *4* · not recommended · polymer scores 4",
        ":no_entry: *Ceramic* `██░░░░░░░░` *2* · screened out: Brittle under the bolt preload.",
        ":x: *Composite* could not be assessed: Claude was overloaded",
        ":hourglass: *Elastomer* analysing…",
        ":hourglass_flowing_sand: *Wood* waiting",
    ]
    assert [b["type"] for b in rendered.blocks] == ["header", "section", "divider", "section"]
    assert rendered.text == f"Material consultation for {PART}: 4/6 classes done, 1 could not be assessed."
    _assert_within_slack_limits(rendered)


def test_board_says_it_is_comparing_while_the_aggregation_runs() -> None:
    results = _finished_results()
    rendered = board(_snapshot([_done(r) for r in results], aggregation=StageStatus.RUNNING), part=PART, context="")
    assert rendered.blocks[-1]["elements"][0]["text"] == ":scales: Comparing the classes side by side…"
    assert rendered.text.endswith("comparing the classes side by side….")
    assert not [b for b in rendered.blocks if b["type"] == "actions"]


def test_finished_board_puts_the_answer_first_then_one_line_per_class_and_the_footer() -> None:
    rendered = board(_finished_snapshot(), part=PART, context=CONTEXT)
    lines = text_lines(rendered.blocks)
    assert lines[:4] == [
        ":trophy: *Best: Metal* · runner-up *Polymer* · confidence *medium*",
        "Metal carries the load outdoors; polymer is lighter but creeps at 60 C.",
        ":question: What is the peak load?",
        ":question: How many parts a year?",
    ]
    assert lines[4] == f":frame_with_picture: *{PART}* · _{CONTEXT}_"
    assert _class_texts(rendered) == [
        ":first_place_medal: *Metal* `████████░░` *8* · best · metal scores 8",
        ":second_place_medal: *Polymer* `███████░░░` *6.5* · runner-up · polymer scores 7",
        ":no_entry: *Ceramic* `██░░░░░░░░` *2* · screened out: brittle under impact",
        ":large_green_circle: *Composite* `██████░░░░` *6* · recommended · composite scores 6",
        ":white_circle: *Elastomer* `█░░░░░░░░░` *1* · not recommended · elastomer scores 1",
        ":x: *Wood* `··········` *n/a* · could not be assessed: the answer was cut off",
    ]
    footer = rendered.blocks[-1]
    assert footer["type"] == "context"
    assert footer["elements"][0]["text"] == (
        ":stopwatch: 23.4 s · 7 calls · ~$0.096 · six specialists in parallel, compared side by side by Claude. "
        "More in the thread: 1 note."
    )
    assert block_text_lines(rendered.blocks) == len(lines) == 12
    assert rendered.text.startswith(
        f"Material consultation for {PART}: best Metal (runner-up Polymer, confidence medium). Metal carries"
    )
    assert "Wood n/a" in rendered.text
    _assert_within_slack_limits(rendered)


def test_failed_run_shows_a_warning_with_the_error_and_no_branch_left_analysing() -> None:
    states = [_done(ok(M.METAL, 8)), _done(failed(M.POLYMER))] + [
        BranchState(material=m, status=BranchStatus.RUNNING) for m in CLASS_ORDER[2:]
    ]
    error = "Only 1 of 6 material classes could be assessed (at least 4 are needed)."
    rendered = board(_snapshot(states, status=StageStatus.FAILED, error=error), part=PART, context="")
    assert rendered.blocks[-1]["text"]["text"] == f":warning: *No recommendation.* {error}"
    assert all("analysing" not in t for t in _class_texts(rendered))
    assert "not assessed (the run ended first)" in _class_texts(rendered)[2]
    assert rendered.text == f"Material consultation for {PART}: no recommendation. {error}"


def _nested_states() -> list[BranchState]:
    states: list[BranchState] = []
    for material in CLASS_ORDER:
        for index, condition in enumerate(DEFAULT_CONDITIONS):
            if material is M.WOOD and index == 2:
                states.append(BranchState(material=material, condition=condition, status=BranchStatus.RUNNING))
                continue
            states.append(_done(ok(material, 8 - index, condition=condition)))
    return states


def test_nested_board_shows_one_line_per_class_with_its_worst_condition() -> None:
    rendered = board(_snapshot(_nested_states(), mode=Mode.NESTED), part=PART, context="")
    metal, *_, wood = _class_texts(rendered)
    assert metal == (
        ":large_green_circle: *Metal* `██████░░░░` *6–8* · "
        "recommended under 3 of 3 conditions · worst: wet or corrosive 6"
    )
    assert wood == ":hourglass: *Wood* analysing… (2 of 3 conditions done)"
    assert (
        "3 operating conditions: nominal service, elevated temperature, wet or corrosive"
        in (rendered.blocks[1]["text"]["text"])
    )
    assert rendered.text == f"Material consultation for {PART}: 17/18 analyses done."
    _assert_within_slack_limits(rendered)


def test_nested_class_whose_conditions_all_failed_gives_the_first_reason() -> None:
    states = [
        _done(failed(M.METAL, "timed out").model_copy(update={"condition": DEFAULT_CONDITIONS[0]})),
        _done(failed(M.METAL, "overloaded").model_copy(update={"condition": DEFAULT_CONDITIONS[1]})),
    ]
    rendered = board(_snapshot(states, mode=Mode.NESTED), part=PART, context="")
    assert _class_texts(rendered)[0] == ":x: *Metal* could not be assessed: timed out"


# -- injection ------------------------------------------------------------------------------------


def _hostile_snapshot() -> RunSnapshot:
    hostile_analysis = ok(M.METAL, 8).analysis
    assert hostile_analysis is not None
    analysis = hostile_analysis.model_copy(
        update={
            "summary": HOSTILE,
            "strengths": [HOSTILE],
            "concerns": [HOSTILE],
            "example_grades": [HOSTILE],
            "hard_screen": HOSTILE,
        }
    )
    results = [BranchResult(material=M.METAL, status="ok", analysis=analysis), failed(M.POLYMER, HOSTILE)]
    results += [ok(m, 5) for m in CLASS_ORDER[2:]]
    rec = _recommendation(
        results,
        rationale=HOSTILE,
        questions=[HOSTILE],
        notes=[HOSTILE],
        screened_out=[ScreenedOut(material=M.CERAMIC, reason=HOSTILE)],
    )
    return _snapshot([_done(r) for r in results], status=StageStatus.DONE, recommendation=rec)


def _assert_inert(rendered: Rendered) -> None:
    text = _all_text(rendered)
    assert "<" not in text
    assert ">" not in text.replace("\n> ", "\n")  # our own quote markers are the only '>'
    assert "@here" not in text
    assert re.search("&(?!amp;|lt;|gt;)", text) is None  # no bare '&', no entity cut in half
    _assert_within_slack_limits(rendered)


def test_model_and_user_text_on_the_board_comes_out_inert() -> None:
    rendered = board(_hostile_snapshot(), part=HOSTILE, context=HOSTILE)
    lines = text_lines(rendered.blocks)
    assert lines[1] == HOSTILE_ESCAPED  # the rationale
    assert f":question: {HOSTILE_ESCAPED}" in lines
    assert lines[4].endswith(f" · _{HOSTILE_ESCAPED}_")  # the requirements
    metal, polymer, ceramic, *_ = _class_texts(rendered)
    assert "screened it out: &lt;!channel&gt; &lt;!here&gt;" in metal  # the specialist's hard screen
    assert "could not be assessed: &lt;!channel&gt; &lt;!here&gt;" in polymer
    assert "screened out: &lt;!channel&gt; &lt;!here&gt;" in ceramic
    assert rendered.text.startswith("Material consultation for &lt;!channel&gt; &lt;!here&gt;")
    _assert_inert(rendered)


def test_model_text_on_a_running_board_and_in_the_details_comes_out_inert() -> None:
    finished = _hostile_snapshot()
    running = board(
        finished.model_copy(update={"recommendation": None, "status": StageStatus.RUNNING}),
        part=HOSTILE,
        context=HOSTILE,
    )
    assert f"> {HOSTILE_ESCAPED}" in running.blocks[1]["text"]["text"]
    assert "&lt;!channel&gt; &lt;!here&gt;" in _class_texts(running)[0]  # the hard screen
    _assert_inert(running)
    replies = details(finished)
    text = "\n".join(_all_text(reply) for reply in replies)
    # rationale, question, note, 2 screened-out reasons, summary, strength, concern, grade, hard screen, error
    assert text.count(HOSTILE_ESCAPED) >= 11
    for reply in replies:
        _assert_inert(reply)


def test_error_text_and_notice_come_out_inert() -> None:
    failed_run = board(_snapshot([], status=StageStatus.FAILED, error=HOSTILE), part=PART, context="")
    assert failed_run.blocks[-1]["text"]["text"] == f":warning: *No recommendation.* {HOSTILE_ESCAPED}"
    error = board_error(part=HOSTILE, context=HOSTILE, message=HOSTILE)
    assert f"{HOSTILE_ESCAPED}" in error.blocks[2]["text"]["text"]
    assert HOSTILE_ESCAPED in error.text
    assert notice(HOSTILE).text == HOSTILE_ESCAPED
    for rendered in (failed_run, error, notice(HOSTILE)):
        _assert_inert(rendered)


def test_every_mrkdwn_text_object_is_verbatim() -> None:
    renderings = [
        board(None, part=PART, context=CONTEXT),
        board(_finished_snapshot(), part=PART, context=CONTEXT),
        board(_hostile_snapshot(), part=HOSTILE, context=HOSTILE),
        board_error(part=PART, context=CONTEXT, message="Not an image."),
        notice("I can only analyse images."),
    ]
    for rendered in renderings:
        objects = [obj for obj in _text_objects(rendered.blocks) if obj["type"] == "mrkdwn"]
        assert objects
        assert all(obj["verbatim"] is True for obj in objects)


# -- limits ---------------------------------------------------------------------------------------


def test_very_long_model_text_still_fits_slacks_limits() -> None:
    huge = ("word " * 2_000).strip()  # 10,000 chars
    base = ok(M.METAL, 8).analysis
    assert base is not None
    analysis = base.model_copy(  # model_copy skips validation, as a buggy engine might
        update={
            "summary": huge,
            "strengths": [huge] * 50,
            "concerns": [huge] * 50,
            "example_grades": [huge] * 50,
            "hard_screen": huge,
        }
    )
    results = [BranchResult(material=m, status="ok", analysis=analysis) for m in CLASS_ORDER]
    rec = _recommendation(
        results,
        rationale=huge,
        questions=[huge] * 50,
        notes=[huge] * 50,
        screened_out=[ScreenedOut(material=m, reason=huge) for m in CLASS_ORDER],
    )
    snapshot = _snapshot([_done(r) for r in results], status=StageStatus.DONE, recommendation=rec)
    rendered = board(snapshot, part=huge, context=huge)
    _assert_within_slack_limits(rendered)
    assert _class_texts(rendered)[0].endswith("word…")
    assert block_text_lines(rendered.blocks) <= 20
    assert all(len(line) <= 600 for line in text_lines(rendered.blocks))  # every line clipped
    replies = details(rec)
    for reply in replies:
        _assert_within_slack_limits(reply)
    metal = next(
        b["text"]["text"] for r in replies for b in r.blocks if "*Strengths:*" in b.get("text", {}).get("text", "")
    )
    assert metal.split("*Strengths:*\n")[1].split("\n*Concerns:*")[0].count("• ") == 3
    _assert_within_slack_limits(board_error(part=huge, context=huge, message=huge))
    _assert_within_slack_limits(notice(huge))


def test_truncation_ends_on_a_whole_word_and_never_splits_an_entity() -> None:
    rendered = notice("alpha beta gamma " * 500)
    assert rendered.text.endswith("…")
    assert rendered.text[:-1].split(" ")[-1] in {"alpha", "beta", "gamma"}
    ampersands = notice("&" * 5_000)
    assert ampersands.text.endswith("&amp;…")
    assert all(part in ("", "amp;", "amp;…") for part in ampersands.text.split("&"))


class _Fuzz(random.Random):
    """A seeded random source that also draws hostile text from a pool made once (it is the slow part)."""

    PIECES = ("<!channel>", "@here", "&", "<", ">", "*", "_", "`", "\n", " ", "word", "é", "🔩", "<@U1>", "|")
    POOL_SIZE = 200

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        lengths = [0, 1, 5, 50, 400, 4_000]
        self.pool = ["".join(self.choices(self.PIECES, k=self.choice(lengths))) for _ in range(self.POOL_SIZE)]

    def text(self) -> str:
        """Some random text: empty, short, or longer than any budget."""
        return self.choice(self.pool)


def _random_result(rng: _Fuzz, material: MaterialClass, condition: str | None) -> BranchResult:
    if rng.random() < 0.2:
        return failed(material, rng.text()).model_copy(update={"condition": condition})
    result = ok(material, rng.randint(1, 10), condition=condition)
    assert result.analysis is not None
    update = {
        "summary": rng.text(),
        "strengths": [rng.text() for _ in range(rng.randint(0, 50))],
        "concerns": [rng.text() for _ in range(rng.randint(0, 50))],
        "example_grades": [rng.text() for _ in range(rng.randint(0, 5))],
        "hard_screen": rng.choice([None, rng.text()]),
    }
    return result.model_copy(update={"analysis": result.analysis.model_copy(update=update)})


def _random_snapshot(rng: _Fuzz) -> RunSnapshot:
    mode = rng.choice(list(Mode))
    conditions = [rng.text() + ":x" for _ in range(rng.randint(1, 12))] if mode is Mode.NESTED else [None]
    states: list[BranchState] = []
    results: list[BranchResult] = []
    for material in CLASS_ORDER:
        for condition in conditions:
            status = rng.choice(list(BranchStatus))
            if status in (BranchStatus.DONE, BranchStatus.FAILED):
                result = _random_result(rng, material, condition)
                results.append(result)
                states.append(_done(result))
            else:
                states.append(BranchState(material=material, condition=condition, status=status))
    update: dict[str, Any] = {"mode": mode, "aggregation": rng.choice(list(StageStatus))}
    if rng.random() < 0.4:
        best, runner_up = rng.sample(CLASS_ORDER, 2)
        update["recommendation"] = _recommendation(
            results,
            best=best,
            runner_up=rng.choice([runner_up, None]),
            rationale=rng.text(),
            scores={m: rng.choice([None, rng.uniform(0, 10)]) for m in rng.sample(CLASS_ORDER, 4)},
            questions=[rng.text() for _ in range(rng.randint(0, 20))],
            notes=[rng.text() for _ in range(rng.randint(0, 20))],
            screened_out=[ScreenedOut(material=m, reason=rng.text()) for m in rng.sample(CLASS_ORDER, 3)],
            missing=rng.sample(CLASS_ORDER, rng.randint(0, 3)),
        )
        update["status"] = StageStatus.DONE
    elif rng.random() < 0.3:
        update |= {"status": StageStatus.FAILED, "error": rng.text()}
    return _snapshot(states, **update)


def _random_view(rng: _Fuzz, results: Sequence[BranchResult]) -> BoardView | None:
    if rng.random() < 0.2:
        return None
    previous = _recommendation(list(results), scores={m: rng.choice([None, rng.uniform(0, 10)]) for m in CLASS_ORDER})
    links = tuple(
        SimilarLink(who=rng.text(), when=date(2026, 1, 1 + i), part=rng.text(), outcome=rng.text(), link=rng.text())
        for i in range(rng.randint(0, 5))
    )
    return BoardView(
        consultation_id=rng.choice([None, "c" * 32]),
        photos=rng.randint(1, 4),
        kind=rng.choice(["upload", "rerun", "stress"]),
        changes=tuple(rng.text() for _ in range(rng.randint(0, 4))),
        previous=rng.choice([None, previous]),
        choices={m: rng.randint(0, 3) for m in rng.sample(CLASS_ORDER, 3)},
        ratings=(rng.randint(0, 3), rng.randint(0, 3)),
        similar=links,
    )


def test_random_snapshots_always_render_within_limits_and_inert() -> None:
    rng = _Fuzz(RANDOM_SEED)
    for _ in range(RANDOM_CASES):
        snapshot = _random_snapshot(rng)
        part, context = rng.text(), rng.text()
        view = _random_view(rng, [s.result for s in snapshot.branches if s.result is not None])
        rendered = board(snapshot, part=part, context=context, mode=snapshot.mode, view=view)
        _assert_inert(rendered)
        assert rendered == board(snapshot, part=part, context=context, mode=snapshot.mode, view=view)
        assert len(_class_texts(rendered)) == len(CLASS_ORDER)
        if snapshot.recommendation is not None:
            assert block_text_lines(rendered.blocks) <= 20
            for reply in details(snapshot.recommendation):
                _assert_inert(reply)
    for _ in range(RANDOM_CASES):
        _assert_inert(board_error(part=rng.text(), context=rng.text(), message=rng.text()))
        _assert_inert(notice(rng.text()))


def test_rendering_is_deterministic() -> None:
    snapshot = _finished_snapshot()
    assert board(snapshot, part=PART, context=CONTEXT) == board(snapshot, part=PART, context=CONTEXT)


# -- errors and notices ---------------------------------------------------------------------------


def test_board_error_says_what_was_wrong_and_what_is_accepted() -> None:
    rendered = board_error(
        part="drawing.pdf", context=CONTEXT, message="This is a PDF document; PDF files are not accepted."
    )
    assert [b["type"] for b in rendered.blocks] == ["header", "section", "section", "context"]
    assert f"> {CONTEXT}" in rendered.blocks[1]["text"]["text"]
    assert rendered.blocks[2]["text"]["text"] == (
        ":warning: *I could not analyse drawing.pdf.*\nThis is a PDF document; PDF files are not accepted."
    )
    tip = rendered.blocks[3]["elements"][0]["text"]
    assert "JPEG, PNG, GIF, WebP or HEIC/HEIF" in tip
    assert rendered.text == (
        "Material consultation for drawing.pdf could not run: This is a PDF document; PDF files are not accepted."
    )
    _assert_within_slack_limits(rendered)


def test_board_error_does_not_repeat_the_accepted_formats_the_message_already_names() -> None:
    message = "The file is empty. Send a photo as JPEG, PNG, GIF, WebP or HEIC/HEIF."
    rendered = board_error(part=PART, context="", message=message)
    assert rendered.blocks[1]["text"]["text"] == f":frame_with_picture: *{PART}*"
    assert "JPEG" not in rendered.blocks[3]["elements"][0]["text"]


def test_notice_is_one_section_with_the_same_text_as_its_fallback() -> None:
    rendered = notice("I can only analyse images (JPEG, PNG, GIF, WebP or HEIC/HEIF).")
    assert rendered == Rendered(
        text="I can only analyse images (JPEG, PNG, GIF, WebP or HEIC/HEIF).",
        blocks=[
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "I can only analyse images (JPEG, PNG, GIF, WebP or HEIC/HEIF).",
                    "verbatim": True,
                },
            }
        ],
    )


def test_an_empty_notice_still_has_non_empty_text() -> None:
    rendered = notice("   ")
    assert rendered.text
    _assert_within_slack_limits(rendered)
