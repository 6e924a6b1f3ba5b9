"""FollowUps: what the bot does with a person's reply in a consultation's thread.

    followups = FollowUps(store=..., engine=..., client=..., finals=..., reruns=..., bot_user_id=..., limits=...)
    handled = await followups.consider(reply)   # False: no consultation lives in that thread
    await followups.aclose()                    # at shutdown: answers still being written are cancelled

By what the reply says (`bot.conversation.intent`):

- a mention of a teammate: talk between people, left alone (no reaction, no call);
- small talk ("thanks", "ok", an emoji): a reaction, no Claude call;
- "mute" / "stop" / "quiet": the thread is muted (in the store, so every instance sees it) with a
  notice carrying an Unmute button; a muted thread is ignored except for "unmute" or a reply
  that mentions the bot;
- "re-run": a re-run with the changes the latest answer proposed (or with none);
- anything else is a question, answered by `Answerer` in its own task: each thread's answers are
  independent, and the engine's limiter bounds how many Claude calls run at once.

In a DM, a question typed outside any consultation's thread (at the top, or in an answer's thread)
is about the DM's latest consultation when that is recent (`DM_FOLLOW_UP_WINDOW_S`); the answer
goes in the question's own thread. Other DM text stays the listener's (help or a reaction).

Everything that acts claims the message first (`store.claim(event_id, channel, ts)`), because
Slack redelivers events and several instances may receive the same one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Final, Protocol

from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import Rendered
from bot.blocks.replies import muted_notice, notice
from bot.budget import Priority, calls_at
from bot.conversation.answer import Answerer
from bot.conversation.intent import Intent, intent
from bot.conversation.reply import ThreadReply
from bot.slack_text import mentions
from bot.store import Consultation, ConsultationKind, Store, TurnStatus, utc_now
from bot.writer import best_effort, post_reply

log = logging.getLogger(__name__)

DIRECT_MESSAGE: Final = "im"  # a group DM is several people talking: only its threads are follow-ups
DM_FOLLOW_UP_WINDOW_S: Final = 4 * 3600.0  # DM text this soon after the latest consultation is about it
SMALL_TALK_REACTION: Final = "slightly_smiling_face"
UNMUTED: Final = "Unmuted: I will answer questions in this thread again."
NO_RERUNS: Final = "Re-runs are not available here: press Re-run on the board instead."


class RerunStarter(Protocol):
    """`bot.consultation.rerun.Reruns.start`: what "re-run" typed in a thread starts."""

    async def start(
        self, consultation_id: str, *, changes: Sequence[str], kind: ConsultationKind, user: str | None
    ) -> Consultation | None:
        """Re-run the consultation with `changes` added; None when it was not started."""
        ...


class FollowUps:
    """One per process: routes thread replies; see the module docstring."""

    def __init__(
        self,
        *,
        store: Store,
        client: AsyncWebClient,
        answerer: Answerer,
        bot_user_id: str,
        reruns: RerunStarter | None = None,
        on_answered: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        # The metrics hear how each question ended: its turn's status, "error" or "cancelled".
        self.on_answered = on_answered
        self.client = client
        self.answerer = answerer
        self.bot_user_id = bot_user_id
        self.reruns = reruns
        self._tasks: set[asyncio.Task[None]] = set()

    async def consider(self, reply: ThreadReply) -> bool:
        """Handle `reply` if a consultation lives in its thread; False when none does."""
        wanted = intent(reply, self.bot_user_id)
        record = await self.store.latest_in_thread(reply.channel, reply.thread_ts)
        if record is None:
            record = await self._direct_consultation(reply)
            if record is None or wanted not in (Intent.QUESTION, Intent.RERUN):
                return False  # small talk and help in a DM stay the listener's
        if wanted is Intent.OTHERS:
            return True
        if await self.store.muted(reply.channel, reply.thread_ts):
            addressed = mentions(reply.raw_text, self.bot_user_id)
            if wanted is not Intent.UNMUTE and not addressed:
                return True
        if not await self.store.claim(reply.event_id, reply.channel, reply.ts):
            return True  # a redelivery, or another instance has it
        match wanted:
            case Intent.SMALL_TALK:
                await self._react(reply, SMALL_TALK_REACTION)
            case Intent.MUTE:
                await self.store.mute(reply.channel, reply.thread_ts, reply.user)
                await self._post(reply, muted_notice(reply.channel, reply.thread_ts))
            case Intent.UNMUTE:
                was_muted = await self.store.muted(reply.channel, reply.thread_ts)
                await self.store.unmute(reply.channel, reply.thread_ts)
                if was_muted:
                    await self._post(reply, notice(UNMUTED))
                else:
                    await self._react(reply, "+1")
            case Intent.RERUN:
                await self._rerun(reply, record)
            case Intent.QUESTION:
                self._spawn(reply, record)
        return True

    async def aclose(self, grace_s: float = 0.0) -> None:
        """Shutdown: let answers being written finish for `grace_s`, then cancel the rest (their
        turns stay pending)."""
        tasks = list(self._tasks)
        if tasks and grace_s > 0:
            await asyncio.wait(tasks, timeout=grace_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until every answer being written has landed (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, reply: ThreadReply, record: Consultation) -> None:
        task = asyncio.create_task(self._answer(reply, record), name=f"follow-up {reply.channel}/{reply.ts}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, reply: ThreadReply, record: Consultation) -> None:
        outcome = "cancelled"
        try:
            outcome = str((await self.answerer.answer(reply, record)).status)
        except Exception:  # isolation boundary: one answer's bug never reaches the listener or the others
            outcome = "error"
            log.exception("the follow-up %s/%s failed unexpectedly", reply.channel, reply.ts)
        finally:
            if self.on_answered is not None:
                self.on_answered(outcome)

    async def _direct_consultation(self, reply: ThreadReply) -> Consultation | None:
        """In a DM, text outside a consultation's thread is about the latest consultation there, if
        it is recent: people type their next question at the top of a DM, not in the board's
        thread. The answer goes in the question's own thread."""
        if reply.channel_type != DIRECT_MESSAGE:
            return None
        latest = await self.store.history([reply.channel], limit=1)
        if not latest or utc_now() - latest[0].updated_at > timedelta(seconds=DM_FOLLOW_UP_WINDOW_S):
            return None
        return latest[0]

    async def _rerun(self, reply: ThreadReply, record: Consultation) -> None:
        if self.reruns is None:
            await self._post(reply, notice(NO_RERUNS))
            return
        await self.reruns.start(
            record.id, changes=await self._proposed(record), kind=ConsultationKind.RERUN, user=reply.user
        )

    async def _proposed(self, record: Consultation) -> list[str]:
        """The changes the latest answered follow-up of this consultation proposed; a re-run is a new
        consultation, so changes asked about before the latest one were already applied."""
        for turn in reversed(await self.store.turns(record.id)):
            if turn.status is TurnStatus.ANSWERED and turn.changes:
                return list(turn.changes)
        return []

    async def _react(self, reply: ThreadReply, name: str) -> None:
        with calls_at(Priority.PROGRESS):  # a courtesy: it gives way to final states under load
            call = self.client.reactions_add(channel=reply.channel, timestamp=reply.ts, name=name)
            await best_effort(call, f"reaction {name} on {reply.channel}/{reply.ts}", level=logging.INFO)

    async def _post(self, reply: ThreadReply, rendered: Rendered) -> None:
        posted = post_reply(self.client, channel=reply.channel, thread_ts=reply.thread_ts, rendered=rendered)
        await best_effort(posted, f"could not reply in {reply.channel}")
