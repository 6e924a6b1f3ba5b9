"""The small Slack touches around a consultation: reactions, notices, the thread status.

Each is best effort: a failure is logged and the consultation goes on (the board is what matters).
Reactions and the thread status are PROGRESS in the shared Slack budget (`bot.budget`): under load
they give way (are skipped) rather than hold back anyone's final state; notices are replies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.budget import Priority, calls_at
from bot.writer import best_effort, post_reply

THREAD_STATUS = "is analysing the part…"
EYES, DONE, WARNING = "eyes", "white_check_mark", "warning"


@dataclass(frozen=True)
class Thread:
    """Where a consultation lives: the message that asked, and the thread under it."""

    client: AsyncWebClient
    channel: str
    thread_ts: str
    message_ts: str

    async def notice(self, message: str) -> None:
        """A short reply in the thread."""
        reply = post_reply(self.client, channel=self.channel, thread_ts=self.thread_ts, rendered=blocks.notice(message))
        await best_effort(reply, f"could not reply in {self.channel}")

    async def react(self, *, add: str | None = None, remove: str | None = None) -> None:
        """Swap reactions on the asking message."""
        for method, name in ((self.client.reactions_remove, remove), (self.client.reactions_add, add)):
            if name is not None:
                where = f"reaction {name} on {self.channel}/{self.message_ts}"
                with calls_at(Priority.PROGRESS):
                    await best_effort(
                        method(channel=self.channel, timestamp=self.message_ts, name=name), where, level=logging.INFO
                    )

    async def status(self, text: str) -> None:
        """The "is analysing…" line under the thread; "" clears it (Slack keeps it after an edit)."""
        with calls_at(Priority.PROGRESS):
            call = self.client.assistant_threads_setStatus(
                channel_id=self.channel, thread_ts=self.thread_ts, status=text
            )
            await best_effort(call, "thread status unavailable", level=logging.DEBUG)

    async def finished(self, *, ok: bool) -> None:
        """Every consultation of the message is final: the reaction says how (each job has already
        cleared the thread status when it ended)."""
        await self.react(remove=EYES, add=DONE if ok else WARNING)
