"""The bot's smaller replies: follow-up answers split past Slack's limits, offers, help and notices."""

from __future__ import annotations

from typing import Any

import pytest

from bot import actions
from bot.blocks import (
    Rendered,
    dm_help,
    edited_offer,
    followup_answer_draft,
    followup_answer_final,
    muted_notice,
    photos_added_notice,
    rerun_offer,
    text_lines,
)
from bot.escape import WORD_JOINER

TURN = "f" * 32
CID = "c" * 32
HOSTILE = "<!channel> <@U123> <https://evil.example|click> @here &"


def _elements(rendered: Rendered) -> list[dict[str, Any]]:
    return [e for b in rendered.blocks if b["type"] == "actions" for e in b["elements"]]


def _assert_within_limits(rendered: Rendered) -> None:
    assert 0 < len(rendered.text) <= 3_900
    assert 0 < len(rendered.blocks) <= 50
    for block in rendered.blocks:
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= 3_000
            assert block["text"]["verbatim"] is True
    for element in _elements(rendered):
        assert 0 < len(element["text"]["text"]) <= 75
        assert len(element["value"]) <= 2_000


def _shown(messages: list[Rendered]) -> str:
    return "\n".join(line for m in messages for line in text_lines(m.blocks))


def test_a_short_answer_without_changes_is_one_message_without_a_button() -> None:
    [message] = followup_answer_final("Use 6061-T6: it keeps its strength to 150 °C.", changes=[], turn_id=TURN)
    assert text_lines(message.blocks) == ["Use 6061-T6: it keeps its strength to 150 °C."]
    assert message.text == "Use 6061-T6: it keeps its strength to 150 °C."
    assert _elements(message) == []


def test_an_answer_that_changes_requirements_ends_with_a_rerun_button_for_its_turn() -> None:
    messages = followup_answer_final("At 250 °C polymer is out.", changes=["operates at 250 °C"], turn_id=TURN)
    [button] = _elements(messages[-1])
    assert (button["action_id"], button["value"]) == (actions.RERUN_WITH, TURN)
    assert button["text"]["text"] == "Re-run with these requirements"
    assert ":repeat: *This changes the requirements:* operates at 250 °C" in _shown(messages)


def test_a_long_answer_is_split_into_messages_within_slacks_limits_and_loses_nothing() -> None:
    paragraphs = [f"Paragraph {i}: " + " ".join(f"word{i}x{j}" for j in range(150)) for i in range(20)]
    text = "\n\n".join(paragraphs)  # ~36,000 chars
    messages = followup_answer_final(text, changes=["food contact"], turn_id=TURN)
    assert len(messages) > 1
    for message in messages:
        _assert_within_limits(message)
    shown = _shown(messages)
    assert all(f"word{i}x{j}" in shown for i in range(20) for j in (0, 75, 149))
    assert [len(_elements(m)) for m in messages] == [0] * (len(messages) - 1) + [1]


def test_an_answer_one_unbroken_word_long_is_still_split_without_cutting_an_entity() -> None:
    messages = followup_answer_final("&" * 20_000, changes=[], turn_id=None)
    for message in messages:
        _assert_within_limits(message)
        for line in text_lines(message.blocks):
            assert all(piece == "" or piece.startswith("amp;") for piece in line.split("&"))
    assert _shown(messages).count("&amp;") == 20_000


def test_answers_and_offers_come_out_inert_and_in_slack_bold() -> None:
    messages = followup_answer_final(f"## Verdict\n**{HOSTILE}**", changes=[HOSTILE], turn_id=TURN)
    shown = (
        _shown(messages)
        + rerun_offer(TURN, [HOSTILE]).text
        + "\n".join(text_lines(rerun_offer(TURN, [HOSTILE]).blocks))
    )
    assert "<" not in shown
    assert "@here" not in shown
    assert f"@{WORD_JOINER}here" in shown
    assert "*Verdict*" in shown
    assert "*&lt;!channel&gt;" in shown


def test_a_draft_shows_the_latest_text_within_one_message() -> None:
    draft = followup_answer_draft("start " + "x " * 5_000 + "the latest words")
    _assert_within_limits(draft)
    assert text_lines(draft.blocks)[-1].endswith("the latest words…")
    assert _elements(draft) == []
    assert followup_answer_draft("").text == "…"


def test_a_standalone_rerun_offer_lists_the_changes_and_carries_the_turn() -> None:
    offer = rerun_offer(TURN, ["operates at 250 °C", "10,000 a year"])
    assert offer.text == "This changes the requirements: operates at 250 °C; 10,000 a year"
    assert [(e["action_id"], e["value"]) for e in _elements(offer)] == [(actions.RERUN_WITH, TURN)]


def test_dm_help_offers_to_analyse_the_message_it_answers() -> None:
    help_reply = dm_help("D123", "1712345678.000100")
    [button] = _elements(help_reply)
    assert (button["action_id"], button["value"]) == (actions.ANALYSE_TEXT, "D123:1712345678.000100")
    assert "photo" in help_reply.text
    _assert_within_limits(help_reply)


@pytest.mark.parametrize(
    ("rendered", "action_id", "value"),
    [
        (muted_notice("C1", "1712345678.000100"), actions.UNMUTE, "C1:1712345678.000100"),
        (photos_added_notice(2, CID), actions.RERUN, CID),
        (edited_offer(CID), actions.RERUN_EDITED, CID),
    ],
)
def test_notices_carry_the_button_that_acts_on_their_own_thread(rendered: Rendered, action_id: str, value: str) -> None:
    [button] = _elements(rendered)
    assert (button["action_id"], button["value"]) == (action_id, value)
    _assert_within_limits(rendered)


def test_photos_added_counts_the_photos() -> None:
    assert photos_added_notice(1, CID).text.startswith("Got 1 photo more of this part")
    assert photos_added_notice(3, CID).text.startswith("Got 3 photos more of this part")
