"""The small Slack touches around a consultation: reactions, notices, the thread status.

Each is best effort: a failure is logged and the consultation goes on (the board is what matters).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.writer import post_reply

log = logging.getLogger(__name__)

THREAD_STATUS = "is analysing the part…"
EYES, DONE, WARNING = "eyes", "white_check_mark", "warning"
_TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)


@dataclass(frozen=True)
class Thread:
    """Where a consultation lives: the message that asked, and the thread under it."""

    client: AsyncWebClient
    channel: str
    thread_ts: str
    message_ts: str

    async def notice(self, message: str) -> None:
        """A short reply in the thread."""
        try:
            await post_reply(
                self.client, channel=self.channel, thread_ts=self.thread_ts, rendered=blocks.notice(message)
            )
        except SlackApiError as error:
            log.warning("could not reply in %s: %s", self.channel, error.response.get("error"))
        except _TRANSPORT_ERRORS as error:
            log.warning("could not reply in %s: %s", self.channel, type(error).__name__)

    async def react(self, *, add: str | None = None, remove: str | None = None) -> None:
        """Swap reactions on the asking message."""
        for method, name in ((self.client.reactions_remove, remove), (self.client.reactions_add, add)):
            if name is None:
                continue
            try:
                await method(channel=self.channel, timestamp=self.message_ts, name=name)
            except SlackApiError as error:
                log.info("reaction %s on %s/%s: %s", name, self.channel, self.message_ts, error.response.get("error"))
            except _TRANSPORT_ERRORS as error:
                log.info("reaction %s on %s/%s: %s", name, self.channel, self.message_ts, type(error).__name__)

    async def status(self, text: str) -> None:
        """The "is analysing…" line under the thread; "" clears it (Slack keeps it after an edit)."""
        try:
            await self.client.assistant_threads_setStatus(
                channel_id=self.channel, thread_ts=self.thread_ts, status=text
            )
        except SlackApiError as error:
            log.debug("thread status unavailable: %s", error.response.get("error"))
        except _TRANSPORT_ERRORS as error:
            log.debug("thread status unavailable: %s", type(error).__name__)

    async def finished(self, *, ok: bool) -> None:
        """Every consultation of the message is final: the reaction says how, the status goes."""
        await self.react(remove=EYES, add=DONE if ok else WARNING)
        await self.status("")
