"""What the bot's buttons and selects do, and the registration of every interactive surface.

Each handler acks at once (Slack wants it within 3 s) and works afterwards. A button acts only on
its own thread's consultation: the consultation (or follow-up turn) its value names must live in
the channel and thread of the message that was clicked, otherwise the click is refused with a note
only the clicker sees. Values are ids, never trusted text: what a button analyses or re-runs is read
from the store or from Slack, in the clicked conversation.

Every button that starts something (re-runs, stress tests, splits, details, analyses) acts exactly
once per board: before acting it claims the idempotency key `<consultation id>:<action>:<board
version>` in the store's dedupe keys, which every instance shares (`idempotency_key`). The board
version is what the clicker saw: the clicked message's ts (a re-run's new board is a new message,
so pressing Re-run there is a new action), the follow-up turn for "re-run with these changes".
Slack does not retry clicks, so the duplicates are double clicks and people pressing at once; the
press that loses is told so, only to its clicker. Feedback is an upsert and needs no key.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import actions
from bot.access import Access
from bot.blocks import details, final_board, notice
from bot.budget import Priority, UpdateBudget, calls_at
from bot.command import SlashCommand
from bot.consultation import Consultant
from bot.consultation.job import TEXT_ONLY_LABEL
from bot.consultation.rerun import Duplicate, Reruns
from bot.home import Home
from bot.memory import Memory
from bot.slack_text import plain_text
from bot.store import Consultation, ConsultationKind, Rating, Store
from bot.writer import best_effort, post_reply
from matrec.materials import MaterialClass

log = logging.getLogger(__name__)

DETAILS_REMEMBERED = 1_000  # consultations whose details reply this process remembers, for pointing at it
REFUSED = "That button belongs to another consultation's thread, so I did not act on it here."
NOT_FINAL = "This consultation has no recommendation yet; try again once its board is final."
GONE = "I no longer have that consultation."
DETAILS_ALREADY = "The full analyses are already in this thread"
TEXT_GONE = "I cannot find that message any more, so there is nothing to analyse."
UNMUTED = "I will answer questions in this thread again."
ANALYSING = ":hourglass_flowing_sand: Analysing this description: the board appears in this thread."
ALREADY_STARTED = "Someone already pressed this: it is under way, and its board appears in this thread."
ALREADY_DONE = "This was already done: see the newer board in this thread."
DUPLICATE_NOTES = {Duplicate.RUNNING: ALREADY_STARTED, Duplicate.DONE: ALREADY_DONE}
DETAILS_VERSION = "once"  # a consultation's full analyses go in its thread once, whichever board asks


@dataclass(frozen=True)
class Deps:
    """What the interactive surfaces need, built once in `bot.service`."""

    store: Store
    access: Access
    memory: Memory
    reruns: Reruns
    consultant: Consultant
    bot_user_id: str
    budget: UpdateBudget | None = None  # the shared Slack budget (the client spends from it)


@dataclass(frozen=True)
class Click:
    """One press of a button (or pick in a select) in a message the bot posted."""

    user: str
    channel: str
    message_ts: str
    thread_ts: str  # the clicked message's thread (its own ts when it is not in one)
    action_id: str
    value: str

    @classmethod
    def of(cls, body: dict[str, Any]) -> Click:
        """The click a `block_actions` payload describes (its first action)."""
        action = (body.get("actions") or [{}])[0]
        container = body.get("container") or {}
        message = body.get("message") or {}
        selected = action.get("selected_option") or {}
        channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id") or "")
        message_ts = str(container.get("message_ts") or message.get("ts") or "")
        return cls(
            user=str((body.get("user") or {}).get("id") or ""),
            channel=channel,
            message_ts=message_ts,
            thread_ts=str(container.get("thread_ts") or message.get("thread_ts") or message_ts),
            action_id=str(action.get("action_id") or ""),
            value=str(action.get("value") or selected.get("value") or ""),
        )

    def in_thread_of(self, channel: str, thread_ts: str) -> bool:
        """Whether the clicked message is in this thread of this channel."""
        return bool(self.channel) and self.channel == channel and self.thread_ts == thread_ts


Handler = Callable[[Click, AsyncRespond], Coroutine[Any, Any, None]]


class Buttons:
    """The handlers of every action id in `bot.actions`."""

    def __init__(self, deps: Deps, client: AsyncWebClient) -> None:
        self._deps = deps
        self._store = deps.store
        self._client = client
        self._rendering: dict[str, bool] = {}  # consultation id -> another pass wanted
        self._details_ts: dict[str, str] = {}  # consultation id -> its first details reply (bounded)

    def handlers(self) -> dict[str, Handler]:
        """Action id -> handler."""
        return {
            actions.HELPFUL: self.rate,
            actions.NOT_HELPFUL: self.rate,
            actions.CHOSE: self.choose,
            actions.DETAILS: self.details,
            actions.RERUN: self.rerun,
            actions.RERUN_WITH: self.rerun_with,
            actions.STRESS: self.rerun,
            actions.RERUN_EDITED: self.rerun,
            actions.SPLIT: self.split,
            actions.ANALYSE_TEXT: self.analyse_text,
            actions.UNMUTE: self.unmute,
        }

    def listener(self, handler: Handler) -> Callable[..., Awaitable[None]]:
        """The Bolt listener around `handler`: ack first, then the work as a task of the consultant's."""

        async def listen(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
            await ack()
            click = Click.of(body)
            if not click.user or not click.channel:
                log.warning("a %s click without a user or channel was ignored", click.action_id)
                return
            # The consultant keeps the task, so a shutdown lets it finish (or cancels it) before the store closes.
            name = f"{click.action_id} by {click.user} in {click.channel}/{click.message_ts}"
            self._deps.consultant.spawn(handler(click, respond), name=name)

        return listen

    # --- feedback --------------------------------------------------------------------------------

    async def rate(self, click: Click, respond: AsyncRespond) -> None:
        """Helpful / not helpful: the clicker's rating, replacing their earlier one."""
        consultation = await self._own(click, click.value, respond)
        if consultation is None:
            return
        rating: Rating = "helpful" if click.action_id == actions.HELPFUL else "not_helpful"
        await self._store.set_feedback(consultation.id, click.user, rating=rating)
        await self.rerender(consultation.id)

    async def choose(self, click: Click, respond: AsyncRespond) -> None:
        """ "We chose…": the clicker's chosen class, replacing their earlier choice."""
        consultation_id, _, chosen = click.value.rpartition(":")
        try:
            material = MaterialClass(chosen)
        except ValueError:
            log.warning("a choice of unknown class %r was ignored", chosen)
            return
        consultation = await self._own(click, consultation_id, respond)
        if consultation is None:
            return
        await self._store.set_feedback(consultation.id, click.user, chosen=material)
        await self.rerender(consultation.id)

    async def rerender(self, consultation_id: str) -> None:
        """Put the consultation's final board, with the team's feedback as stored now, in Slack.

        Clicks that come while a board is being rendered ask for one more pass instead of an update
        each: the last pass reads the store after every click before it, so it shows them all.
        """
        if consultation_id in self._rendering:
            self._rendering[consultation_id] = True
            return
        self._rendering[consultation_id] = False
        try:
            while True:
                await self._render(consultation_id)
                if not self._rendering[consultation_id]:
                    return
                self._rendering[consultation_id] = False
        finally:
            del self._rendering[consultation_id]

    async def _render(self, consultation_id: str) -> None:
        consultation = await self._store.get(consultation_id)
        if consultation is None or consultation.recommendation is None or consultation.board_ts is None:
            return
        view = await self._deps.memory.view_for(consultation, share_private=False)
        rendered = final_board(
            consultation.recommendation, part=part_name(consultation), context=consultation.context, view=view
        )
        with calls_at(Priority.FINAL):  # what the click changed, in the shared budget before any progress
            update = self._client.chat_update(
                channel=consultation.channel, ts=consultation.board_ts, text=rendered.text, blocks=rendered.blocks
            )
            await best_effort(
                update, f"could not show the feedback on board {consultation.channel}/{consultation.board_ts}"
            )

    # --- details ---------------------------------------------------------------------------------

    async def details(self, click: Click, respond: AsyncRespond) -> None:
        """The full analyses as thread replies, once; a second click is pointed at them."""
        consultation = await self._own(click, click.value, respond)
        if consultation is None:
            return
        if consultation.recommendation is None:
            await _tell(respond, NOT_FINAL)
            return
        # Once per consultation, across replicas too (the store's dedupe keys).
        once = idempotency_key(consultation.id, click.action_id, DETAILS_VERSION)
        first = consultation.id not in self._details_ts and await self._store.claim(None, consultation.channel, once)
        if not first:
            known = self._details_ts.get(consultation.id)
            link = await self._deps.memory.permalink(consultation.channel, known) if known else None
            await _tell(respond, f"<{link}|{DETAILS_ALREADY}>." if link else f"{DETAILS_ALREADY}.")
            return
        for rendered in details(consultation.recommendation):
            posted = post_reply(
                self._client, channel=consultation.channel, thread_ts=consultation.thread_ts, rendered=rendered
            )
            ts = await best_effort(posted, f"could not post the details of {consultation.id}")
            if ts is not None and consultation.id not in self._details_ts:
                if len(self._details_ts) >= DETAILS_REMEMBERED:
                    self._details_ts.pop(next(iter(self._details_ts)))  # the oldest
                self._details_ts[consultation.id] = ts

    # --- re-runs ---------------------------------------------------------------------------------

    async def rerun(self, click: Click, respond: AsyncRespond) -> None:
        """Re-run (with the latest follow-up's changes), stress test, or re-run after an edit."""
        consultation = await self._own(click, click.value, respond)
        if consultation is None:
            return
        once = idempotency_key(consultation.id, click.action_id, click.message_ts)
        if click.action_id == actions.STRESS:
            await self._start(consultation.id, (), ConsultationKind.STRESS, click, respond, once)
            return
        changes: Sequence[str] = ()
        if click.action_id == actions.RERUN:
            turns = await self._store.turns(consultation.id)
            changes = next((turn.changes for turn in reversed(turns) if turn.changes), [])
        await self._start(consultation.id, changes, ConsultationKind.RERUN, click, respond, once)

    async def rerun_with(self, click: Click, respond: AsyncRespond) -> None:
        """Re-run with the changes one follow-up answer proposed."""
        turn = await self._store.get_turn(click.value)
        if turn is None:
            await _tell(respond, GONE)
            return
        if not click.in_thread_of(turn.channel, turn.thread_ts):
            log.warning("user %s clicked a re-run of another thread's turn %s: refused", click.user, turn.id)
            await _tell(respond, REFUSED)
            return
        once = idempotency_key(turn.consultation_id, click.action_id, turn.id)
        await self._start(turn.consultation_id, turn.changes, ConsultationKind.RERUN, click, respond, once)

    async def split(self, click: Click, respond: AsyncRespond) -> None:
        """ "These are different parts": one board per photo."""
        consultation = await self._own(click, click.value, respond)
        if consultation is None:
            return
        once = idempotency_key(consultation.id, click.action_id, click.message_ts)
        await self._deps.reruns.split(consultation.id, click.user, once=once)  # it says itself why it did not split

    async def _start(
        self,
        consultation_id: str,
        changes: Sequence[str],
        kind: ConsultationKind,
        click: Click,
        respond: AsyncRespond,
        once: str,
    ) -> None:
        # Reruns claims `once` and says in the thread why it did not start (still running...).
        started = await self._deps.reruns.start_once(
            consultation_id, changes=list(changes), kind=kind, user=click.user, once=once
        )
        if isinstance(started, Duplicate):
            log.info("%s by %s was a duplicate (%s): %s", click.action_id, click.user, started, once)
            await _tell(respond, DUPLICATE_NOTES[started])

    # --- DMs and mutes ---------------------------------------------------------------------------

    async def analyse_text(self, click: Click, respond: AsyncRespond) -> None:
        """ "Analyse this description": a text-only consultation of a message in this conversation."""
        channel, _, ts = click.value.partition(":")
        if channel != click.channel or not ts:
            log.warning("user %s clicked Analyse for a message outside %s: refused", click.user, click.channel)
            await _tell(respond, REFUSED)
            return
        message = await self._message(channel, ts)
        text = plain_text(str(message.get("text") or ""), self._deps.bot_user_id) if message else ""
        if not text.strip():
            await _tell(respond, TEXT_GONE)
            return
        if not await self._store.claim(None, channel, idempotency_key(click.value, click.action_id, click.message_ts)):
            await _tell(respond, ALREADY_STARTED)
            return
        await self._deps.consultant.start_text(
            channel=channel,
            thread_ts=ts,
            user=click.user,
            text=text,
            key=f"{channel}:{ts}:analyse",
        )
        started = notice(ANALYSING)  # the help message stops offering the button it just served
        await respond(text=started.text, blocks=started.blocks, replace_original=True)

    async def unmute(self, click: Click, respond: AsyncRespond) -> None:
        """Let the bot answer follow-ups in this thread again."""
        channel, _, thread_ts = click.value.partition(":")
        if not click.in_thread_of(channel, thread_ts):
            log.warning("user %s clicked unmute for another thread: refused", click.user)
            await _tell(respond, REFUSED)
            return
        await self._store.unmute(channel, thread_ts)
        await _tell(respond, UNMUTED)

    async def _message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The top-level message at `ts` in `channel` as Slack has it now (the help reply's text)."""
        call = self._client.conversations_history(channel=channel, latest=ts, inclusive=True, limit=1)
        response = await best_effort(call, f"could not read message {channel}/{ts}")
        for message in (response.get("messages") or []) if response is not None else []:
            if str(message.get("ts")) == ts:
                return dict(message)
        return None

    # --- access ----------------------------------------------------------------------------------

    async def _own(self, click: Click, consultation_id: str, respond: AsyncRespond) -> Consultation | None:
        """The consultation the button names, if it lives in the clicked message's thread."""
        consultation = await self._store.get(consultation_id) if consultation_id else None
        if consultation is None:
            await _tell(respond, GONE)
            return None
        if not click.in_thread_of(consultation.channel, consultation.thread_ts):
            log.warning(
                "user %s clicked %s for consultation %s from %s/%s, another thread: refused",
                click.user,
                click.action_id,
                consultation.id,
                click.channel,
                click.thread_ts,
            )
            await _tell(respond, REFUSED)
            return None
        return consultation


def idempotency_key(subject: str, action_id: str, version: str) -> str:
    """The dedupe key of one press: what it acts on (a consultation id), the action and the board version."""
    return f"{subject}:{action_id}:{version}"


def part_name(consultation: Consultation) -> str:
    """The part's name as its board shows it (as `Job.part`): the first photo's, with how many more."""
    names = [f.name for f in consultation.files]
    if not names:
        return consultation.file_name or TEXT_ONLY_LABEL
    more = len(names) - 1
    return names[0] if not more else f"{names[0]} and {more} more photo{'s' if more > 1 else ''}"


async def _tell(respond: AsyncRespond, text: str) -> None:
    """A note only the clicker sees, next to the message they clicked."""
    await respond(text=text, response_type="ephemeral", replace_original=False)


def register(app: AsyncApp, deps: Deps) -> None:
    """Every button and select handler, the `/matrec` command and the App Home tab."""
    buttons = Buttons(deps, app.client)
    for action_id, handler in buttons.handlers().items():
        app.action(action_id)(buttons.listener(handler))
    SlashCommand(deps.store, deps.access, deps.memory, deps.consultant, bot_user_id=deps.bot_user_id).register(app)
    Home(deps.store, deps.access, deps.memory, spawn=deps.consultant.spawn).register(app)
