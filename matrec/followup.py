"""Follow-up questions on a finished consultation: one streamed free-text answer, and proposed re-runs.

The request, in the order prompt caching reads it (tools, system, messages):

    tools     propose_rerun                                         \
    system    the follow-up prompt (matrec/prompts/followup.md)      | the cached prefix: the same
    user      every photo, then the consultation text  <- breakpoint / bytes for every follow-up on
              (render_consultation)                                    one consultation
              earlier questions, as user turns, and their answers, as assistant turns
              the question (with the asker's name)

Earlier turns are real user/assistant turns rather than a transcript block: that is how the
Messages API represents a conversation, so the model reads its own earlier answers as its own
(and keeps to them), and a person's words can never pose as the assistant's. They come after the
breakpoint, so a longer thread never changes the cached prefix.

The model answers in text and, when the question changes a requirement, calls `propose_rerun`
with the changed requirements (`tool_choice` is left at auto: Sonnet 5.5 rejects forced tools).
The answer is not continued after the tool call: the proposal is returned as `changes`.

Retries follow matrec.retry (the same limiter, pause and backoff rules), but only until the first
words were yielded: after text was shown, a failure is final (a retry would show a different
answer after the first one's beginning). The deadline (`followup_timeout_s`) is checked between
attempts; a single attempt is bounded by the request timeout, which also applies between chunks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from matrec import prompting
from matrec.claude import ChatDone, ChatStarted, ChatText, chat_cost, image_blocks
from matrec.consultation import render_consultation
from matrec.errors import BadInputError, CallFailure, ModelCallError
from matrec.images import PreparedImage
from matrec.limiter import Priority
from matrec.results import TokenUsage
from matrec.retry import TRUNCATION_BUDGET_FACTOR, Trace

if TYPE_CHECKING:
    from matrec.engine import Engine

__all__ = [
    "PROPOSE_RERUN",
    "Finished",
    "FollowUpEvent",
    "FollowUpReply",
    "PriorTurn",
    "Started",
    "TextDelta",
    "follow_up",
    "followup_messages",
    "render_consultation",
]

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS: Final = 4000
MAX_CHANGES: Final = 6
MAX_CHANGE_CHARS: Final = 200
PROPOSE_RERUN: Final[dict[str, Any]] = {
    "name": "propose_rerun",
    "description": (
        "Propose running the six material specialists again because the question changes the part's "
        "requirements. Call it after your answer, only when a requirement changed."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "changes": {
                "type": "array",
                "items": {"type": "string"},
                "description": 'the changed requirements, one short item each, e.g. "operates at 250 °C", '
                '"10,000 parts per year", "food contact"',
            }
        },
        "required": ["changes"],
    },
}
_EPHEMERAL: Final = {"type": "ephemeral"}


@dataclass(frozen=True)
class PriorTurn:
    """An earlier question in the thread and the answer it got."""

    question: str
    answer: str


@dataclass(frozen=True)
class FollowUpReply:
    """The whole answer: its text, the requirement changes it proposes, what it cost."""

    text: str
    changes: list[str]
    usage: TokenUsage
    cost_usd: float | None


@dataclass(frozen=True)
class Started:
    """Claude began answering (it may think for a while before the first words)."""


@dataclass(frozen=True)
class TextDelta:
    """The next piece of the answer's text."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The answer is complete."""

    reply: FollowUpReply


FollowUpEvent = Started | TextDelta | Finished


def followup_messages(
    images: Sequence[PreparedImage],
    consultation: str,
    history: Sequence[PriorTurn],
    question: str,
    asker: str | None = None,
) -> list[dict[str, Any]]:
    """The request's messages: photos and consultation (the cache breakpoint), earlier turns, the question."""
    messages: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = [
        *image_blocks(images),
        {"type": "text", "text": consultation, "cache_control": _EPHEMERAL},
    ]
    for turn in history:
        content.append({"type": "text", "text": prompting.followup_question(turn.question, asker=None, current=False)})
        if turn.answer.strip():  # an unanswered question stays in the user turn: roles must alternate
            messages.append({"role": "user", "content": content})
            messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.answer}]})
            content = []
    content.append({"type": "text", "text": prompting.followup_question(question, asker=asker, current=True)})
    messages.append({"role": "user", "content": content})
    return messages


def follow_up(
    engine: Engine,
    *,
    images: Sequence[PreparedImage],
    consultation: str,
    history: Sequence[PriorTurn],
    question: str,
    asker: str | None = None,
) -> AsyncIterator[FollowUpEvent]:
    """Answer `question` about the consultation; raises BadInputError or ModelCallError (see module)."""
    if not question.strip():
        raise BadInputError("There is no question to answer.")
    if len(question) > MAX_QUESTION_CHARS:
        raise BadInputError(f"The question is {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}.")
    messages = followup_messages(images, consultation, history, question, asker)
    return _answer(engine, messages, images)


async def _answer(
    engine: Engine, messages: list[dict[str, Any]], images: Sequence[PreparedImage]
) -> AsyncIterator[FollowUpEvent]:
    settings, caller = engine.settings, engine.caller
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.followup_timeout_s
    tally = Trace()
    max_tokens = settings.followup_max_tokens
    started = False
    while True:
        tally.attempts += 1
        caller.check_pause(tally, deadline - loop.time())
        shown = False
        done: ChatDone | None = None
        system = prompting.followup_system()
        cost = chat_cost(system=system, tools=[PROPOSE_RERUN], messages=messages, images=images, max_tokens=max_tokens)
        try:
            async with caller.limiter.slot(Priority.FOLLOW_UP, cost) as slot:
                with caller.settling(slot):
                    async for event in caller.claude.converse(
                        system=system,
                        tools=[PROPOSE_RERUN],
                        messages=messages,
                        max_tokens=max_tokens,
                        effort=settings.followup_effort,
                    ):
                        if isinstance(event, ChatStarted):
                            if not started:
                                started = True
                                yield Started()
                        elif isinstance(event, ChatText):
                            shown = True
                            yield TextDelta(event.text)
                        else:
                            done = event
                            slot.settle(event.usage)
        except ModelCallError as error:
            tally.last = error
            if error.usage is not None:
                tally.billed.append(error.usage)
            if shown:
                raise
            if error.kind is CallFailure.TRUNCATED:
                max_tokens = _larger_budget(engine, max_tokens, error, tally)
                continue
            await asyncio.sleep(caller.wait_before_retry(error, tally, deadline - loop.time()))
            continue
        if done is None:  # the adapter always ends with ChatDone; a stream without one is a drop
            raise ModelCallError(CallFailure.DROPPED, "Claude's answer ended without its final message")
        if done.truncated:
            log.warning("a follow-up answer was cut off at %d tokens; shown as it is", max_tokens)
        tally.billed.append(done.usage)
        yield Finished(_reply(engine, done, tally))
        return


def _larger_budget(engine: Engine, max_tokens: int, error: ModelCallError, tally: Trace) -> int:
    """Thinking used the whole budget before any words: once, twice the budget (up to the model's cap)."""
    tally.truncated += 1
    cap = engine.claude.max_output_tokens or max_tokens * TRUNCATION_BUDGET_FACTOR
    budget = min(max_tokens * TRUNCATION_BUDGET_FACTOR, cap)
    if tally.truncated > 1 or budget <= max_tokens:
        raise error
    return budget


def _reply(engine: Engine, done: ChatDone, tally: Trace) -> FollowUpReply:
    usage = TokenUsage.total(tally.billed)
    prices = engine.settings.price_table
    return FollowUpReply(
        text=done.text.strip(),
        changes=_changes(done),
        usage=usage,
        cost_usd=None if prices is None else round(usage.cost_usd(prices), 6),
    )


def _changes(done: ChatDone) -> list[str]:
    """The requirement changes of every propose_rerun call, cleaned: strings only, short, no repeats."""
    found: list[str] = []
    for call in done.tool_calls:
        if call.name != PROPOSE_RERUN["name"]:
            continue
        items = call.input.get("changes")
        for item in items if isinstance(items, list) else []:
            text = " ".join(item.split())[:MAX_CHANGE_CHARS] if isinstance(item, str) else ""
            if text and text not in found:
                found.append(text)
    return found[:MAX_CHANGES]
