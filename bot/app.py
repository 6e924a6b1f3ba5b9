"""The Bolt app: which Slack events start a consultation, decided early and cheaply."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.consultation import Consultant, Upload
from bot.files import SlackFile
from bot.settings import BotSettings, Trigger
from bot.slack_text import mentions, plain_text

log = logging.getLogger(__name__)

# The Events API subscriptions the listeners below rely on (manifest.yml lists exactly these).
SUBSCRIBED_EVENTS = ("app_mention", "message.channels", "message.groups", "message.im")

# Message subtypes that carry a person's new message; everything else (edits, deletions, joins,
# the bot's own posts) is ignored before any work.
_NEW_MESSAGE_SUBTYPES = {None, "file_share", "thread_broadcast"}


class Listeners:
    """Turns `message` and `app_mention` events into uploads for the consultant."""

    def __init__(self, settings: BotSettings, consultant: Consultant, bot_user_id: str) -> None:
        self.settings = settings
        self.consultant = consultant
        self.bot_user_id = bot_user_id

    async def on_message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """A message in a channel, group or DM the bot is in."""
        if event.get("subtype") not in _NEW_MESSAGE_SUBTYPES or event.get("bot_id"):
            return
        self._consider(body, event, mentioned=mentions(event.get("text") or "", self.bot_user_id))

    async def on_mention(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """A message that mentions the bot (Slack also sends it as a `message`; dedupe joins them)."""
        if event.get("bot_id"):
            return
        self._consider(body, event, mentioned=True)

    def _consider(self, body: dict[str, Any], event: dict[str, Any], *, mentioned: bool) -> None:
        channel = str(event.get("channel", ""))
        is_dm = event.get("channel_type") == "im"
        files = tuple(SlackFile.from_event(f) for f in event.get("files") or [] if f.get("id"))
        if not (files or mentioned or is_dm):
            return
        mention_only = self.settings.trigger is Trigger.MENTIONS or channel in self.settings.mention_only_channels
        if mention_only and not (mentioned or is_dm):
            return
        ts = str(event["ts"])
        upload = Upload(
            event_id=body.get("event_id"),
            channel=channel,
            ts=ts,
            thread_ts=str(event.get("thread_ts") or ts),
            user=event.get("user"),
            text=plain_text(event.get("text") or "", self.bot_user_id),
            files=files,
            mentioned=mentioned or is_dm,
        )
        self.consultant.start(upload)


class _ClientTokenNotice(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN from the environment is unused when a client is given; it is
    the same token, already in the client, so the warning would only mislead whoever reads the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def build_app(settings: BotSettings, client: AsyncWebClient, consultant: Consultant, bot_user_id: str) -> AsyncApp:
    """The Bolt app with its two listeners; HTTP mode verifies Slack's signature with the secret."""
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
    listeners = Listeners(settings, consultant, bot_user_id)
    app.event("message")(listeners.on_message)
    app.event("app_mention")(listeners.on_mention)
    return app
