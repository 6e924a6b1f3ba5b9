"""A person editing or deleting their message yields the hidden message_changed / message_deleted
events Slack sends, an upload's files kept through the edit."""

from __future__ import annotations

from emulators.slack import SlackEmulator

GENERAL = "C0GENERAL"
ALICE = "U1"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


async def test_editing_an_upload_keeps_its_files_and_marks_it_edited(slack: SlackEmulator) -> None:
    photo = slack.add_file(PNG, "part.png", "image/png", "png")
    ts = slack.upload_message(GENERAL, ALICE, "aluminium bracket", [photo])["ts"]
    event = slack.message_changed(GENERAL, ts, text="aluminium bracket, 200 °C")
    message, previous = event["message"], event["previous_message"]
    assert (event["type"], event["subtype"], event["hidden"], event["channel_type"]) == (
        "message",
        "message_changed",
        True,
        "channel",
    )
    assert (message["ts"], message["user"], message["text"]) == (ts, ALICE, "aluminium bracket, 200 °C")
    assert message["edited"]["user"] == ALICE
    assert float(message["edited"]["ts"]) > float(ts)
    assert [f["id"] for f in message["files"]] == [photo["id"]]
    assert message["blocks"][0]["elements"][0]["elements"] == [{"type": "text", "text": "aluminium bracket, 200 °C"}]
    assert (previous["text"], "edited" in previous) == ("aluminium bracket", False)
    assert [f["id"] for f in previous["files"]] == [photo["id"]]
    assert event["ts"] != ts  # the event has its own ts; the message keeps its own


async def test_editing_a_thread_reply_keeps_its_thread(slack: SlackEmulator) -> None:
    parent = slack.user_message(GENERAL, ALICE, "photo")["ts"]
    reply = slack.user_message(GENERAL, "U2", "what about 150?", thread_ts=parent)["ts"]
    event = slack.message_changed(GENERAL, reply, text="what about 150 °C?")
    assert (event["message"]["thread_ts"], event["message"]["parent_user_id"]) == (parent, ALICE)


async def test_deleting_an_upload_yields_message_deleted_with_the_previous_message(slack: SlackEmulator) -> None:
    photo = slack.add_file(PNG, "part.png", "image/png", "png")
    ts = slack.upload_message(GENERAL, ALICE, "bracket", [photo])["ts"]
    event = slack.message_deleted(GENERAL, ts)
    assert (event["subtype"], event["hidden"], event["deleted_ts"], event["channel"]) == (
        "message_deleted",
        True,
        ts,
        GENERAL,
    )
    assert event["previous_message"]["files"][0]["id"] == photo["id"]
    assert slack.history(GENERAL) == []
    assert slack.message(GENERAL, ts).deleted
