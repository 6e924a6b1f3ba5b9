"""Answerer: one follow-up question answered by Claude, with the consultation as its context.

The context comes from the store, never from re-reading the Slack thread: the photos exactly as
the analysis sent them (`store.images` rebuilt byte-identically), the consultation rendered by
`render_consultation` (the same bytes every time, so the prompt cache serves every follow-up of a
consultation after the first), and the earlier answered questions as history.

A question asked while the analysis still runs is recorded at once, marked with an hourglass
reaction (quiet: the live board already says the analysis is under way) and answered as soon as
the consultation is final (`Finals.wait`). Until Claude's response begins, the thread's status line
says the bot is thinking (Slack clears it when the answer's first message appears); from then on the
answer's own message shows a "Thinking about your question" task, kept alive until the first words
(`bot.streaming`).

The asker's name is not passed to Claude: it would cost a users.info call before every answer, and
nothing on this path knows it yet.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final, Protocol

from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import Rendered
from bot.blocks.replies import notice, rerun_offer
from bot.budget import Priority, calls_at
from bot.consultation.job import prepared_images
from bot.consultation.rerun import PENDING_POSITION
from bot.conversation.reply import ThreadReply
from bot.finals import DEFAULT_POLL_S, Finals
from bot.spend import BUDGET_REACHED, SpendGuard
from bot.store import ACTIVE_STATUSES, Consultation, Store, Turn, TurnStatus
from bot.streaming import AnswerWriter, StreamLimits
from bot.writer import best_effort, post_reply
from matrec.errors import CallFailure, MatrecError, ModelCallError
from matrec.followup import Finished, FollowUpEvent, PriorTurn, Started, TextDelta, render_consultation
from matrec.images import PreparedImage

log = logging.getLogger(__name__)

WAITING_REACTION: Final = "hourglass_flowing_sand"
THINKING_STATUS: Final = "is thinking about your question…"
NOTHING_TO_DISCUSS: Final = (
    "This consultation ended without a recommendation, so there is nothing to discuss yet: "
    "press Re-run on the board, or upload the photo again."
)
NO_ANSWER: Final = "Sorry, I could not answer just now ({reason}). Please ask again in a moment."
CUT_OFF: Final = "\n\n_(The answer was cut off: {reason}.)_"
EMPTY_ANSWER: Final = "I have nothing to add to the consultation above."


class FollowUpEngine(Protocol):
    """`matrec.engine.Engine.follow_up`."""

    def follow_up(
        self,
        *,
        images: Sequence[PreparedImage],
        consultation: str,
        history: Sequence[PriorTurn],
        question: str,
        asker: str | None = None,
    ) -> AsyncIterator[FollowUpEvent]:
        """Claude's answer as events: Started, TextDelta..., Finished."""
        ...


class Answerer:
    """Answers follow-up questions; holds nothing per thread, so answers in many threads run at once."""

    def __init__(
        self,
        *,
        store: Store,
        engine: FollowUpEngine,
        client: AsyncWebClient,
        finals: Finals,
        limits: StreamLimits,
        team_id: str | None = None,
        poll_s: float = DEFAULT_POLL_S,
        spend: SpendGuard | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.client = client
        self.finals = finals
        self.limits = limits
        self.team_id = team_id
        self.poll_s = poll_s
        self.spend = spend

    async def answer(self, reply: ThreadReply, record: Consultation) -> Turn:
        """Record the question, wait for the consultation to be final, stream the answer; the turn."""
        turn = Turn(
            consultation_id=record.id,
            channel=reply.channel,
            thread_ts=reply.thread_ts,
            message_ts=reply.ts,
            user_id=reply.user,
            question=reply.text,
        )
        await self.store.add_turn(turn)
        if record.status in ACTIVE_STATUSES:
            await self._react(reply, add=WAITING_REACTION)
            record = await self.finals.wait(record.id, self.store, poll_s=self.poll_s)
            await self._react(reply, remove=WAITING_REACTION)
        if record.recommendation is None:
            await self._post(reply, notice(NOTHING_TO_DISCUSS))
            return await self.store.update_turn(turn.id, status=TurnStatus.SKIPPED)
        stored = [image for image in await self.store.images(record.id) if image.position < PENDING_POSITION]
        history = [
            PriorTurn(question=t.question, answer=t.answer)
            for t in await self.store.turns(record.id)
            if t.status is TurnStatus.ANSWERED and t.answer and t.id != turn.id
        ]
        consultation = render_consultation(record.recommendation)
        held = None
        if self.spend is not None:  # the answer's worst case is held before Claude is asked, or it is not asked
            texts = [consultation, reply.text, *(f"{h.question}{h.answer}" for h in history)]
            held = await self.spend.hold(
                reply.channel, self.spend.worst_case.follow_up_usd(photos=len(stored), texts=texts)
            )
            if held is None:
                await self._post(reply, notice(BUDGET_REACHED))
                return await self.store.update_turn(turn.id, status=TurnStatus.SKIPPED)
        await self._status(reply, THINKING_STATUS)

        def events() -> AsyncIterator[FollowUpEvent]:
            answer = self.engine.follow_up(
                images=prepared_images(stored), consultation=consultation, history=history, question=reply.text
            )
            return answer if held is None or self.spend is None else self.spend.metered(held, answer)

        return await self._stream(reply, turn, events)

    async def _stream(self, reply: ThreadReply, turn: Turn, events: Callable[[], AsyncIterator[FollowUpEvent]]) -> Turn:
        writer = AnswerWriter(
            self.client,
            channel=reply.channel,
            thread_ts=reply.thread_ts,
            recipient_user_id=reply.user,
            recipient_team_id=reply.team or self.team_id,
            limits=self.limits,
        )
        text = ""
        try:
            async for event in events():  # the call may refuse the question at once (BadInputError)
                if isinstance(event, Started):
                    writer.begin()
                elif isinstance(event, TextDelta):
                    text += event.text
                    writer.write(event.text)
                elif isinstance(event, Finished):
                    return await self._finish(reply, turn, writer, event, text)
            raise ModelCallError(CallFailure.DROPPED, "the answer ended without its final event")
        except (ModelCallError, MatrecError) as error:
            reason = _plain_reason(error)
            log.warning("follow-up %s/%s failed: %s", reply.channel, reply.ts, error)
            if not text.strip():  # the notice lands where the thinking task shows, or is posted
                await writer.finish(empty_text=NO_ANSWER.format(reason=reason), failed=True)
                return await self.store.update_turn(turn.id, status=TurnStatus.FAILED)
            writer.write(CUT_OFF.format(reason=reason))
            ts = await writer.finish()
            return await self.store.update_turn(
                turn.id, status=TurnStatus.FAILED, answer=text, answer_ts=ts[0] if ts else None
            )
        finally:
            await writer.cancel()  # no-op once finished

    async def _finish(self, reply: ThreadReply, turn: Turn, writer: AnswerWriter, done: Finished, text: str) -> Turn:
        changes = list(done.reply.changes)
        # The Re-run button names this turn, and a typed "re-run" reads the latest answered turn: both
        # must find the changes from the moment the button can be seen, so they are stored first.
        await self.store.update_turn(
            turn.id, status=TurnStatus.ANSWERED, answer=done.reply.text or text, changes=changes
        )
        blocks = rerun_offer(turn.id, changes).blocks if changes else []
        ts = await writer.finish(blocks=blocks, empty_text=EMPTY_ANSWER)
        usage = done.reply.usage
        log.info(
            "follow-up %s/%s answered in %d message(s), %s (cache read %s, written %s), cost %s",
            reply.channel,
            reply.ts,
            len(ts),
            "streamed" if writer.streamed else "posted",
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            done.reply.cost_usd,
        )
        return await self.store.update_turn(turn.id, answer_ts=ts[0] if ts else None)

    async def _react(self, reply: ThreadReply, *, add: str | None = None, remove: str | None = None) -> None:
        for method, name in ((self.client.reactions_add, add), (self.client.reactions_remove, remove)):
            if name is not None:
                with calls_at(Priority.PROGRESS):  # gives way under load (the answer is what matters)
                    call = method(channel=reply.channel, timestamp=reply.ts, name=name)
                    await best_effort(call, f"reaction {name} on {reply.channel}/{reply.ts}", level=logging.INFO)

    async def _status(self, reply: ThreadReply, status: str) -> None:
        with calls_at(Priority.PROGRESS):
            call = self.client.assistant_threads_setStatus(
                channel_id=reply.channel, thread_ts=reply.thread_ts, status=status
            )
            await best_effort(call, "thread status unavailable", level=logging.DEBUG)

    async def _post(self, reply: ThreadReply, rendered: Rendered) -> None:
        posted = post_reply(self.client, channel=reply.channel, thread_ts=reply.thread_ts, rendered=rendered)
        await best_effort(posted, f"could not reply in {reply.channel}")


_BUSY = frozenset({CallFailure.RATE_LIMITED, CallFailure.OVERLOADED, CallFailure.UNAVAILABLE})


def _plain_reason(error: Exception) -> str:
    """Why there is no (whole) answer, in words for the person who asked."""
    if isinstance(error, ModelCallError):
        if error.kind in _BUSY:
            return "Claude is busy"
        if error.kind is CallFailure.SPEND_LIMIT:
            return "the Claude account has reached its spend limit"
        if error.kind is CallFailure.TIMEOUT:
            return "Claude took too long"
        return "Claude's answer did not come through"
    return str(error)  # MatrecError messages are written for the person
