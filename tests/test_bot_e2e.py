"""The bot end to end: real Bolt over a real websocket (or signed HTTP), both emulators, a real store."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.store import ConsultationStatus, Store
from emulators.claude import ClaudeEmulator, Fault
from emulators.slack import SlackEmulator
from matrec.materials import PROFILES
from tests.bot_support import (
    ALICE,
    GENERAL,
    SIGNING_SECRET,
    STAGGERED_S,
    WAIT_S,
    Upload,
    board_replies,
    bot_replies,
    bot_settings,
    rendered,
    running_bot,
    upload,
    wait_boards,
    wait_finished,
)
from tests.engine_support import jpeg_bytes

PHOTO = jpeg_bytes(800, 600)
CLASS_LABELS = [p.label for p in PROFILES.values()]


@pytest.fixture
async def bot(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> AsyncIterator[None]:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_retries=0):
        yield


async def test_an_upload_gets_a_reaction_a_live_board_and_a_recommendation(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None, tmp_path: Path
) -> None:
    claude.latencies.update(STAGGERED_S)
    sent = await upload(slack, PHOTO)
    await slack.wait_until(lambda: "eyes" in slack.reactions(GENERAL, sent.ts), WAIT_S)
    replies = await wait_boards(slack, sent)
    assert len(replies) == 1
    board = replies[0]
    versions = [v.text + json.dumps(v.blocks) for v in slack.versions(GENERAL, board.ts)]
    assert all(label in versions[0] for label in CLASS_LABELS)
    assert versions[0].count("waiting") >= 6  # the placeholder: six pending classes
    intermediate = versions[1:-1]
    assert len(set(intermediate)) >= 3
    final = rendered(board)
    assert "Best: Metal" in final
    assert all(label in final for label in CLASS_LABELS)
    assert slack.reactions(GENERAL, sent.ts) == {"white_check_mark": ["UBOT"]}
    assert [c.params["name"] for c in slack.calls_to("reactions.remove")] == ["eyes"]
    assert slack.calls_to("assistant.threads.setStatus")[0].params["status"].startswith("is analysing")
    async with await Store.open(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        (record,) = await store.for_message(GENERAL, sent.ts)
    assert record.status is ConsultationStatus.DONE
    assert record.recommendation is not None and record.recommendation.best.value == "metal"
    assert record.board_ts == board.ts and record.image_sha256 and len(record.branches) == 6


async def test_each_branch_appears_in_the_thread_as_it_finishes(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    claude.latencies.update(STAGGERED_S)
    sent = await upload(slack, PHOTO)
    (board,) = await wait_boards(slack, sent)
    scores_seen = [sum(f"{s}/10" in v.text + json.dumps(v.blocks) for s in (8, 7, 4, 6, 3, 2))
                   for v in slack.versions(GENERAL, board.ts)]  # fmt: skip
    assert scores_seen[0] == 0 and scores_seen[-1] == 6
    assert scores_seen == sorted(scores_seen)  # entries only ever fill in
    assert len(set(scores_seen)) >= 4


async def test_a_redelivered_event_still_yields_one_thread(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    sent = await upload(slack, PHOTO)
    await slack.redeliver(sent.envelope_id, retry_attempt=1, retry_reason="timeout")
    await wait_finished(slack, sent)
    await slack.redeliver(sent.envelope_id, retry_attempt=2, retry_reason="timeout")
    mention = slack.mention_event(GENERAL, ALICE, "same upload")
    mention["ts"] = sent.ts  # the app_mention twin of the same message
    await slack.wait_for_ack(await slack.deliver_event(mention), WAIT_S)
    await slack.wait_for_ack(await slack.redeliver(sent.envelope_id, retry_attempt=3), WAIT_S)
    assert len(board_replies(slack, GENERAL, sent.ts)) == 1
    assert sum(1 for r in claude.requests if r.kind.kind == "branch") == 6


async def test_a_failed_branch_is_shown_in_plain_words(slack: SlackEmulator, claude: ClaudeEmulator, bot: None) -> None:
    claude.fail(Fault.SERVER_ERROR, match="wood", times=None)
    sent = await upload(slack, PHOTO)
    (board,) = await wait_boards(slack, sent)
    final = rendered(board)
    assert "could not be assessed" in final and "server error" in final
    assert "Best: Metal" in final
    assert "white_check_mark" in slack.reactions(GENERAL, sent.ts)


async def test_below_the_quorum_the_board_says_so_and_the_reaction_warns(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    claude.fail(Fault.SERVER_ERROR, match="branch", times=None)
    sent = await upload(slack, PHOTO)
    (board,) = await wait_boards(slack, sent)
    assert "No recommendation" in rendered(board) and "Only 0 of 6" in rendered(board)
    assert "warning" in slack.reactions(GENERAL, sent.ts)


@pytest.mark.parametrize(
    ("content", "name", "mimetype", "expected"),
    [
        (jpeg_bytes()[:400], "broken.jpg", "image/jpeg", "damaged"),
        (
            b"<!DOCTYPE html><html><body>Sign in to Slack</body></html>",
            "part.jpg",
            "image/jpeg",
            "sign-in page",
        ),
        (b"just some words, not pixels", "part.png", "image/png", "not an image"),
    ],
    ids=["corrupt", "html-login-page", "not-an-image"],
)
async def test_a_bad_image_gets_a_clear_message_in_its_thread(
    slack: SlackEmulator,
    claude: ClaudeEmulator,
    bot: None,
    content: bytes,
    name: str,
    mimetype: str,
    expected: str,
) -> None:
    sent = await upload(slack, content, name=name, mimetype=mimetype, filetype=name.rsplit(".", 1)[1])
    (board,) = await wait_boards(slack, sent)
    final = rendered(board)
    assert expected in final.lower() or expected in final
    assert name in final
    assert "JPEG, PNG, GIF, WebP or HEIC" in final
    assert "warning" in slack.reactions(GENERAL, sent.ts)
    assert claude.requests == []


async def test_an_oversized_file_is_refused_without_downloading_it(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_image_bytes=50_000):
        sent = await upload(slack, jpeg_bytes(1600, 1200, (10, 200, 30)) + b"\0" * 60_000, name="huge.jpg")
        (board,) = await wait_boards(slack, sent)
    assert "huge.jpg" in rendered(board) and "limit" in rendered(board)
    assert slack.downloads == []


async def test_a_non_image_file_is_ignored_unless_the_bot_is_mentioned(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    quiet = await upload(slack, b"%PDF-1.7", name="drawing.pdf", mimetype="application/pdf", filetype="pdf")
    asked = await upload(slack, b"%PDF-1.7", name="spec.pdf", mimetype="application/pdf", filetype="pdf", mention=True)
    await slack.wait_until(lambda: bool(bot_replies(slack, GENERAL, asked.ts)), WAIT_S)
    await slack.wait_for_ack(quiet.envelope_id, WAIT_S)
    (notice,) = bot_replies(slack, GENERAL, asked.ts)
    assert "spec.pdf" in rendered(notice) and "JPEG, PNG" in rendered(notice)
    assert bot_replies(slack, GENERAL, quiet.ts) == []
    assert slack.reactions(GENERAL, quiet.ts) == {}


async def test_model_and_user_text_can_never_ping_or_link(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    hostile = "Ping <!channel> <!here> <@U2> and see <https://evil.example|the docs> @everyone"
    claude.responder = lambda request: (
        {**request.answer, "summary": hostile, "strengths": [hostile]} if request.kind.kind == "branch" else None
    )
    sent = await upload(slack, PHOTO, text="needs to survive @here <!subteam^S1> & <https://x.example|y>")
    (board,) = await wait_boards(slack, sent)
    for version in slack.versions(GENERAL, board.ts):
        shown = version.text + json.dumps(version.blocks)
        for active in ("<!channel>", "<!here>", "<@U2>", "<https://", "<!subteam", "@here", "@everyone"):
            assert active not in shown
    assert "&lt;!channel&gt;" in rendered(board)


async def test_several_images_in_one_message_are_one_part_on_one_board(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    files = [slack.add_file(jpeg_bytes(color=(c, 80, 80)), f"view{c}.jpg", "image/jpeg", "jpg") for c in (10, 200)]
    event = slack.upload_message(GENERAL, ALICE, "two views of the same hinge", files)
    await slack.deliver_event(event)
    (board,) = await wait_boards(slack, Upload.of(event))
    assert "view10.jpg" in rendered(board) and "1 more photo" in rendered(board)
    assert "Best: Metal" in rendered(board)
    assert all(len(r.image_sizes) == 2 for r in claude.requests if r.kind.kind == "branch")


async def test_private_channels_and_direct_messages_work_too(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    private = slack.add_channel("design-private", is_private=True)
    dm = slack.add_im(ALICE)
    for channel in (private.id, dm.id):
        sent = await upload(slack, PHOTO, channel=channel)
        (board,) = await wait_boards(slack, sent)
        assert "Best: Metal" in rendered(board)


async def test_a_mention_only_channel_ignores_plain_uploads(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    settings = bot_settings(slack, tmp_path, MATREC_MENTION_ONLY_CHANNELS=GENERAL)
    async with running_bot(slack, claude, settings):
        plain = await upload(slack, PHOTO)
        asked = await upload(slack, PHOTO, mention=True)
        await wait_finished(slack, asked)
        await slack.wait_for_ack(plain.envelope_id, WAIT_S)
    assert bot_replies(slack, GENERAL, plain.ts) == []
    assert len(board_replies(slack, GENERAL, asked.ts)) == 1


async def test_a_mention_without_a_photo_runs_a_text_only_consultation(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    event = slack.mention_event(GENERAL, ALICE, "<@UBOT> gasket for a 90 C hot-water flange, 2,000 a year")
    await slack.deliver_event(event)
    (board,) = await wait_boards(slack, Upload.of(event))
    assert "Best: Metal" in rendered(board)
    assert all(r.image_sizes == [] for r in claude.requests)
    assert "90 C hot-water flange" in str(claude.requests[0].body)


async def test_rate_limited_updates_are_retried_and_the_final_state_lands(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    claude.latencies.update(STAGGERED_S)
    slack.rate_limit("chat.update", per_s=2, burst=1, retry_after_s=0)
    sent = await upload(slack, PHOTO)
    (board,) = await wait_boards(slack, sent)
    assert slack.ratelimited_count["chat.update"] > 0
    assert "Best: Metal" in rendered(board)


async def test_the_final_state_lands_even_when_429s_outlast_the_clients_retries(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    slack.ratelimit_next("chat.update", count=12, retry_after_s=0)  # two calls' worth of SDK retries
    sent = await upload(slack, PHOTO)
    (board,) = await wait_boards(slack, sent)
    assert slack.ratelimited_count["chat.update"] == 12
    assert "Best: Metal" in rendered(board)


async def test_http_mode_verifies_signatures_and_serves_the_same_flow(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path, socket=False)) as running:
        assert running.mode == "http" and running.base_url
        url = f"{running.base_url}/slack/events"
        file = slack.add_file(PHOTO, "bracket.jpg", "image/jpeg", "jpg")
        body = slack.event_callback(slack.upload_message(GENERAL, ALICE, "over http", [file]))
        unsigned = await slack.post_signed(url, body, signing_secret=SIGNING_SECRET, sign=False)
        stale = await slack.post_signed(url, body, signing_secret=SIGNING_SECRET, timestamp=int(time.time()) - 400)
        forged = await slack.post_signed(url, body, signing_secret="wrong-secret")
        assert [unsigned.status, stale.status, forged.status] == [401, 401, 401]
        assert claude.requests == []
        accepted = await slack.post_signed(url, body, signing_secret=SIGNING_SECRET)
        assert accepted.status == 200
        (board,) = await wait_boards(slack, Upload.of(body["event"]))
        again = await slack.post_signed(url, body, signing_secret=SIGNING_SECRET, retry_num=1, retry_reason="timeout")
        assert again.status == 200
    assert "Best: Metal" in rendered(board)
    assert len(board_replies(slack, GENERAL, body["event"]["ts"])) == 1


async def test_the_health_check_reports_the_socket(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    async with (
        running_bot(slack, claude, bot_settings(slack, tmp_path)) as running,
        aiohttp.ClientSession() as http,
        http.get(f"{running.base_url}/healthz") as response,
    ):
        assert response.status == 200
        assert await response.json() == {"ok": True, "mode": "socket", "running": 0, "queued": 0}


async def test_the_description_reaches_the_model_and_moves_the_answer(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    sent = await upload(slack, PHOTO, text="Kiln furniture: a setter plate holding pots at 1300 C")
    (board,) = await wait_boards(slack, sent)
    assert "Best: Ceramic" in rendered(board)
    assert all("1300 C" in str(r.body["messages"]) for r in claude.requests if r.kind.kind == "branch")


async def test_the_photo_reaches_the_model_and_moves_the_answer(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    text = "A garden bench seat slat, outdoors, 200 a year"
    grey = await upload(slack, jpeg_bytes(800, 600, color=(120, 130, 140)), text=text)
    (grey_board,) = await wait_boards(slack, grey)
    oak = await upload(slack, jpeg_bytes(800, 600, color=(150, 100, 50)), text=text)
    (oak_board,) = await wait_boards(slack, oak)
    assert "Best: Metal" in rendered(grey_board)  # a three-way tie at 6, broken by class order
    assert "Best: Wood" in rendered(oak_board)  # the wood-toned photo tips it


async def test_the_final_state_puts_the_score_chart_in_the_thread_with_alt_text(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    sent = await upload(slack, PHOTO)
    await wait_boards(slack, sent)
    (chart,) = slack.uploaded_files(GENERAL)
    assert chart.thread_ts == sent.ts and chart.content.startswith(b"\x89PNG")
    assert chart.alt_txt and "Metal" in chart.alt_txt and "8" in chart.alt_txt
    assert any(m.files for m in bot_replies(slack, GENERAL, sent.ts))  # shared in the thread, not the channel


async def test_a_failed_consultation_uploads_no_chart(slack: SlackEmulator, claude: ClaudeEmulator, bot: None) -> None:
    claude.fail(Fault.SERVER_ERROR, match="branch", times=None)
    sent = await upload(slack, PHOTO)
    await wait_boards(slack, sent)
    assert slack.uploaded_files() == []


async def test_matrec_ask_posts_the_question_without_a_ping_and_threads_its_board_under_it(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    await slack.slash_command(ALICE, GENERAL, "ask <!here> gasket for a 90 C hot-water flange, 2,000 a year")
    await slack.wait_until(lambda: any("asked:" in m.text for m in slack.history(GENERAL)), WAIT_S)
    (question,) = [m for m in slack.history(GENERAL) if "asked:" in m.text]
    assert question.bot_id and "alice asked:" in question.text and "<!here>" not in rendered(question)
    (board,) = await wait_boards(slack, Upload(GENERAL, question.ts))
    assert "Best: Metal" in rendered(board)
    assert all("90 C hot-water flange" in str(r.body["messages"]) for r in claude.requests if r.kind.kind == "branch")


async def test_what_the_final_board_has_no_room_for_follows_it_in_the_thread(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    claude.fail(Fault.SERVER_ERROR, match="aggregate", times=None)  # the fallback ranking carries a note
    sent = await upload(slack, PHOTO)
    await wait_finished(slack, sent)
    (board,) = [m for m in board_replies(slack, GENERAL, sent.ts) if "Best:" in rendered(m)]
    assert "More in the thread: 1 note." in rendered(board)
    await slack.wait_until(lambda: len(slack.uploaded_files(GENERAL)) == 1, WAIT_S, what="the chart")
    replies = bot_replies(slack, GENERAL, sent.ts)
    rest = [m for m in replies if "The rest of this recommendation" in rendered(m)]
    assert len(rest) == 1 and replies.index(rest[0]) == replies.index(board) + 1  # right below the board
    assert "weighted ranking is shown instead" in rendered(rest[0])  # the note: why there is no comparison
