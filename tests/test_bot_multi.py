"""Several photos in one message are one part: one board, one record, every branch sees every photo."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from bot.store import Consultation, ConsultationStatus, Store, StoredFile
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.bot_support import (
    ALICE,
    GENERAL,
    WAIT_S,
    Upload,
    bot_settings,
    rendered,
    running_bot,
    wait_boards,
    wait_finished,
)
from tests.engine_support import jpeg_bytes

COLOURS = ((200, 60, 60), (60, 200, 60), (60, 60, 200))


def _images(body: dict[str, Any]) -> list[str]:
    """The base64 data of every image block in a Messages API request, in order."""
    found: list[str] = []
    for message in body.get("messages", []):
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "image":
                found.append(block["source"]["data"])
    return found


def _branches(claude: ClaudeEmulator) -> list[list[str]]:
    return [_images(r.body) for r in claude.requests if r.kind.kind == "branch"]


def _three_photos(slack: SlackEmulator, channel: str = GENERAL) -> list[dict[str, Any]]:
    return [
        slack.add_file(jpeg_bytes(900, 700, colour), f"angle{i}.jpg", "image/jpeg", "jpg", channel=channel)
        for i, colour in enumerate(COLOURS)
    ]


async def test_three_photos_in_one_message_make_one_board_whose_branches_each_carry_all_three(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    settings = bot_settings(slack, tmp_path)
    async with running_bot(slack, claude, settings, max_retries=0):
        event = slack.upload_message(GENERAL, ALICE, "one hinge from three sides, 5 kg, indoors", _three_photos(slack))
        await slack.deliver_event(event)
        replies = await wait_finished(slack, Upload.of(event))
    boards = [r for r in replies if "angle0.jpg" in rendered(r)]
    assert len(boards) == 1
    branches = _branches(claude)
    assert len(branches) == 6
    assert all(len(images) == 3 for images in branches)
    assert len(set(branches[0])) == 3  # three different photos, not one three times
    assert all(images == branches[0] for images in branches)  # byte-identical in every branch
    async with await Store.open(settings.database_url) as store:
        (record,) = await store.for_message(GENERAL, str(event["ts"]))
        stored = await store.images(record.id)
    assert [f.name for f in record.files] == ["angle0.jpg", "angle1.jpg", "angle2.jpg"]
    assert record.file_name == "angle0.jpg" and record.channel_type == "channel"
    assert record.part_text.startswith("angle0.jpg and 2 more photos; ")  # and what the specialist saw
    assert [base64.b64encode(i.data).decode() for i in stored] == branches[0]  # what Claude saw, kept
    assert len(slack.downloads) == 3


async def test_photos_past_the_cap_are_left_out_with_a_notice(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    settings = bot_settings(slack, tmp_path, MATREC_MAX_IMAGES_PER_MESSAGE=2)
    async with running_bot(slack, claude, settings, max_retries=0):
        event = slack.upload_message(GENERAL, ALICE, "one hinge from three sides", _three_photos(slack))
        await slack.deliver_event(event)
        replies = await wait_finished(slack, Upload.of(event))
    assert any("1 more was left out" in rendered(r) for r in replies)
    assert all(len(images) == 2 for images in _branches(claude))


async def test_a_resumed_part_downloads_every_photo_again_when_none_were_stored(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    settings = bot_settings(slack, tmp_path)
    files = _three_photos(slack)
    event = slack.upload_message(GENERAL, ALICE, "one hinge from three sides", files)
    ts = str(event["ts"])
    async with await Store.open(settings.database_url) as store:
        record = Consultation(
            channel=GENERAL, thread_ts=ts, message_ts=ts, file_id=files[0]["id"], file_name="angle0.jpg",
            files=[StoredFile(id=f["id"], name=f["name"]) for f in files], context="one hinge from three sides",
            status=ConsultationStatus.RUNNING, owner="gone:1:dead00", heartbeat_at=None,
        )  # fmt: skip
        assert await store.claim_and_add(event_id=None, channel=GENERAL, ts=ts, consultations=[record])
    async with running_bot(slack, claude, settings, max_retries=0):
        (board,) = await wait_boards(slack, Upload(GENERAL, ts))
    assert "Best: Metal" in rendered(board)
    assert sorted(d.file_id or "" for d in slack.downloads) == sorted(f["id"] for f in files)
    branches = _branches(claude)
    assert len(branches) == 6 and all(len(images) == 3 and len(set(images)) == 3 for images in branches)


async def test_a_resumed_part_reuses_its_stored_photos_without_downloading(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    settings = bot_settings(slack, tmp_path)
    async with running_bot(slack, claude, settings, max_retries=0):
        event = slack.upload_message(GENERAL, ALICE, "one hinge from three sides", _three_photos(slack))
        await slack.deliver_event(event)
        await wait_boards(slack, Upload.of(event))
    first = _branches(claude)[0]
    async with await Store.open(settings.database_url) as store:
        (done,) = await store.for_message(GENERAL, str(event["ts"]))
        await store.update(done.id, status=ConsultationStatus.RUNNING, owner="gone:1:dead00", heartbeat_at=None)
    downloads, requests = len(slack.downloads), len(claude.requests)
    async with running_bot(slack, claude, settings, max_retries=0):  # leaving it waits for the run to end
        await slack.wait_until(lambda: len(claude.requests) >= requests + 6, WAIT_S, what="the resumed run")
    async with await Store.open(settings.database_url) as store:
        again = await store.get(done.id)
    assert again is not None and again.status is ConsultationStatus.DONE
    resumed = _branches(claude)[6:]
    assert len(slack.downloads) == downloads  # nothing fetched again
    assert len(resumed) == 6 and all(images == first for images in resumed)  # byte-identical photos


async def test_a_photo_that_cannot_be_downloaded_is_left_out_and_the_others_are_analysed(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    files = [*_three_photos(slack)[:2], slack.add_file(b"no pixels here", "angle2.jpg", "image/jpeg", "jpg")]
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_retries=0):
        event = slack.upload_message(GENERAL, ALICE, "one hinge from three sides", files)
        await slack.deliver_event(event)
        replies = await wait_boards(slack, Upload.of(event))
    (notice,) = [r for r in replies if "angle2.jpg" in rendered(r) and "other 2 photos" in rendered(r)]
    assert "not an image" in rendered(notice)
    assert any("Best: Metal" in rendered(r) for r in replies)
    assert all(len(images) == 2 for images in _branches(claude))
    assert "white_check_mark" in slack.reactions(GENERAL, str(event["ts"]))
