"""One writer per board (a bot message): it serializes and coalesces updates, and lands the final state.

How callers use it:

    writer = MessageWriter(client, channel=..., ts=board_ts, thread_ts=..., shown=placeholder, interval_s=...)
    writer.submit(rendered)     # on every progress event; never blocks, never raises
    await writer.close(final)   # the consultation ended: the final state lands, then the task ends
    await writer.cancel()       # the consultation was cancelled: the task ends, no final state

Every writer ends with close() or cancel(); calling cancel() in a `finally` is safe (after close() it
does nothing), so no writer task outlives its board. Cancelling a caller awaiting close() ends the
writer too.

Intermediate renders: only the newest is sent, at most one per `interval_s`, at PROGRESS priority in
the shared Slack budget (`bot.budget`): where it has no room the render gives way and waits, and
newer renders replace it meanwhile, so a busy app sends fewer, fresher updates and never queues
stale ones ahead of a final state. One identical to what Slack shows is skipped. A failed update
(a Slack error, a dropped or reset connection, a timeout, a 429 the client's handler gave up on)
is logged and the writer goes on with the next render: snapshots are complete, so the next one (or
the final) repairs the board. A board deleted meanwhile (`message_not_found`...) gets no more updates.

The final state goes at FINAL priority at once (no pacing). Where the budget cannot afford its
chat.update within `UpdateBudget.final_update_wait_s`, it is posted as a new thread reply instead
(its own per-channel limit), `ts` then names that reply, and the old board is recorded to become a
pointer to it later (`bot.pointers`). Otherwise it is retried with backoff (at least the
Retry-After of a 429) for `FinalRetry.window_s`; on a board that is gone it is posted as a new
thread reply, and `ts` then names that reply. close() returns once the final state is in Slack or
the window has passed (an error is logged); it never raises a Slack or transport error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.blocks import Rendered
from bot.budget import NoRoom, Priority, UpdateBudget, calls_at
from bot.store.slack_budget import Pointer

log = logging.getLogger(__name__)
T = TypeVar("T")

FINAL_RETRY_WINDOW_S = 300.0  # how long close() keeps trying to land the final state
FINAL_FIRST_BACKOFF_S = 1.0
FINAL_MAX_BACKOFF_S = 30.0
_DEFAULT_RETRY_AFTER_S = 1.0
MIN_NO_ROOM_RETRY_S = 0.05  # a render that got no room is not tried again sooner than this
_HTTP_TOO_MANY_REQUESTS = 429
_HTTP_SERVER_ERROR = 500

# chat.update answers these when the board itself can no longer be edited: post the final anew.
MESSAGE_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
# Worth another try later (besides transport errors and HTTP 5xx).
_TRANSIENT = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})


@dataclass(frozen=True)
class FinalRetry:
    """How hard the final state is pushed: for `window_s`, backing off from first to max between tries."""

    window_s: float = FINAL_RETRY_WINDOW_S
    first_backoff_s: float = FINAL_FIRST_BACKOFF_S
    max_backoff_s: float = FINAL_MAX_BACKOFF_S

    def backoffs_s(self) -> Iterator[float]:
        """first, 2*first, 4*first... capped at max."""
        backoff_s = self.first_backoff_s
        while True:
            yield backoff_s
            backoff_s = min(backoff_s * 2, self.max_backoff_s)


DEFAULT_FINAL_RETRY = FinalRetry()


@dataclass(frozen=True)
class _Failure:
    """Why a write did not land (a Slack error code or a transport error; never the token)."""

    reason: str
    kind: Literal["gone", "transient", "permanent", "no_room"]
    retry_after_s: float = 0.0


class MessageWriter:
    """The only writer of one board; see the module docstring for the calls every caller makes."""

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
        final_retry: FinalRetry = DEFAULT_FINAL_RETRY,
    ) -> None:
        self._client = client
        self._budget = budget
        self._retry = final_retry
        self.channel = channel
        self.ts = ts
        self.thread_ts = thread_ts
        self.interval_s = interval_s
        self.updates = 0
        self.moved = 0  # final states posted anew because no chat.update could be afforded in time
        self._shown = shown
        self._gone = False
        self._pending: Rendered | None = None
        self._final = False
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"writer {channel}/{ts}")

    @property
    def done(self) -> bool:
        """Whether the writer's task has ended (after close() or cancel())."""
        return self._task.done()

    def submit(self, rendered: Rendered) -> None:
        """Replace whatever is waiting to be written with `rendered` (never blocks)."""
        if self._final:
            return
        self._pending = rendered
        self._wake.set()

    async def close(self, final: Rendered) -> None:
        """Land `final` (after any pacing) and end; returns once it is in Slack or the retry window has passed."""
        if not self._final:
            self._pending = final
            self._final = True
            self._wake.set()
        try:
            await asyncio.wait([self._task])
        except asyncio.CancelledError:
            await self.cancel()  # the caller gave up on this board: so does its writer
            raise
        self._raise_bug()

    async def cancel(self) -> None:
        """End the writer without a final state (its consultation was cancelled); returns once it has ended."""
        self._final = True
        self._task.cancel()
        await asyncio.wait([self._task])
        self._raise_bug()

    def _raise_bug(self) -> None:
        if not self._task.cancelled() and (error := self._task.exception()) is not None:
            raise error

    async def _run(self) -> None:
        last_sent = float("-inf")
        retry_in_s: float | None = None  # a render that got no room is tried again after this
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(retry_in_s):
                    await self._wake.wait()
            self._wake.clear()
            retry_in_s = None
            wait_s = last_sent + self.interval_s - time.monotonic()
            if wait_s > 0 and not self._final:
                await asyncio.sleep(wait_s)  # pacing: at most one update per interval (not the final)
            if self._final:
                await self._land()
                return
            rendered, self._pending = self._pending, None
            if rendered is not None and self._worth_sending(rendered):
                retry_in_s = await self._update(rendered)
                if retry_in_s is None:
                    last_sent = time.monotonic()
                elif self._pending is None:
                    self._pending = rendered  # tried again later, unless a newer render replaces it

    def _worth_sending(self, rendered: Rendered | None) -> bool:
        return rendered is not None and rendered != self._shown and not self._gone

    async def _update(self, rendered: Rendered) -> float | None:
        """One intermediate chat.update; None once sent (or failed: the next render repairs it), else
        the seconds until the budget has room for it."""
        with calls_at(Priority.PROGRESS):
            failure = await _attempt(self._chat_update(rendered))
        if failure is None:
            return None
        if failure.kind == "no_room":
            return max(failure.retry_after_s, MIN_NO_ROOM_RETRY_S)
        if failure.kind == "gone":
            self._gone = True
            log.warning(
                "board %s/%s is gone (%s): no more updates until the final", self.channel, self.ts, failure.reason
            )
        else:
            log.warning("an update of board %s/%s failed (%s); going on", self.channel, self.ts, failure.reason)
        return None

    async def _land(self) -> None:
        """Put the final state in Slack within the retry window, or log why it is not there."""
        final, self._pending = self._pending, None
        if final is None or (final == self._shown and not self._gone):
            return
        try:
            async with asyncio.timeout(self._retry.window_s):
                await self._push_final(final)
        except TimeoutError:
            log.error(
                "the final state of board %s/%s did not land within %g s",
                self.channel,
                self.ts,
                self._retry.window_s,
            )

    async def _push_final(self, final: Rendered) -> None:
        backoffs_s = self._retry.backoffs_s()
        while True:
            if self._gone:
                failure = await _attempt(self._repost(final))
            else:
                with calls_at(Priority.FINAL, wait_s=self._budget.final_update_wait_s if self._budget else None):
                    failure = await _attempt(self._chat_update(final))
                if failure is not None and failure.kind == "no_room":
                    failure = await _attempt(self._move(final))
            if failure is None:
                return
            if failure.kind == "gone" and not self._gone:
                self._gone = True
                log.info(
                    "board %s/%s is gone (%s); posting the final state anew", self.channel, self.ts, failure.reason
                )
                continue
            if failure.kind != "transient":
                log.error("the final state of board %s/%s cannot land: %s", self.channel, self.ts, failure.reason)
                return
            delay_s = max(failure.retry_after_s, next(backoffs_s))
            log.warning(
                "the final state of board %s/%s failed (%s); retrying in %.2f s",
                self.channel,
                self.ts,
                failure.reason,
                delay_s,
            )
            await asyncio.sleep(delay_s)

    async def _chat_update(self, rendered: Rendered) -> None:
        await self._client.chat_update(channel=self.channel, ts=self.ts, text=rendered.text, blocks=rendered.blocks)
        self.updates += 1
        self._shown = rendered

    async def _repost(self, rendered: Rendered) -> None:
        gone_ts = self.ts
        self.ts = await post_reply(self._client, channel=self.channel, thread_ts=self.thread_ts, rendered=rendered)
        self._shown = rendered
        self._gone = False
        log.info("board %s/%s was posted anew as %s", self.channel, gone_ts, self.ts)

    async def _move(self, final: Rendered) -> None:
        """No room for the final chat.update in time: post it anew, and record the old board to point at it."""
        moved_ts = self.ts
        await self._repost(final)
        self.moved += 1
        pointers = self._budget.pointers if self._budget is not None else None
        if pointers is None:
            return
        try:
            await pointers.add(Pointer(self.channel, moved_ts, self.thread_ts, self.ts))
        except (SQLAlchemyError, OSError, TimeoutError) as error:  # the final state is in Slack regardless
            reason = type(error).__name__
            log.warning("could not record the pointer on board %s/%s (%s)", self.channel, moved_ts, reason)


async def post_reply(client: AsyncWebClient, *, channel: str, thread_ts: str, rendered: Rendered) -> str:
    """Post `rendered` in the thread (no unfurling), at FINAL priority: a reply is what someone waits
    for; returns the new message's ts."""
    with calls_at(Priority.FINAL):
        response = await client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            text=rendered.text,
            blocks=rendered.blocks,
            unfurl_links=False,
            unfurl_media=False,
        )
    return str(response["ts"])


async def best_effort(write: Awaitable[T], what: str, *, level: int = logging.WARNING) -> T | None:
    """Await one Slack call whose failure must not stop a consultation: logged (never the token), None."""
    try:
        return await write
    except SlackApiError as error:
        log.log(level, "%s: %s", what, _slack_failure(error).reason)
    except (aiohttp.ClientError, TimeoutError) as error:  # below HTTP: dropped, reset, timed out
        log.log(level, "%s: %s", what, _describe(error))
    return None


async def _attempt(write: Awaitable[None]) -> _Failure | None:
    """Await one Slack write; None if it landed, else why not."""
    try:
        await write
    except SlackApiError as error:
        return _slack_failure(error)
    except (aiohttp.ClientError, TimeoutError) as error:  # below HTTP: dropped, reset, timed out
        return _Failure(_describe(error), "transient")
    return None


def _slack_failure(error: SlackApiError) -> _Failure:
    code = str(error.response.get("error", "")) or f"HTTP {error.response.status_code}"
    status = error.response.status_code
    if isinstance(error, NoRoom):
        return _Failure("no room in the Slack budget", "no_room", error.room_in_s)
    if code in MESSAGE_GONE:
        return _Failure(code, "gone")
    if status == _HTTP_TOO_MANY_REQUESTS:
        return _Failure(code, "transient", _retry_after_s(error))
    if code in _TRANSIENT or status >= _HTTP_SERVER_ERROR:
        return _Failure(code, "transient")
    return _Failure(code, "permanent")


def _describe(error: Exception) -> str:
    """The error's class and message: no request headers, so no token."""
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _retry_after_s(error: SlackApiError) -> float:
    """The Retry-After Slack sent with a 429 (header names vary in case), or a default."""
    for name, value in (error.response.headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return float(value[0] if isinstance(value, list) else value)
            except (TypeError, ValueError):
                break
    return _DEFAULT_RETRY_AFTER_S
