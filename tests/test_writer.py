"""The board writer against the Slack emulator, through the real AsyncWebClient built as production builds it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import Rendered
from bot.service import RATE_LIMIT_RETRIES
from bot.store import Store
from bot.writer import FinalRetry, MessageWriter, post_reply
from emulators.slack import SlackEmulator, TransportFault
from tests.budget_support import budgeted_client, rates
from tests.store_support import fresh_database

GENERAL = "C0GENERAL"
ALICE = "U1"
WAIT_S = 5.0
CLIENT_TIMEOUT_S = 1  # production keeps the SDK's 30 s; a stalled call is over sooner here
FAST_RETRY = FinalRetry(window_s=WAIT_S, first_backoff_s=0.01, max_backoff_s=0.05)
SHORT_WINDOW_S = 0.3


def production_client(
    slack: SlackEmulator, *, timeout_s: int = CLIENT_TIMEOUT_S, rate_limit_retries: int = RATE_LIMIT_RETRIES
) -> AsyncWebClient:
    """An AsyncWebClient as bot/service.py builds it: the SDK's connection retry (once) plus the 429 handler."""
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, timeout=timeout_s)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries))
    return client


def board(text: str) -> Rendered:
    """A one-section board reading `text`."""
    return Rendered(text=text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])


PLACEHOLDER = board("Analysing…")


@dataclass(frozen=True)
class Thread:
    """A person's upload and the board the bot posted under it."""

    ts: str
    board_ts: str


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator() as emulator:
        yield emulator


@pytest.fixture
async def thread(slack: SlackEmulator) -> Thread:
    ts = str(slack.user_message(GENERAL, ALICE, "bracket for a 20 kg pump")["ts"])
    board_ts = await post_reply(production_client(slack), channel=GENERAL, thread_ts=ts, rendered=PLACEHOLDER)
    return Thread(ts, board_ts)


@pytest.fixture
def writer_for(slack: SlackEmulator, thread: Thread) -> Iterator[Callable[..., MessageWriter]]:
    """Start writers on the thread's board; any still running at the end is cancelled."""
    started: list[MessageWriter] = []

    def start(client: AsyncWebClient | None = None, **options: Any) -> MessageWriter:
        settings: dict[str, Any] = {"interval_s": 0.0, "final_retry": FAST_RETRY, **options}
        writer = MessageWriter(
            client or production_client(slack),
            channel=GENERAL,
            ts=thread.board_ts,
            thread_ts=thread.ts,
            shown=PLACEHOLDER,
            **settings,
        )
        started.append(writer)
        return writer

    yield start
    for writer in started:
        assert writer.done, "a writer outlived its test: close() or cancel() it"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="bot.writer")
    return caplog


def shown(slack: SlackEmulator, ts: str) -> str:
    return slack.message(GENERAL, ts).text


def update_answers(slack: SlackEmulator) -> list[str]:
    """What each chat.update got back: "ok" or the error code."""
    return [call.error or "ok" for call in slack.calls_to("chat.update")]


# --- intermediate renders -------------------------------------------------------------------------


async def test_a_connection_reset_on_an_update_is_logged_and_the_next_render_lands(
    slack: SlackEmulator, thread: Thread, writer_for: Callable[..., MessageWriter], logs: pytest.LogCaptureFixture
) -> None:
    writer = writer_for()
    slack.fail_transport("chat.update", TransportFault.RESET, count=2)  # the SDK's one retry meets the second
    writer.submit(board("metal done"))
    await slack.wait_until(lambda: slack.transport_faults_served["chat.update"] == 2, WAIT_S)
    writer.submit(board("metal and polymer done"))
    await slack.wait_until(lambda: shown(slack, thread.board_ts) == "metal and polymer done", WAIT_S)
    assert not writer.done
    await writer.close(board("Best: Metal"))
    assert shown(slack, thread.board_ts) == "Best: Metal"
    assert "Connection reset by peer" in logs.text
    assert slack.bot_token not in logs.text


async def test_only_the_newest_render_is_sent_and_an_identical_one_is_skipped(
    slack: SlackEmulator, thread: Thread, writer_for: Callable[..., MessageWriter]
) -> None:
    writer = writer_for()
    for text in ("one", "two", "three"):
        writer.submit(board(text))  # no await in between: the writer wakes once, to the newest
    await slack.wait_until(lambda: shown(slack, thread.board_ts) == "three", WAIT_S)
    writer.submit(board("three"))
    await writer.close(board("three"))
    assert [v.text for v in slack.versions(GENERAL, thread.board_ts)] == [PLACEHOLDER.text, "three"]
    assert writer.updates == 1


async def test_renders_and_the_final_share_the_app_wide_budget(
    slack: SlackEmulator, thread: Thread, writer_for: Callable[..., MessageWriter], tmp_path: Path
) -> None:
    async with fresh_database("sqlite", tmp_path) as url, await Store.open(url) as store:
        # one chat.update now, then one every 0.1 s; the final waits for it rather than move
        client = budgeted_client(slack, store, rates(tier3=600, burst=1, reserve=0), final_update_wait_s=WAIT_S)
        await _progress_then_final(slack, thread, writer_for(client, budget=client.budget))


async def _progress_then_final(slack: SlackEmulator, thread: Thread, writer: MessageWriter) -> None:
    writer.submit(board("half way"))
    await slack.wait_until(lambda: shown(slack, thread.board_ts) == "half way", WAIT_S)
    await writer.close(board("Best: Metal"))
    calls = slack.calls_to("chat.update")
    assert [c.params["text"] for c in calls] == ["half way", "Best: Metal"]
    assert calls[1].at - calls[0].at >= 0.09


# --- the final state ------------------------------------------------------------------------------


async def test_two_dropped_connections_on_the_final_still_land_it(
    slack: SlackEmulator, thread: Thread, writer_for: Callable[..., MessageWriter]
) -> None:
    writer = writer_for()
    slack.fail_transport("chat.update", TransportFault.DISCONNECT, count=2)
    await writer.close(board("Best: Metal"))
    assert shown(slack, thread.board_ts) == "Best: Metal"
    assert slack.transport_faults_served["chat.update"] == 2
    assert writer.done


async def test_a_timeout_on_the_final_is_retried_until_it_lands(
    slack: SlackEmulator, thread: Thread, writer_for: Callable[..., MessageWriter], logs: pytest.LogCaptureFixture
) -> None:
    writer = writer_for()
    slack.fail_transport("chat.update", TransportFault.STALL)
    await writer.close(board("Best: Metal"))
    assert shown(slack, thread.board_ts) == "Best: Metal"
    assert update_answers(slack) == ["ok"]  # the stalled call never answered
    assert "TimeoutError" in logs.text


async def test_a_429_on_the_final_the_client_gave_up_on_is_retried_within_the_window(
    slack: SlackEmulator, thread: Thread, writer_for: Callable[..., MessageWriter]
) -> None:
    writer = writer_for(production_client(slack, rate_limit_retries=1))  # fewer handler retries: a faster test
    slack.ratelimit_next("chat.update", count=2, retry_after_s=0)
    await writer.close(board("Best: Metal"))
    assert shown(slack, thread.board_ts) == "Best: Metal"
    assert update_answers(slack) == ["ratelimited", "ratelimited", "ok"]


@pytest.mark.parametrize("refusal", ["dropped", "ratelimited"])
async def test_close_returns_once_the_window_has_passed_and_logs_an_error(
    slack: SlackEmulator,
    thread: Thread,
    writer_for: Callable[..., MessageWriter],
    logs: pytest.LogCaptureFixture,
    refusal: str,
) -> None:
    writer = writer_for(final_retry=FinalRetry(window_s=SHORT_WINDOW_S, first_backoff_s=0.01))
    if refusal == "dropped":
        slack.fail_transport("chat.update", TransportFault.DISCONNECT, count=1000)
    else:
        slack.ratelimit_next("chat.update", count=1000, retry_after_s=0)
    started = time.monotonic()
    await writer.close(board("Best: Metal"))
    assert SHORT_WINDOW_S <= time.monotonic() - started < SHORT_WINDOW_S + 0.5
    assert writer.done
    assert shown(slack, thread.board_ts) == PLACEHOLDER.text
    assert "did not land within" in logs.text
    assert slack.bot_token not in logs.text


async def test_a_final_slack_refuses_is_logged_and_not_retried(
    slack: SlackEmulator, thread: Thread, writer_for: Callable[..., MessageWriter], logs: pytest.LogCaptureFixture
) -> None:
    writer = writer_for()
    await writer.close(Rendered(text="x" * 5000, blocks=[]))  # chat.update takes ~4,000 chars
    assert update_answers(slack) == ["msg_too_long"]
    assert "msg_too_long" in logs.text


async def test_a_board_deleted_mid_run_gets_the_final_state_as_a_new_reply(
    slack: SlackEmulator, thread: Thread, writer_for: Callable[..., MessageWriter]
) -> None:
    writer = writer_for()
    writer.submit(board("metal done"))
    await slack.wait_until(lambda: shown(slack, thread.board_ts) == "metal done", WAIT_S)
    slack.message_deleted(GENERAL, thread.board_ts)
    writer.submit(board("metal and polymer done"))
    await slack.wait_until(lambda: update_answers(slack)[-1] == "message_not_found", WAIT_S)
    writer.submit(board("three done"))  # not sent: the board is gone
    assert not writer.done
    await writer.close(board("Best: Metal"))
    assert writer.ts != thread.board_ts
    assert [m.text for m in slack.thread(GENERAL, thread.ts)] == ["bracket for a 20 kg pump", "Best: Metal"]
    assert slack.message(GENERAL, writer.ts).thread_ts == thread.ts
    assert update_answers(slack) == ["ok", "message_not_found"]
    assert writer.updates == 1


# --- the writer's task ends with its board --------------------------------------------------------


async def test_close_ends_the_writer_and_later_renders_are_ignored(
    slack: SlackEmulator, thread: Thread, writer_for: Callable[..., MessageWriter]
) -> None:
    writer = writer_for()
    await writer.close(board("Best: Metal"))
    assert writer.done
    writer.submit(board("late progress"))
    await writer.close(board("another final"))  # a second close is a no-op
    await writer.cancel()  # and so is a cancel after close
    assert shown(slack, thread.board_ts) == "Best: Metal"


async def test_cancel_ends_a_writer_stuck_in_a_stalled_update_without_a_final(
    slack: SlackEmulator, thread: Thread, writer_for: Callable[..., MessageWriter]
) -> None:
    writer = writer_for()
    slack.fail_transport("chat.update", TransportFault.STALL)
    writer.submit(board("metal done"))
    await slack.wait_until(lambda: slack.transport_faults_served["chat.update"] == 1, WAIT_S)
    started = time.monotonic()
    await writer.cancel()
    assert writer.done
    assert time.monotonic() - started < 0.5
    writer.submit(board("late progress"))
    assert shown(slack, thread.board_ts) == PLACEHOLDER.text
    assert slack.calls_to("chat.update") == []


async def test_cancelling_a_caller_awaiting_close_ends_the_writer(
    slack: SlackEmulator, writer_for: Callable[..., MessageWriter]
) -> None:
    writer = writer_for()
    slack.fail_transport("chat.update", TransportFault.STALL)
    closing = asyncio.create_task(writer.close(board("Best: Metal")))
    await slack.wait_until(lambda: slack.transport_faults_served["chat.update"] == 1, WAIT_S)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert writer.done
