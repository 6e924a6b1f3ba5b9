"""Running the real bot against both emulators, and reading what it did in the Slack workspace."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.service import Running, serve
from bot.settings import BotSettings
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from emulators.slack_workspace import Message
from tests.engine_support import engine_settings

GENERAL = "C0GENERAL"
ALICE = "U1"
BOB = "U2"
SIGNING_SECRET = "test-signing-secret"
WAIT_S = 15.0
STAGGERED_S = {
    "metal": 0.05,
    "polymer": 0.2,
    "ceramic": 0.35,
    "composite": 0.5,
    "elastomer": 0.65,
    "wood": 0.8,
}


def bot_settings(slack: SlackEmulator, tmp_path: Path, *, socket: bool = True, **overrides: Any) -> BotSettings:
    """Bot settings pointing at the emulator, on a free port, with a fresh SQLite file."""
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_API_URL": slack.api_url,
        "PORT": 0,
        "HOST": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "MATREC_UPDATE_INTERVAL_S": 0.05,
    }
    if socket:
        values["SLACK_APP_TOKEN"] = slack.app_token
    else:
        values["SLACK_SIGNING_SECRET"] = SIGNING_SECRET
    values.update(overrides)
    return BotSettings.model_validate(values)


@asynccontextmanager
async def running_bot(
    slack: SlackEmulator, claude: ClaudeEmulator, settings: BotSettings, **engine: Any
) -> AsyncIterator[Running]:
    """The bot's own serve() in this event loop, stopped (gracefully) at the end."""
    stop = asyncio.Event()
    started: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, engine_settings(claude, **engine), stop, started.set_result))
    waiting: set[asyncio.Future[Any]] = {task, started}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # re-raise a start-up failure
    running = started.result()
    if running.mode == "socket":
        await slack.wait_for_socket_connection(WAIT_S)
    try:
        yield running
    finally:
        stop.set()
        await task


def rendered(message: Message) -> str:
    """Everything a person could read in a message: its text and its blocks."""
    return message.text + "\n" + json.dumps(message.blocks or [], ensure_ascii=False)


def bot_replies(slack: SlackEmulator, channel: str, ts: str) -> list[Message]:
    """The bot's messages in the thread under `ts`."""
    return [m for m in slack.thread(channel, ts) if m.bot_id and m.ts != ts]


def finished(slack: SlackEmulator, channel: str, ts: str) -> bool:
    """Whether the bot has put its final reaction on the upload."""
    reactions = slack.reactions(channel, ts)
    return "white_check_mark" in reactions or "warning" in reactions


@dataclass(frozen=True)
class Upload:
    """An upload delivered to the bot."""

    channel: str
    ts: str
    envelope_id: str = ""

    @classmethod
    def of(cls, event: dict[str, Any]) -> Upload:
        """The upload an event delivered by hand describes."""
        return cls(str(event["channel"]), str(event["ts"]))


async def upload(
    slack: SlackEmulator,
    content: bytes,
    *,
    name: str = "bracket.jpg",
    mimetype: str = "image/jpeg",
    filetype: str = "jpg",
    text: str = "Wall bracket for a 20 kg pump, indoors, 500 a year",
    channel: str = GENERAL,
    mention: bool = False,
    user: str = ALICE,
) -> Upload:
    """Upload a file as a person (alice unless told) would, and deliver the event over the socket."""
    file = slack.add_file(content, name, mimetype, filetype, channel=channel)
    if mention:
        event = slack.mention_event(channel, user, text, files=[file])
    else:
        event = slack.upload_message(channel, user, text, [file])
    envelope_id = await slack.deliver_event(event)
    return Upload(channel, str(event["ts"]), envelope_id)


async def wait_finished(slack: SlackEmulator, sent: Upload) -> list[Message]:
    """Wait for the final reaction; returns the bot's replies in the thread."""
    await slack.wait_until(lambda: finished(slack, sent.channel, sent.ts), WAIT_S, what="the final reaction")
    return bot_replies(slack, sent.channel, sent.ts)


def board_replies(slack: SlackEmulator, channel: str, ts: str) -> list[Message]:
    """The bot's replies in the thread under `ts` but the score chart (a file it uploaded)."""
    return [m for m in bot_replies(slack, channel, ts) if not m.files]


async def wait_boards(slack: SlackEmulator, sent: Upload) -> list[Message]:
    """Wait for the final reaction; returns the bot's replies in the thread but the score chart."""
    await wait_finished(slack, sent)
    return board_replies(slack, sent.channel, sent.ts)
