"""The Bolt app: which Slack events start a consultation, continue one, or get a short reply.

Routing, decided early and cheaply (no Claude call happens here):

    a person's edit of an upload that started a consultation   -> Reruns.edited (offers a re-run)
    the deletion of such an upload                             -> Reruns.deleted (cancels it)
    a thread reply where a consultation lives, with photos      -> Reruns.add_photos
    any other thread reply (and DM text)                        -> FollowUps.consider
    DM / group DM text that is not a follow-up                  -> a reaction (small talk) or a
                                                                   help reply with a button
    an upload with photos, or a mention with text in a channel  -> Consultant.start
The bot's own messages and their echoes (chat.update comes back as message_changed) end first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.consultation import Consultant, Upload
from bot.conversation import ThreadReply
from bot.conversation.intent import Intent, intent
from bot.files import SlackFile
from bot.settings import BotSettings, Trigger
from bot.slack_text import mentions, plain_text
from bot.store import ConsultationKind

log = logging.getLogger(__name__)

# The Events API subscriptions the app's listeners rely on (manifest.yml lists exactly these): the
# two below, and App Home's, which `Parts.register` (bot.interactive) listens to.
SUBSCRIBED_EVENTS = (
    "app_home_opened",
    "app_mention",
    "message.channels",
    "message.groups",
    "message.im",
    "message.mpim",
)

# Message subtypes that carry a person's new message; edits and deletions have their own routes,
# and everything else (joins, the bot's own posts) is ignored before any work.
_NEW_MESSAGE_SUBTYPES = {None, "file_share", "thread_broadcast"}
DIRECT_CHANNEL_TYPES: Final = frozenset({"im", "mpim"})  # a DM and a group DM behave alike
SMALL_TALK_REACTION: Final = "slightly_smiling_face"


class FollowUpHandler(Protocol):
    """`bot.conversation.FollowUps`: answers replies in consultation threads."""

    async def consider(self, reply: ThreadReply) -> bool:
        """True when the reply belongs to a consultation (handled or deliberately left alone)."""
        ...


class RerunHandler(Protocol):
    """`bot.consultation.rerun.Reruns`: what edits, deletions and reply photos do to a consultation."""

    async def add_photos(self, consultation_id: str, files: Sequence[SlackFile], user: str | None) -> None:
        """Keep reply photos for the next re-run of the thread's consultation."""
        ...

    async def edited(self, channel: str, message_ts: str, new_text: str, user: str | None) -> None:
        """The upload's text was edited: offer a re-run."""
        ...

    async def deleted(self, channel: str, message_ts: str) -> None:
        """The upload was deleted: cancel its running consultation."""
        ...


@dataclass(frozen=True)
class Parts:
    """What the listeners hand work to; the later parts are optional so each can be wired on its own."""

    consultant: Consultant
    followups: FollowUpHandler | None = None
    reruns: RerunHandler | None = None
    register: Callable[[AsyncApp], None] | None = None  # buttons, /matrec and App Home (bot.interactive)


class Listeners:
    """Turns `message` and `app_mention` events into work for the parts."""

    def __init__(self, settings: BotSettings, parts: Parts, bot_user_id: str, client: AsyncWebClient) -> None:
        self.settings = settings
        self.parts = parts
        self.consultant = parts.consultant
        self.store = parts.consultant.store
        self.bot_user_id = bot_user_id
        self.client = client
        self._channel_types: dict[str, str] = {}

    async def on_message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """A message in a channel, group, DM or group DM the bot is in."""
        subtype = event.get("subtype")
        if subtype == "message_changed":
            await self._edited(body, event)
            return
        if subtype == "message_deleted":
            await self._deleted(body, event)
            return
        if subtype not in _NEW_MESSAGE_SUBTYPES or self._from_a_bot(event):
            return
        channel, ts = str(event.get("channel", "")), str(event["ts"])
        if channel_type := event.get("channel_type"):
            self._channel_types[channel] = str(channel_type)
        thread_ts = str(event.get("thread_ts") or ts)
        files = _files(event)
        if thread_ts != ts:
            if await self._thread_reply(body, event, files):
                return
        elif channel_type in DIRECT_CHANNEL_TYPES and not files and await self._follow_up(body, event):
            return
        if channel_type in DIRECT_CHANNEL_TYPES and not files:
            await self._direct_text(body, event)  # no consultation there: never one for text alone
            return
        self._consider(body, event, mentioned=mentions(event.get("text") or "", self.bot_user_id))

    async def on_mention(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """A message that mentions the bot (Slack also sends it as a `message`; dedupe joins them)."""
        if self._from_a_bot(event):
            return
        channel, ts = str(event.get("channel", "")), str(event["ts"])
        thread_ts = str(event.get("thread_ts") or ts)
        if thread_ts != ts and await self.store.latest_in_thread(channel, thread_ts) is not None:
            return  # a reply in a consultation thread: its `message` twin goes to the follow-ups
        if not _files(event) and await self._is_direct(channel):
            return  # DM text: its `message` twin gets the help reply, never a consultation
        self._consider(body, event, mentioned=True)

    def _from_a_bot(self, event: dict[str, Any]) -> bool:
        return bool(event.get("bot_id")) or event.get("user") == self.bot_user_id

    async def _thread_reply(self, body: dict[str, Any], event: dict[str, Any], files: tuple[SlackFile, ...]) -> bool:
        """True when a consultation thread took the reply (photos for a re-run, or a follow-up)."""
        channel, ts = str(event.get("channel", "")), str(event["ts"])
        thread_ts = str(event.get("thread_ts") or ts)
        photos = tuple(f for f in files if f.looks_like_image)
        if photos and self.parts.reruns is not None:
            latest = await self.store.latest_in_thread(channel, thread_ts)
            if latest is None:
                return False
            if await self.store.claim(body.get("event_id"), channel, ts):
                await self.parts.reruns.add_photos(latest.id, photos, event.get("user"))
            return True
        if self.parts.followups is None:
            return False
        return await self.parts.followups.consider(self._reply(body, event, files))

    async def _follow_up(self, body: dict[str, Any], event: dict[str, Any]) -> bool:
        """True when the follow-ups took a DM's top-level text (it belongs to a consultation there)."""
        if self.parts.followups is None or not str(event.get("text") or "").strip():
            return False
        return await self.parts.followups.consider(self._reply(body, event, ()))

    async def _direct_text(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """DM or group DM text that is not a follow-up: small talk gets a reaction, the rest a help reply."""
        if not str(event.get("text") or "").strip():
            return
        upload = self._upload(body, event, mentioned=True)
        if intent(self._reply(body, event, ()), self.bot_user_id) is Intent.SMALL_TALK:
            await self.consultant.acknowledge(upload, SMALL_TALK_REACTION)
        else:
            await self.consultant.help_in_dm(upload)

    async def _edited(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """A person edited a message: if it is an upload with a consultation, offer a re-run."""
        message = event.get("message") or {}
        previous = event.get("previous_message") or {}
        if self.parts.reruns is None or self._from_a_bot(message) or not message.get("user") or "ts" not in message:
            return
        new_text = str(message.get("text") or "")
        if new_text == (previous.get("text") or ""):
            return  # an unfurl, a reply count or a reaction: not the person's words
        channel, ts = str(event.get("channel", "")), str(message["ts"])
        if not await self._started_a_consultation(channel, ts):
            return
        if await self.store.claim(body.get("event_id"), channel, str(event.get("event_ts") or event.get("ts"))):
            await self.parts.reruns.edited(channel, ts, plain_text(new_text, self.bot_user_id), message.get("user"))

    async def _deleted(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """A person deleted an upload with a consultation: cancel what still runs."""
        previous = event.get("previous_message") or {}
        deleted_ts = event.get("deleted_ts") or previous.get("ts")
        if self.parts.reruns is None or self._from_a_bot(previous) or not deleted_ts:
            return
        channel = str(event.get("channel", ""))
        if not await self._started_a_consultation(channel, str(deleted_ts)):
            return
        if await self.store.claim(body.get("event_id"), channel, str(event.get("event_ts") or event.get("ts"))):
            await self.parts.reruns.deleted(channel, str(deleted_ts))

    async def _started_a_consultation(self, channel: str, ts: str) -> bool:
        records = await self.store.for_message(channel, ts)
        return any(r.kind is ConsultationKind.UPLOAD for r in records)

    async def _is_direct(self, channel: str) -> bool:
        """Whether `channel` is a DM or group DM (app_mention events do not say; conversations.info does)."""
        if channel not in self._channel_types:
            try:
                info = (await self.client.conversations_info(channel=channel)).get("channel") or {}
            except SlackApiError as error:
                log.info("conversations.info %s: %s", channel, error.response.get("error"))
                return channel.startswith("D")
            kind = "im" if info.get("is_im") else "mpim" if info.get("is_mpim") else "channel"
            self._channel_types[channel] = kind
        return self._channel_types[channel] in DIRECT_CHANNEL_TYPES

    def _reply(self, body: dict[str, Any], event: dict[str, Any], files: tuple[SlackFile, ...]) -> ThreadReply:
        ts = str(event["ts"])
        raw = str(event.get("text") or "")
        return ThreadReply(
            event_id=body.get("event_id"),
            channel=str(event.get("channel", "")),
            channel_type=event.get("channel_type"),
            ts=ts,
            thread_ts=str(event.get("thread_ts") or ts),
            user=event.get("user"),
            text=plain_text(raw, self.bot_user_id),
            raw_text=raw,
            files=files,
            team=event.get("team") or body.get("team_id"),
        )

    def _upload(self, body: dict[str, Any], event: dict[str, Any], *, mentioned: bool) -> Upload:
        ts = str(event["ts"])
        return Upload(
            event_id=body.get("event_id"),
            channel=str(event.get("channel", "")),
            ts=ts,
            thread_ts=str(event.get("thread_ts") or ts),
            user=event.get("user"),
            text=plain_text(event.get("text") or "", self.bot_user_id),
            files=_files(event),
            mentioned=mentioned,
            channel_type=event.get("channel_type") or self._channel_types.get(str(event.get("channel", ""))),
        )

    def _consider(self, body: dict[str, Any], event: dict[str, Any], *, mentioned: bool) -> None:
        channel = str(event.get("channel", ""))
        direct = (event.get("channel_type") or self._channel_types.get(channel)) in DIRECT_CHANNEL_TYPES
        files = _files(event)
        if not (files or mentioned or direct):
            return
        mention_only = self.settings.trigger is Trigger.MENTIONS or channel in self.settings.mention_only_channels
        if mention_only and not (mentioned or direct):
            return
        self.consultant.start(self._upload(body, event, mentioned=mentioned or direct))


def _files(event: dict[str, Any]) -> tuple[SlackFile, ...]:
    return tuple(SlackFile.from_event(f) for f in event.get("files") or [] if f.get("id"))


class _ClientTokenNotice(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN from the environment is unused when a client is given; it is
    the same token, already in the client, so the warning would only mislead whoever reads the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def build_app(settings: BotSettings, client: AsyncWebClient, parts: Parts, bot_user_id: str) -> AsyncApp:
    """The Bolt app with its listeners; HTTP mode verifies Slack's signature with the secret."""
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    bolt_logger = logging.getLogger("slack_bolt.AsyncApp")
    if not any(isinstance(f, _ClientTokenNotice) for f in bolt_logger.filters):
        bolt_logger.addFilter(_ClientTokenNotice())
    app = AsyncApp(
        client=client,
        signing_secret=secret,
        request_verification_enabled=not settings.socket_mode,
        process_before_response=False,
    )
    listeners = Listeners(settings, parts, bot_user_id, client)
    app.event("message")(listeners.on_message)
    app.event("app_mention")(listeners.on_mention)
    if parts.register is not None:
        parts.register(app)
    return app
