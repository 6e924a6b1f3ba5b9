"""`/matrec`: help, history, search, stats and ask; every answer is seen by the person who asked only.

Answers about earlier consultations come only from conversations the asker is a member of
(`bot.access`). `ask` starts a text-only consultation where the command was run when the bot is a
member there, and otherwise in the bot's DM with the asker (conversations.open, scope im:write).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import Access
from bot.blocks.kit import Block, clip, context, section
from bot.consultation import Consultant
from bot.memory import Memory, link_lines, stats_lines
from bot.store import Consultation, Store
from bot.writer import best_effort

log = logging.getLogger(__name__)

COMMAND = "/matrec"
HISTORY_DEFAULT = 10  # consultations `history` lists without a number
HISTORY_MAX = 50  # the most `history` lists
SEARCH_LIMIT = 10  # search results shown
MAX_WORDS_CHARS = 200  # of a search
MAX_ASK_CHARS = 3_000  # of an `ask` description
LINES_PER_SECTION = 10  # keeps every section far below Slack's 3,000 characters

HELP = "\n".join(
    (
        "*/matrec* — material selection for a part, and the team's earlier consultations:",
        "• `/matrec ask <description>` — analyse a part described in words (load, temperature, "
        "environment, quantity); a photo posted where I am works too",
        "• `/matrec history [n]` — the latest n consultations (10 unless you say, at most 50)",
        "• `/matrec search <words>` — earlier consultations about a part, a class or a requirement",
        "• `/matrec stats` — consultations per week, the classes recommended and chosen",
        "• `/matrec help` — this list",
        "Only you see these answers, and they only include conversations you are a member of.",
    )
)
NOTHING_VISIBLE = "There are no consultations yet in the conversations you are a member of."


@dataclass(frozen=True)
class Reply:
    """An ephemeral answer: a fallback text and its blocks."""

    text: str
    blocks: list[Block]

    @classmethod
    def plain(cls, text: str) -> Reply:
        """A one-section answer."""
        return cls(text=text, blocks=[section(text)])


class SlashCommand:
    """The `/matrec` command's subcommands."""

    def __init__(
        self, store: Store, access: Access, memory: Memory, consultant: Consultant, *, bot_user_id: str
    ) -> None:
        self._store = store
        self._access = access
        self._memory = memory
        self._consultant = consultant
        self._bot_user_id = bot_user_id

    def register(self, app: AsyncApp) -> None:
        """Listen for `/matrec`."""
        app.command(COMMAND)(self.on_command)

    async def on_command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """Ack at once (an empty ack shows nothing), then answer through the response URL, ephemerally.

        The answer is worked out in a task the consultant keeps, so a shutdown waits for it."""
        await ack()
        user = command.get("user_id")
        self._consultant.spawn(self._respond(command, client, respond), name=f"{COMMAND} by {user}")

    async def _respond(self, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond) -> None:
        reply = await self.answer(command, client)
        await respond(text=reply.text, blocks=reply.blocks, response_type="ephemeral")

    async def answer(self, command: dict[str, Any], client: AsyncWebClient) -> Reply:
        """What to tell the person who ran the command."""
        user = str(command.get("user_id") or "")
        channel = str(command.get("channel_id") or "")
        name, _, rest = str(command.get("text") or "").strip().partition(" ")
        rest = rest.strip()
        match name.lower():
            case "history":
                return await self.history(user, rest)
            case "search":
                return await self.search(user, rest)
            case "stats":
                return await self.stats(user)
            case "ask":
                key = str(command.get("trigger_id") or f"{channel}:{user}:{rest}")
                return await self.ask(client, user, channel, rest, key=key)
            case "help" | "":
                return Reply.plain(HELP)
            case _:
                return Reply.plain(f"I do not know `{_code(name)}`.\n{HELP}")

    async def history(self, user: str, argument: str) -> Reply:
        """The latest consultations in the asker's conversations."""
        if argument and not argument.isdigit():
            return Reply.plain(f"`history` takes a number from 1 to {HISTORY_MAX}, like `/matrec history 20`.")
        count = int(argument) if argument else HISTORY_DEFAULT
        if not 1 <= count <= HISTORY_MAX:
            return Reply.plain(f"I can list 1 to {HISTORY_MAX} consultations; `{count}` is out of that range.")
        channels = await self._visible(user)
        found = await self._store.history(channels, limit=count) if channels else []
        title = "The latest consultation" if len(found) == 1 else f"The latest {len(found)} consultations"
        return await self._listing(title, found)

    async def search(self, user: str, words: str) -> Reply:
        """Earlier consultations matching `words`, best match first."""
        if not words:
            return Reply.plain("Tell me what to look for, like `/matrec search bracket outdoor`.")
        if len(words) > MAX_WORDS_CHARS:
            return Reply.plain(f"That search is too long; {MAX_WORDS_CHARS} characters at most.")
        channels = await self._visible(user)
        found = await self._store.search(words, channels, limit=SEARCH_LIMIT) if channels else []
        if not found:
            return Reply.plain(f"No consultation matches “{_quote(words)}” in the conversations you are in.")
        return await self._listing(f"Consultations matching “{_quote(words)}”", found)

    async def stats(self, user: str) -> Reply:
        """Statistics over the asker's conversations."""
        channels = await self._visible(user)
        if not channels:
            return Reply.plain(NOTHING_VISIBLE)
        lines = stats_lines(await self._store.stats(channels))
        return Reply(text=lines[0], blocks=[section("\n".join(lines)), context(_ONLY_YOURS)])

    async def ask(self, client: AsyncWebClient, user: str, channel: str, text: str, *, key: str) -> Reply:
        """Start a text-only consultation here if the bot is a member, else in a DM with the asker."""
        if not text:
            return Reply.plain("Describe the part after `ask`, like `/matrec ask hinge for an outdoor gate, 2 kg`.")
        if len(text) > MAX_ASK_CHARS:
            return Reply.plain(f"That description is too long; {MAX_ASK_CHARS} characters at most.")
        where = channel if channel and await self._access.is_member(self._bot_user_id, channel) else None
        note = "I am analysing it in this conversation; the board appears under your question."
        if where is None:
            opened = await best_effort(client.conversations_open(users=user), f"could not open a DM with {user}")
            where = str((opened.get("channel") or {}).get("id") or "") if opened is not None else ""
            note = "I am not a member of this conversation, so I am analysing it in our direct messages."
        if not where:
            return Reply.plain("I could not start that consultation: I cannot post here or in a DM with you.")
        await self._consultant.start_text(channel=where, thread_ts=None, user=user, text=text, key=f"ask:{key}")
        return Reply.plain(note)

    async def _visible(self, user: str) -> set[str]:
        return await self._access.visible_channels(user, await self._store.channels())

    async def _listing(self, title: str, found: Sequence[Consultation]) -> Reply:
        if not found:
            return Reply.plain(NOTHING_VISIBLE)
        lines = link_lines(await self._memory.links(found))
        blocks = [section(f"*{title}*")]
        for start in range(0, len(lines), LINES_PER_SECTION):
            blocks.append(section("\n".join(lines[start : start + LINES_PER_SECTION])))
        blocks.append(context(_ONLY_YOURS))
        return Reply(text=title, blocks=blocks)


_ONLY_YOURS = "Only you see this; it includes conversations you are a member of and nothing else."


def _code(text: str) -> str:
    return "".join(ch for ch in text[:40] if ch not in "`<>&")


def _quote(text: str) -> str:
    return clip(text, MAX_WORDS_CHARS)
