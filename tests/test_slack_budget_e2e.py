"""Two real `python -m bot` processes on one PostgreSQL database, in Socket Mode, against the Slack
emulator enforcing Slack's tier limits app-wide (one set of buckets for both): 30 uploads split over
both instances all end in a final state, and Slack never answers 429, because both spend from one
shared budget and progress gives way. The lag from each consultation's last Claude answer to its
final state in Slack is reported (the load benchmark holds it to its target)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import statistics
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from bot.store import ConsultationStatus, Store
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from emulators.slack_workspace import Message
from tests.bot_support import ALICE, Upload
from tests.engine_support import KEY, jpeg_bytes
from tests.store_support import fresh_database

ROOT = Path(__file__).resolve().parents[1]  # the checkout under test, whatever the venv has installed
PHOTO = jpeg_bytes(640, 480)
CHANNELS = 10
PER_CHANNEL = 3  # 30 uploads
START_S = 30.0
ALL_FINAL_S = 180.0
LATENCY_S = 0.3  # each Claude call
TAG = re.compile(r"\(part-ref (t\d+)\)")
FINAL_MARK = "Best:"
POST_BURST = 3


@asynccontextmanager
async def _bot_process(slack: SlackEmulator, claude: ClaudeEmulator, url: str, workdir: Path) -> AsyncIterator[None]:
    """`python -m bot` in Socket Mode, connected; stopped with SIGTERM at the end."""
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    env = keep | {
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_API_URL": slack.api_url,
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": claude.base_url,
        "DATABASE_URL": url,
        "HOST": "127.0.0.1",
        "PORT": "0",
        "MATREC_UPDATE_INTERVAL_S": "0.2",
        "MATREC_LOG_LEVEL": "WARNING",
    }
    workdir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240  # a local directory: made at once
    connected = len(slack.socket.open_connections)
    with open(workdir / "bot.log", "wb") as log:  # noqa: ASYNC230  # a local file: opens at once
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", env=env, cwd=workdir, stderr=log)
    try:
        await slack.wait_until(
            lambda: len(slack.socket.open_connections) > connected or process.returncode is not None,
            START_S,
            "the bot's socket",
        )
        assert process.returncode is None, (workdir / "bot.log").read_text()[-2000:]
        yield
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), START_S)


def _shows_final(message: Message) -> bool:
    return FINAL_MARK in message.text + json.dumps(message.blocks or [])


def _final_at(slack: SlackEmulator, sent: Upload) -> float | None:
    """When a version of any board of the upload first showed its final state (the emulator's clock)."""
    boards = [m for m in slack.thread(sent.channel, sent.ts) if m.bot_id and m.ts != sent.ts and not m.files]
    seen = [v.at for m in boards for v in m.versions if FINAL_MARK in v.text + json.dumps(v.blocks or [])]
    return min(seen, default=None)


async def _upload(slack: SlackEmulator, channel: str, tag: str) -> Upload:
    file = slack.add_file(PHOTO, f"{tag}.jpg", "image/jpeg", "jpg", channel=channel)
    text = f"Wall bracket for a 20 kg pump, indoors, 500 a year (part-ref {tag})"
    event = slack.upload_message(channel, ALICE, text, [file])
    return Upload(channel, str(event["ts"]), await slack.deliver_event(event))


def _last_answers(claude: ClaudeEmulator) -> dict[str, float]:
    """Each tag's last Claude answer (the emulator's clock)."""
    last: dict[str, float] = {}
    for request in claude.requests:
        found = TAG.search(json.dumps(request.body))
        if found and request.finished_at is not None:
            last[found.group(1)] = max(last.get(found.group(1), 0.0), request.finished_at)
    return last


async def test_two_bot_processes_sharing_the_slack_budget_land_every_final_state_without_a_429(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    slack.use_slack_rate_limits()  # Slack's tiers, per app: both processes draw on the same buckets
    # chat.postMessage: a second per channel, "short bursts of more than 1 allowed" (bench.bot's 3)
    for method in ("chat.postMessage", "chat.postEphemeral"):
        slack.rate_limit(method, per_s=1.0, burst=POST_BURST, per_channel=True)
    claude.latency_s = LATENCY_S
    channels = [slack.add_channel(f"load-{n}").id for n in range(CHANNELS)]
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(fresh_database("postgres", tmp_path / "db"))
        for n in range(2):
            await stack.enter_async_context(_bot_process(slack, claude, url, tmp_path / f"bot{n}"))
        assert len(slack.socket.open_connections) == 2  # events go to either, at random
        tags = [f"t{n}" for n in range(CHANNELS * PER_CHANNEL)]
        sent = await asyncio.gather(*(_upload(slack, channels[n % CHANNELS], t) for n, t in enumerate(tags)))
        uploads = dict(zip(tags, sent, strict=True))
        await slack.wait_until(
            lambda: all(_final_at(slack, u) is not None for u in uploads.values()), ALL_FINAL_S, "every final state"
        )
        async with await Store.open(url) as store:
            records = {tag: await store.for_message(u.channel, u.ts) for tag, u in uploads.items()}
            owners = {r.owner for found in records.values() for r in found}

    assert slack.ratelimited_count.total() == 0, slack.ratelimited_count
    for tag, found in records.items():
        assert len(found) == 1, tag  # answered exactly once
        (record,) = found
        assert record.status is ConsultationStatus.DONE and record.board_ts is not None
        assert _shows_final(slack.message(record.channel, record.board_ts)), tag  # the stored board is the final one
    assert len(owners) == 2 or None in owners  # both instances took uploads (owners are cleared at the end)
    last = _last_answers(claude)
    lags = sorted(_final_at(slack, u) - last[tag] for tag, u in uploads.items())  # type: ignore[operator]
    record_property("final_lag_p95_s", round(lags[int(0.95 * (len(lags) - 1))], 3))
    record_property("final_lag_max_s", round(lags[-1], 3))
    record_property("final_lag_median_s", round(statistics.median(lags), 3))
    record_property("chat_update_calls", len(slack.calls_to("chat.update")))
    print(f"last answer -> final state: median {statistics.median(lags):.2f} s, max {lags[-1]:.2f} s")
