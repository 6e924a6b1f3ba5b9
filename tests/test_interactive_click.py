"""Reading a click out of Slack's block_actions payload, and the thread rule it is checked against."""

from __future__ import annotations

from typing import Any

from bot import actions
from bot.interactive import Click, part_name
from bot.store import Consultation, StoredFile


def _payload(**overrides: Any) -> dict[str, Any]:
    """A block_actions payload as Slack sends it for a button in a thread reply."""
    body: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U2", "username": "bob", "team_id": "T1"},
        "container": {
            "type": "message",
            "message_ts": "1700000000.000300",
            "channel_id": "C1",
            "is_ephemeral": False,
            "thread_ts": "1700000000.000100",
        },
        "channel": {"id": "C1", "name": "general"},
        "message": {"type": "message", "ts": "1700000000.000300", "thread_ts": "1700000000.000100"},
        "actions": [{"action_id": actions.HELPFUL, "block_id": "b", "value": "abc", "type": "button"}],
    }
    body.update(overrides)
    return body


def test_a_button_press_names_its_user_conversation_thread_and_value() -> None:
    click = Click.of(_payload())
    assert click == Click("U2", "C1", "1700000000.000300", "1700000000.000100", actions.HELPFUL, "abc")
    assert click.in_thread_of("C1", "1700000000.000100")
    assert not click.in_thread_of("C1", "1700000000.000300")
    assert not click.in_thread_of("C2", "1700000000.000100")


def test_a_select_pick_carries_the_option_value() -> None:
    pick = {"action_id": actions.CHOSE, "type": "static_select", "selected_option": {"value": "abc:metal"}}
    assert Click.of(_payload(actions=[pick])).value == "abc:metal"


def test_a_message_outside_a_thread_is_its_own_thread_and_a_payload_without_a_channel_matches_nothing() -> None:
    container = {"type": "message", "message_ts": "5.0", "channel_id": "C1"}
    click = Click.of(_payload(container=container, message={"ts": "5.0"}))
    assert click.thread_ts == "5.0"
    empty = Click.of({"actions": [{"action_id": actions.HELPFUL}]})
    assert not empty.in_thread_of("", "")


def test_a_boards_part_is_named_as_the_job_names_it() -> None:
    base = {"channel": "C1", "thread_ts": "1.0", "message_ts": "1.0"}
    photos = [StoredFile(id=f"F{n}", name=f"p{n}.jpg") for n in range(3)]
    assert part_name(Consultation.model_validate({**base, "files": photos})) == "p0.jpg and 2 more photos"
    assert part_name(Consultation.model_validate({**base, "file_name": "a.jpg"})) == "a.jpg"
    assert part_name(Consultation.model_validate(base)) == "your description"
