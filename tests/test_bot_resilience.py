"""The bot under failure and load: nothing lost, nothing hung, one job's trouble stays its own.

Real Bolt over a real websocket, both emulators, a real SQLite store; waits are on conditions.
"""

from __future__ import annotations

import asyncio
import gc
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.store import Consultation, ConsultationStatus, Store
from emulators.claude import ClaudeEmulator, Fault
from emulators.slack import MessageVersion, SlackEmulator
from emulators.slack_faults import TransportFault
from tests.bot_support import (
    ALICE,
    GENERAL,
    WAIT_S,
    board_replies,
    bot_replies,
    bot_settings,
    finished,
    rendered,
    running_bot,
    upload,
    wait_boards,
    wait_finished,
)
from tests.engine_support import jpeg_bytes

PHOTO = jpeg_bytes(800, 600)
STOPPED_EVENTS = 5  # events still being handled when the bot is told to stop
LISTENING_S = 0.005  # the listeners have started, and not finished, when the bot is told to stop
AFTER_STOP_S = 0.3  # long enough for anything left running to show itself


def _shown(version: MessageVersion) -> str:
    return version.text + "\n" + json.dumps(version.blocks or [], ensure_ascii=False)


async def test_the_analysing_status_is_cleared_when_the_board_is_final(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path)):
        sent = await upload(slack, PHOTO)
        await slack.wait_until(lambda: slack.thread_status(GENERAL, sent.ts) is not None, WAIT_S)
        await wait_finished(slack, sent)
        await slack.wait_until(lambda: slack.thread_status(GENERAL, sent.ts) is None, WAIT_S, what="status cleared")


async def test_one_uploads_broken_stream_leaves_the_other_uploads_alone(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    # one consultation at a time: the first upload's six branches and their retries get garbage
    claude.fail(Fault.MALFORMED_CHUNK, match="branch", times=12)
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_consultations=1):
        uploads = []
        for i in range(3):  # each board is up before the next upload, so the queue keeps their order
            uploads.append(await upload(slack, PHOTO, name=f"part{i}.jpg", text="a bracket, 20 kg, indoors"))
            await slack.wait_until(lambda: bool(board_replies(slack, GENERAL, uploads[-1].ts)), WAIT_S)
        boards = [rendered(board) for sent in uploads for board in await wait_boards(slack, sent)]
    assert len(boards) == 3
    assert "No recommendation" in boards[0] and "not JSON" in boards[0]
    assert all("Best: Metal" in board for board in boards[1:])
    assert "warning" in slack.reactions(GENERAL, uploads[0].ts)
    assert all("white_check_mark" in slack.reactions(GENERAL, sent.ts) for sent in uploads[1:])


async def test_extra_consultations_wait_their_turn_and_download_only_when_they_start(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    claude.latency_s = 0.3
    settings = bot_settings(slack, tmp_path, MATREC_QUEUE_REFRESH_S=0.05)
    async with running_bot(slack, claude, settings, max_consultations=1):
        uploads = [await upload(slack, PHOTO, name=f"part{i}.jpg", channel=GENERAL) for i in range(3)]
        third = uploads[2]
        await slack.wait_until(lambda: len(bot_replies(slack, GENERAL, third.ts)) == 1, WAIT_S)
        (queued,) = bot_replies(slack, GENERAL, third.ts)
        first_shown = _shown(slack.versions(GENERAL, queued.ts)[0])
        assert "Queued: 1 consultation is ahead" in first_shown  # the first runs, the second is next in line
        for sent in uploads:
            await wait_finished(slack, sent)
    downloads = sorted(slack.downloads, key=lambda d: d.at)
    first_done = max(r.finished_at or 0.0 for r in claude.requests[:7])
    assert [d.file_id for d in downloads] == [slack.message(GENERAL, u.ts).files[0]["id"] for u in uploads]
    assert downloads[1].at >= first_done  # the second photo was fetched once the first consultation ended
    shown = [_shown(v) for v in slack.versions(GENERAL, queued.ts)]
    assert any("next in line" in text or "1 consultation is ahead" in text for text in shown)
    assert "Best: Metal" in shown[-1]


async def test_a_consultation_whose_owner_fell_silent_is_taken_over_by_the_periodic_scan(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    settings = bot_settings(slack, tmp_path, MATREC_HEARTBEAT_INTERVAL_S=0.05, MATREC_STALE_AFTER_S=0.5)
    file = slack.add_file(PHOTO, "ghost.jpg", "image/jpeg", "jpg", channel=GENERAL)
    event = slack.upload_message(GENERAL, ALICE, "a bracket someone else was analysing", [file])
    ts = str(event["ts"])
    async with running_bot(slack, claude, settings) as running:
        board = await _board_of_a_crashed_replica(slack, settings.database_url, ts, file["id"])
        await slack.wait_until(lambda: finished(slack, GENERAL, ts), WAIT_S, what="the final reaction")
        assert running.resumer.resumed == 1
    assert "Best: Metal" in rendered(slack.message(GENERAL, board))
    assert any("Resumed after the bot restarted" in _shown(v) for v in slack.versions(GENERAL, board))
    assert len(board_replies(slack, GENERAL, ts)) == 1  # the same board, updated: no second one


async def _board_of_a_crashed_replica(slack: SlackEmulator, database_url: str, ts: str, file_id: str) -> str:
    """What a replica that died mid-run leaves: its board in the thread, its record with an old heartbeat."""
    own = slack.identity.bot_id
    board_ts = str(
        slack.bot_message(GENERAL, "Material consultation: 2/6 classes done.", bot_id=own, thread_ts=ts)["ts"]
    )
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with await Store.open(database_url) as store:
        record = Consultation(
            channel=GENERAL,
            thread_ts=ts,
            message_ts=ts,
            file_id=file_id,
            file_name="ghost.jpg",
            context="a bracket someone else was analysing",
            status=ConsultationStatus.RUNNING,
            board_ts=board_ts,
            owner="replica-b:4242:dead00",
            heartbeat_at=long_ago,
        )
        assert await store.claim_and_add(event_id=None, channel=GENERAL, ts=ts, consultations=[record])
    return board_ts


async def test_shutdown_cancels_what_it_stops_waiting_for_and_the_next_start_resumes_it(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    claude.fail(Fault.HANG, match="metal", times=1)
    settings = bot_settings(slack, tmp_path, MATREC_SHUTDOWN_GRACE_S=0.2)
    async with running_bot(slack, claude, settings):
        sent = await upload(slack, PHOTO)
        await claude.wait_for_requests(6)
    async with await Store.open(settings.database_url) as store:
        (record,) = await store.for_message(GENERAL, sent.ts)
    assert record.status is ConsultationStatus.RUNNING and record.heartbeat_at is None  # released for others
    assert not finished(slack, GENERAL, sent.ts)
    async with running_bot(slack, claude, settings):
        (board,) = await wait_boards(slack, sent)
    assert "Best: Metal" in rendered(board)
    assert any("Resumed" in _shown(v) for v in slack.versions(GENERAL, board.ts))  # said so while it ran


async def test_a_consultation_interrupted_too_often_is_given_up_with_a_message(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    settings = bot_settings(slack, tmp_path)
    file = slack.add_file(PHOTO, "cursed.jpg", "image/jpeg", "jpg", channel=GENERAL)
    event = slack.upload_message(GENERAL, ALICE, "a bracket", [file])
    ts = str(event["ts"])
    own = slack.identity.bot_id
    board_ts = str(slack.bot_message(GENERAL, "Material consultation: starting.", bot_id=own, thread_ts=ts)["ts"])
    async with await Store.open(settings.database_url) as store:
        record = Consultation(
            channel=GENERAL, thread_ts=ts, message_ts=ts, file_id=file["id"], status=ConsultationStatus.RUNNING,
            board_ts=board_ts, owner="gone", heartbeat_at=None, resumes=3,
        )  # fmt: skip
        await store.claim_and_add(event_id=None, channel=GENERAL, ts=ts, consultations=[record])
    async with running_bot(slack, claude, settings):
        await slack.wait_until(lambda: finished(slack, GENERAL, ts), WAIT_S, what="the final reaction")
    assert "interrupted by 4 restarts" in rendered(slack.message(GENERAL, board_ts))
    assert claude.requests == []


async def test_a_board_that_could_not_be_posted_frees_its_place_for_the_next_upload(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_consultations=1):
        slack.fail_transport("chat.postMessage", TransportFault.DISCONNECT, count=2)  # the SDK retries once
        lost = await upload(slack, PHOTO)
        await slack.wait_until(lambda: finished(slack, GENERAL, lost.ts), WAIT_S, what="the first upload's end")
        assert bot_replies(slack, GENERAL, lost.ts) == [] and "warning" in slack.reactions(GENERAL, lost.ts)
        sent = await upload(slack, PHOTO)
        (board,) = await wait_boards(slack, sent)  # not stuck behind a place nobody gave back
    assert "Best: Metal" in rendered(board)


async def test_a_bot_stopped_while_its_listeners_still_work_leaves_nothing_running_behind(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path)):
        dm = slack.add_im(ALICE)
        for n in range(STOPPED_EVENTS):  # DM text and mentions: listeners that read the store themselves
            await slack.deliver_event(slack.user_message(dm.id, ALICE, f"gasket for a flange, {n} bar"))
            await slack.deliver_event(slack.mention_event(GENERAL, ALICE, f"a hinge for {n} kg"))
        await asyncio.sleep(LISTENING_S)
    calls = len(slack.calls)
    await asyncio.sleep(AFTER_STOP_S)
    gc.collect()  # a store connection left open would warn here (pytest turns that into a failure)
    assert len(slack.calls) == calls  # nothing the bot started calls Slack after it stopped
