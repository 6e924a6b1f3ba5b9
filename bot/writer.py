"""One writer per Slack message: it serializes and coalesces updates, and lands the final state.

Renders arrive as fast as the engine reports progress; the writer keeps only the newest, sends at
most one `chat.update` per interval (and within the app-wide budget, when given), and skips a
render identical to what Slack already shows.
429s are retried by the client's rate-limit handler (honouring Retry-After); the final render is
always sent, even when intermediate ones were dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import Rendered
from bot.budget import UpdateBudget

log = logging.getLogger(__name__)

FINAL_RETRY_WINDOW_S = 300.0
_DEFAULT_RETRY_AFTER_S = 1.0
_GONE = {"message_not_found", "cant_update_message", "channel_not_found", "is_archived"}


class MessageWriter:
    """The only writer of one bot message in a thread."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        ts: str,
        thread_ts: str,
        shown: Rendered,
        interval_s: float,
        budget: UpdateBudget | None = None,
    ) -> None:
        self._client = client
        self._budget = budget
        self.channel = channel
        self.ts = ts
        self.thread_ts = thread_ts
        self.interval_s = interval_s
        self.updates = 0
        self._shown = shown
        self._pending: Rendered | None = None
        self._final = False
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"writer {channel}/{ts}")

    def submit(self, rendered: Rendered) -> None:
        """Replace whatever is waiting to be written with `rendered` (never blocks)."""
        if self._final:
            return
        self._pending = rendered
        self._wake.set()

    async def close(self, final: Rendered) -> None:
        """Write `final` (after any pacing) and stop; returns once it is in Slack or cannot be."""
        if not self._final:
            self._pending = final
            self._final = True
            self._wake.set()
        await self._task

    async def _run(self) -> None:
        last_sent = float("-inf")
        while True:
            await self._wake.wait()
            self._wake.clear()
            wait_s = last_sent + self.interval_s - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)  # pacing: at most one update per interval
            if self._budget is not None and self._pending not in (None, self._shown):
                await self._budget.take(final=self._final)  # renders keep coalescing meanwhile
            rendered, self._pending = self._pending, None
            if rendered is not None and rendered != self._shown:
                if not await self._send(rendered):
                    return
                last_sent = time.monotonic()
            if self._final and self._pending is None:
                return

    async def _send(self, rendered: Rendered) -> bool:
        """chat.update; on a vanished message the final state is posted anew. False: stop writing."""
        deadline = time.monotonic() + FINAL_RETRY_WINDOW_S
        while True:
            try:
                await self._client.chat_update(
                    channel=self.channel, ts=self.ts, text=rendered.text, blocks=rendered.blocks
                )
            except SlackApiError as error:
                code = str(error.response.get("error", ""))
                if code == "ratelimited" and self._final and time.monotonic() < deadline:
                    # the client's handler has already retried; the final state must still land
                    await asyncio.sleep(_retry_after_s(error))
                    continue
                if code in _GONE and self._final:
                    return await self._repost(rendered, code)
                log.warning("chat.update of %s/%s failed: %s", self.channel, self.ts, code)
                return code not in _GONE
            self.updates += 1
            self._shown = rendered
            return True

    async def _repost(self, rendered: Rendered, code: str) -> bool:
        log.info("board %s/%s is gone (%s); posting the final state anew", self.channel, self.ts, code)
        try:
            self.ts = await post_reply(self._client, channel=self.channel, thread_ts=self.thread_ts, rendered=rendered)
        except SlackApiError as error:
            log.warning("posting the final board failed: %s", error.response.get("error"))
            return False
        self._shown = rendered
        return False


async def post_reply(client: AsyncWebClient, *, channel: str, thread_ts: str, rendered: Rendered) -> str:
    """Post `rendered` in the thread (no unfurling); returns the new message's ts."""
    response = await client.chat_postMessage(
        channel=channel,
        thread_ts=thread_ts,
        text=rendered.text,
        blocks=rendered.blocks,
        unfurl_links=False,
        unfurl_media=False,
    )
    return str(response["ts"])


def _retry_after_s(error: SlackApiError) -> float:
    """The Retry-After Slack sent with a 429 (header names vary in case), or a default."""
    for name, value in (error.response.headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return float(value[0] if isinstance(value, list) else value)
            except (TypeError, ValueError):
                break
    return _DEFAULT_RETRY_AFTER_S
