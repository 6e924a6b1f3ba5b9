"""The answer writer: a follow-up answer streamed into the thread as Claude writes it.

How callers use it:

    writer = AnswerWriter(client, channel=..., thread_ts=..., recipient_user_id=..., recipient_team_id=...,
                          limits=limits)   # one StreamLimits per app, shared by every answer
    writer.begin()                 # Claude's response began: show "Thinking…" now; never blocks
    writer.write(delta)            # raw model text, as it arrives; never blocks, never raises
    ts = await writer.finish(blocks=...)   # everything lands, `blocks` under the last part
    await writer.cancel()          # safe in a `finally`: after finish() it does nothing

Native streaming first (`chat.startStream` / `appendStream` / `stopStream` through slack_sdk's
`chat_stream`), because the person sees the answer being written at once with no "(edited)"
churn. Decisions, with Slack's limits (per app and workspace, shared by every answer at once):

- The stream starts as soon as Claude's response begins (`begin()`), with one `task_update` chunk
  ("Thinking about your question", in progress): Claude 5.x thinks before it writes, possibly
  for long, and the person sees at once that an answer is coming. The first text marks the task
  complete in the same append and goes out at once (no pacing): Claude's first words plus one
  Slack round trip. Without `begin()` the first text starts the stream, as a plain message;
  where `begin()` cannot stream (refused, or no Tier 2 room) nothing is shown until the first
  text is posted. `finish(failed=True)` ends the task as an error, `empty_text` under it.
- Keep-alive: a stream expires after ~30 s without a write, so while the thinking task's message
  shows no new text for `keepalive_s` (20 s), a timer (not the model's deltas, which are what is
  missing) appends the task again: "still thinking, 40 s" while there are no words, the
  completed task unchanged in a gap mid-answer (an update by id, invisible). Continuation
  messages carry no task: one that idles that long is taken over by chat.update (below).
- Every call is inside the shared Slack budget (`bot.budget`: the client spends from it, for every
  instance at once). Appends are batched: at most one per `flush_interval_s` (0.5 s) per answer,
  waiting for Tier 4 room as ordinary calls do: text keeps coalescing while an append waits, so a
  busy app sends fewer, larger appends instead of falling behind. The stop is a final state.
- A start is taken only when its Tier 2 bucket has room now (it never waits); otherwise, and
  when Slack refuses streaming (`feature_disabled`, `not_allowed`, `ratelimited`, anything),
  the answer is one ordinary message posted and then updated by a `MessageWriter` at
  `fallback_interval_s`, inside the chat.update budget the boards share.
- A stream that fails mid-answer (expired: `message_not_in_streaming_state`, or any error) is
  taken over by `chat.update(ts=streamer.ts)` with the part's whole text, then updated the
  same way; a failed `stopStream` likewise. The final text is always complete.
- Model text is escaped (`bot.escape`), so it can never ping or link; a trailing "@ever…" is
  held back until it is known whether it spells a mass mention, so escaping stays prefix-stable.
- One message holds at most `message_max_chars` (12,000: Slack's limit for a markdown chunk and
  a markdown block); a longer answer continues in a new message, cut on a line or word end and
  never inside an entity. A message's top-level `text` fallback is clipped to 3,900 chars
  (chat.update refuses ~4,000); the whole answer is in its markdown block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import Chunk, MarkdownTextChunk, TaskUpdateChunk
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import Rendered
from bot.blocks.kit import MAX_FALLBACK_CHARS, Block, fit
from bot.budget import Priority, UpdateBudget, calls_at
from bot.escape import escape
from bot.writer import MessageWriter, post_reply

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S: Final = 0.5  # at most one appendStream per answer this often
FALLBACK_INTERVAL_S: Final = 1.0  # at most one chat.update per fallback message this often
MESSAGE_MAX_CHARS: Final = 12_000  # Slack: markdown per stream chunk and per markdown block
KEEPALIVE_S: Final = 20.0  # a live stream gets a write at least this often; Slack expires one idle ~30 s
CONTINUED_TEXT: Final = "(continued)"
THINKING_TASK_ID: Final = "thinking"
THINKING_TITLE: Final = "Thinking about your question"
STILL_THINKING: Final = "still thinking, {elapsed_s:.0f} s"
THOUGHT_FOR: Final = "thought for {elapsed_s:.0f} s"
# "@everyone" is the longest word escape() rewrites: a tail shorter than that may still become one.
_MASS_MENTION_MAX_CHARS: Final = len("everyone")
_WORD_BACKTRACK_CHARS: Final = 200  # how far back a split may move to end on a line or a word
# Answers that mean this app cannot stream in this workspace at all (not: not right now).
_NEVER_STREAMS: Final = frozenset({"feature_disabled", "not_allowed", "not_allowed_token_type", "missing_scope"})
_ENTITY_TAIL = re.compile(r"&[a-z]{0,4}$")


@dataclass
class StreamLimits:
    """Slack's app-wide limits every answer shares: one per process, built at start-up."""

    updates: UpdateBudget | None = None  # the shared Slack budget (fallback messages move like boards)
    streaming: bool = True  # False: every answer is posted and updated (also once Slack said it never streams)
    flush_interval_s: float = FLUSH_INTERVAL_S
    fallback_interval_s: float = FALLBACK_INTERVAL_S
    message_max_chars: int = MESSAGE_MAX_CHARS
    keepalive_s: float = KEEPALIVE_S


TaskStatus = Literal["in_progress", "complete", "error"]


def answer_message(text: str, blocks: Sequence[Block] = ()) -> Rendered:
    """One part of an answer as an ordinary message: its (escaped) text in a markdown block."""
    shown = text or CONTINUED_TEXT
    return Rendered(text=fit(shown, MAX_FALLBACK_CHARS), blocks=[{"type": "markdown", "text": shown}, *blocks])


def sendable(raw: str) -> str:
    """The longest prefix of `raw` whose escaping later text cannot change."""
    at = raw.rfind("@")
    if at != -1:
        tail = raw[at + 1 :]
        if len(tail) < _MASS_MENTION_MAX_CHARS and (tail == "" or tail.isalpha()):
            return raw[:at]
    return raw


def split_point(text: str, limit: int) -> int:
    """Where to cut escaped `text` so the first part has at most `limit` chars: a line or word end
    if one is near, never inside an entity such as `&amp;`."""
    if len(text) <= limit:
        return len(text)
    cut = limit
    window = text[max(cut - _WORD_BACKTRACK_CHARS, 0) : cut]
    for separator in ("\n", " "):
        found = window.rfind(separator)
        if found != -1:
            cut = cut - len(window) + found + 1
            break
    entity = _ENTITY_TAIL.search(text[:cut])
    if entity is not None and cut > 0:
        cut = entity.start()
    return cut


@dataclass(eq=False)
class _Part:
    """One Slack message of the answer and how it is written now."""

    text: str  # escaped text in this message
    ts: str | None = None
    streamer: AsyncChatStream | None = None  # set while it is a live stream
    writer: MessageWriter | None = None  # set once it is written by chat.update
    full: bool = False  # the answer continues in the next message
    task: bool = False  # it shows the thinking task (the first message of a begun answer)


class AnswerWriter:
    """The only writer of one follow-up answer; see the module docstring for the calls."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        thread_ts: str,
        recipient_user_id: str | None,
        recipient_team_id: str | None,
        limits: StreamLimits,
    ) -> None:
        self._client = client
        self._limits = limits
        self.channel = channel
        self.thread_ts = thread_ts
        self._recipient_user_id = recipient_user_id
        self._recipient_team_id = recipient_team_id
        self._streaming = limits.streaming
        self._raw = ""
        self._sent = 0  # escaped chars already handed to Slack, over every part
        self._parts: list[_Part] = []
        self._closing = False
        self._failed = False
        self._final_blocks: list[Block] = []
        self._empty_text = ""
        self._begun_at: float | None = None  # when Claude's response began (begin())
        self._task_wanted = False
        self._task_status: TaskStatus | None = None  # of the thinking task, once shown
        self._task_details: str | None = None
        self._last_write = 0.0  # monotonic time of the last write to the live stream
        self.streamed = False  # whether any part was streamed natively
        self.appends = 0
        self.keepalives = 0
        self._wake = asyncio.Event()
        self._finish_now = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"answer {channel}/{thread_ts}")

    @property
    def ts(self) -> list[str]:
        """The answer's messages, in order."""
        return [p.ts for p in self._parts if p.ts is not None]

    def begin(self) -> None:
        """Claude's response began: stream the thinking task now, kept alive until words come; never blocks."""
        if self._closing or self._begun_at is not None:
            return
        self._begun_at = time.monotonic()
        self._task_wanted = True
        self._wake.set()

    def write(self, delta: str) -> None:
        """Add model text (raw; escaped here); never blocks."""
        if self._closing or not delta:
            return
        self._raw += delta
        self._wake.set()

    async def finish(self, *, blocks: Sequence[Block] = (), empty_text: str = "", failed: bool = False) -> list[str]:
        """Land the whole text, `blocks` under it (`empty_text` if there were no words; `failed`: the
        thinking task ends as an error); the messages' ts."""
        if not self._closing:
            self._closing = True
            self._failed = failed
            self._final_blocks = list(blocks)
            self._empty_text = empty_text
            self._wake.set()
            self._finish_now.set()
        try:
            await asyncio.wait([self._task])
        except asyncio.CancelledError:
            await self.cancel()
            raise
        if not self._task.cancelled() and (error := self._task.exception()) is not None:
            raise error
        return self.ts

    async def cancel(self) -> None:
        """End without landing more (the asker's question was withdrawn); idempotent."""
        self._closing = True
        self._task.cancel()
        await asyncio.wait([self._task])
        for part in self._parts:
            if part.writer is not None:
                await part.writer.cancel()

    async def _run(self) -> None:
        last_flush = float("-inf")
        while True:
            await self._idle()
            self._wake.clear()
            if self._task_wanted and not self._closing:
                self._task_wanted = False
                await self._open_task()
            wait_s = last_flush + self._limits.flush_interval_s - time.monotonic()
            if wait_s > 0 and not self._closing:
                with contextlib.suppress(TimeoutError):  # batching: deltas coalesce meanwhile
                    async with asyncio.timeout(wait_s):
                        await self._finish_now.wait()
            if self._closing:
                await self._land()
                return
            if await self._flush(escape(sendable(self._raw))):
                last_flush = time.monotonic()

    async def _idle(self) -> None:
        """Wait for new work; meanwhile keep a live stream from expiring, on a timer."""
        while True:
            due = self._keepalive_due()
            if due is None:
                await self._wake.wait()
                return
            try:
                async with asyncio.timeout(max(due - time.monotonic(), 0.0)):
                    await self._wake.wait()
                return
            except TimeoutError:
                await self._keep_alive(self._parts[-1])

    def _keepalive_due(self) -> float | None:
        """When the live stream needs its next write; None when there is none to keep alive."""
        part = self._parts[-1] if self._parts else None
        if self._closing or part is None or part.streamer is None or not part.task:
            return None
        return self._last_write + self._limits.keepalive_s

    async def _keep_alive(self, part: _Part) -> None:
        """Write the thinking task again: with how long it has been while there are no words."""
        assert part.streamer is not None
        assert self._begun_at is not None
        if self._task_status == "in_progress":
            self._task_details = STILL_THINKING.format(elapsed_s=time.monotonic() - self._begun_at)
        try:
            await part.streamer.append(chunks=[self._task_chunk()])
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
            log.info("keeping the answer stream in %s alive failed (%s): updating", self.channel, _describe(error))
            self._take_over(part)
            return
        self._last_write = time.monotonic()
        self.keepalives += 1

    def _task_chunk(self) -> TaskUpdateChunk:
        assert self._task_status is not None
        return TaskUpdateChunk(
            id=THINKING_TASK_ID, title=THINKING_TITLE, status=self._task_status, details=self._task_details
        )

    def _settle_task(self) -> TaskUpdateChunk:
        """The thinking task, over: complete (or error), saying how long it took if it said so before."""
        assert self._begun_at is not None
        self._task_status = "error" if self._failed else "complete"
        if self._task_details is not None:
            self._task_details = THOUGHT_FOR.format(elapsed_s=time.monotonic() - self._begun_at)
        return self._task_chunk()

    async def _flush(self, escaped: str) -> bool:
        """Hand Slack what is new in `escaped`; whether anything was sent."""
        new = escaped[self._sent :]
        if not new:
            return False
        self._sent = len(escaped)
        limit = self._limits.message_max_chars
        while new:
            part = self._parts[-1] if self._parts else None
            room = limit - len(part.text) if part is not None and not part.full else 0
            if part is None or room <= 0:
                if part is not None:
                    await self._close(part, blocks=[])
                cut = max(split_point(new, limit), 1)  # a fresh message always takes some
                await self._open(new[:cut])
            else:
                cut = split_point(new, room)
                if cut == 0:
                    part.full = True
                    continue
                await self._append(part, new[:cut])
            if cut < len(new):
                self._parts[-1].full = True  # the rest starts the next message
            new = new[cut:]
        return True

    async def _land(self) -> None:
        await self._flush(escape(self._raw))
        if not self._raw.strip() and self._empty_text:  # no words: `empty_text` is the answer
            if self._parts:
                await self._append(self._parts[-1], escape(self._empty_text))
            else:
                self._parts.append(_Part(text=escape(self._empty_text)))
                await self._post(self._parts[-1], self._final_blocks)
                return
        if not self._parts:
            if self._final_blocks:
                part = _Part(text="")
                self._parts.append(part)
                await self._post(part, self._final_blocks)
            return
        await self._close(self._parts[-1], blocks=self._final_blocks)
        for part in self._parts:
            if part.writer is not None:
                await part.writer.close(answer_message(part.text, self._blocks_of(part)))

    def _blocks_of(self, part: _Part) -> list[Block]:
        return self._final_blocks if part is self._parts[-1] else []

    async def _open_task(self) -> None:
        """The answer's first message as a stream showing only the thinking task (if Slack lets us)."""
        part = _Part(text="", task=True)
        self._task_status = "in_progress"
        if await self._start_stream(part, [self._task_chunk()]):
            self._parts.append(part)
        else:
            self._task_status = None  # the first words will be posted, as where streaming is refused

    async def _open(self, text: str) -> None:
        """A new message starting with `text`: a stream if Slack and the allowance let us."""
        part = _Part(text=text)
        self._parts.append(part)
        if not await self._start_stream(part, [MarkdownTextChunk(text=text)]):
            await self._post(part)

    async def _start_stream(self, part: _Part, chunks: list[Chunk]) -> bool:
        """Start `part` as a stream holding `chunks`; False when the allowance or Slack says no."""
        if not self._streaming:
            return False
        streamer = await self._client.chat_stream(
            channel=self.channel,
            thread_ts=self.thread_ts,
            recipient_team_id=self._recipient_team_id,
            recipient_user_id=self._recipient_user_id,
            buffer_size=1,  # our own loop batches: every append() is one call
        )
        try:
            with calls_at(Priority.NORMAL, wait_s=0.0):  # the start never waits: the answer is posted instead
                await streamer.append(chunks=chunks)
        except SlackApiError as error:
            self._streaming = False  # this workspace or this moment refuses: post instead
            if _code(error) in _NEVER_STREAMS:
                self._limits.streaming = False  # the app cannot stream at all: stop asking
            log.info("streaming refused in %s (%s): posting the answer", self.channel, _code(error))
            return False
        except (aiohttp.ClientError, TimeoutError) as error:
            self._streaming = False
            log.warning("streaming failed in %s (%s): posting the answer", self.channel, type(error).__name__)
            return False
        part.streamer, part.ts = streamer, streamer.ts
        self.streamed = True
        self._last_write = time.monotonic()
        return True

    async def _post(self, part: _Part, blocks: Sequence[Block] = ()) -> None:
        shown = answer_message(part.text, blocks)
        try:
            part.ts = await post_reply(self._client, channel=self.channel, thread_ts=self.thread_ts, rendered=shown)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
            log.error("could not post a follow-up answer in %s: %s", self.channel, _describe(error))
            return
        part.writer = self._message_writer(part, shown=shown)

    async def _append(self, part: _Part, text: str) -> None:
        part.text += text
        if part.streamer is not None:
            chunks: list[Chunk] = [MarkdownTextChunk(text=text)]
            if part.task and self._task_status == "in_progress":  # the first words: thinking is over
                chunks.insert(0, self._settle_task())
            try:
                await part.streamer.append(chunks=chunks)
                self.appends += 1
                self._last_write = time.monotonic()
                return
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
                log.info("the answer stream in %s stopped (%s): updating instead", self.channel, _describe(error))
                self._take_over(part)
                return
        if part.writer is not None:
            part.writer.submit(answer_message(part.text))

    async def _close(self, part: _Part, *, blocks: list[Block]) -> None:
        """The part is complete: stop its stream (an update lands it if that fails)."""
        if part.streamer is None:
            return
        streamer, part.streamer = part.streamer, None
        settled = [self._settle_task()] if part.task and self._task_status == "in_progress" else None
        try:
            with calls_at(Priority.FINAL):
                await streamer.stop(blocks=blocks or None, chunks=settled)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
            log.info("stopping the answer stream in %s failed (%s): updating", self.channel, _describe(error))
            self._take_over(part, shown=Rendered(text="", blocks=[]))

    def _take_over(self, part: _Part, shown: Rendered | None = None) -> None:
        """Write the part by chat.update from now on, starting with its whole text (once it has some)."""
        part.streamer = None
        part.writer = self._message_writer(part, shown=shown or Rendered(text="", blocks=[]))
        if part.text:
            part.writer.submit(answer_message(part.text, self._blocks_of(part) if self._closing else ()))

    def _message_writer(self, part: _Part, *, shown: Rendered) -> MessageWriter:
        assert part.ts is not None
        return MessageWriter(
            self._client,
            channel=self.channel,
            ts=part.ts,
            thread_ts=self.thread_ts,
            shown=shown,
            interval_s=self._limits.fallback_interval_s,
            budget=self._limits.updates,
        )


def _code(error: SlackApiError) -> str:
    return str(error.response.get("error", "")) or f"HTTP {error.response.status_code}"


def _describe(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        return _code(error)
    return type(error).__name__
