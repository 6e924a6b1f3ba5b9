"""The small Slack touches around a consultation: reactions, notices, the thread status.

Each is best effort: a failure is logged and the consultation goes on (the board is what matters).
Reactions and the thread status are PROGRESS in the shared Slack budget (`bot.budget`): under load
they give way (are skipped) rather than hold back anyone's final state; notices are replies. The
final reaction (done or warning) is what people see from the channel, so it is an ordinary call
that waits a little for room (`FINAL_REACTION_WAIT_S`) before it gives way; reactions have their
own bucket, so the wait holds back no board.
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
FINAL_REACTION_WAIT_S = 10.0  # how long the final reaction waits for room in the reactions budget


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

    async def react(self, *, add: str | None = None, remove: str | None = None, add_wait_s: float = 0.0) -> None:
        """Swap reactions on the asking message; the added one may wait `add_wait_s` for room."""
        swaps = ((self.client.reactions_remove, remove, 0.0), (self.client.reactions_add, add, add_wait_s))
        for method, name, wait_s in swaps:
            if name is not None:
                where = f"reaction {name} on {self.channel}/{self.message_ts}"
                with calls_at(Priority.NORMAL, wait_s=wait_s) if wait_s > 0 else calls_at(Priority.PROGRESS):
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
        await self.react(remove=EYES, add=DONE if ok else WARNING, add_wait_s=FINAL_REACTION_WAIT_S)
