"""Builders of Events API payloads shaped like Slack's, storing the messages they describe."""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
import time
import uuid

from emulators.slack_files import FileHost
from emulators.slack_identity import AppIdentity, JsonDict
from emulators.slack_workspace import Message, Workspace

_MENTION = re.compile(r"(<@[UW][A-Z0-9]+>)")
_ID_ALPHABET = string.ascii_uppercase + string.digits


def new_event_id() -> str:
    """A fresh event id like Ev08ABCDEF12."""
    return "Ev" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def rich_text_blocks(text: str) -> list[JsonDict]:
    """The rich_text block Slack's clients attach to a typed message (mentions become user elements)."""
    elements: list[JsonDict] = []
    for part in _MENTION.split(text):
        if not part:
            continue
        if _MENTION.fullmatch(part):
            elements.append({"type": "user", "user_id": part[2:-1]})
        else:
            elements.append({"type": "text", "text": part})
    block_id = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(5))
    return [
        {
            "type": "rich_text",
            "block_id": block_id,
            "elements": [{"type": "rich_text_section", "elements": elements}],
        }
    ]


class EventFactory:
    """Makes `event_callback` bodies and the inner events a user or another bot would cause."""

    def __init__(self, identity: AppIdentity, workspace: Workspace, files: FileHost) -> None:
        self.identity = identity
        self.workspace = workspace
        self.files = files

    def event_callback(self, event: JsonDict, *, event_id: str | None = None) -> JsonDict:
        """Wrap an inner event in the outer body Slack posts (or puts in an envelope's payload)."""
        channel = event.get("channel")
        context = {"et": event.get("type"), "tid": self.identity.team_id, "aid": self.identity.app_id}
        if isinstance(channel, str):
            context["cid"] = channel
        encoded = base64.urlsafe_b64encode(json.dumps(context, separators=(",", ":")).encode()).decode()
        return {
            "token": self.identity.verification_token,
            "team_id": self.identity.team_id,
            "context_team_id": self.identity.team_id,
            "context_enterprise_id": None,
            "api_app_id": self.identity.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or new_event_id(),
            "event_time": int(time.time()),
            "authorizations": [self.identity.authorization()],
            "is_ext_shared_channel": False,
            "event_context": "4-" + encoded.rstrip("="),
        }

    def message_event(self, channel: str, ts: str) -> JsonDict:
        """The `message` event for a stored message, as Slack delivers it when it is posted."""
        message = self.workspace.message(channel, ts)
        event = self.workspace.render(message)
        for key in (
            "reply_count",
            "reply_users_count",
            "reply_users",
            "latest_reply",
            "is_locked",
            "subscribed",
            "reactions",
        ):
            event.pop(key, None)
        resolved = self.workspace.channel(channel)
        event.update({"channel": resolved.id, "event_ts": message.ts, "channel_type": resolved.channel_type})
        return event

    def user_message(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        files: list[JsonDict] | None = None,
        thread_ts: str | None = None,
    ) -> JsonDict:
        """Store a message a person typed (subtype file_share if it carries files); return its event."""
        message = self._store_user_message(channel, user, text, files or [], thread_ts)
        return self.message_event(message.channel, message.ts)

    def mention(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        files: list[JsonDict] | None = None,
        thread_ts: str | None = None,
    ) -> JsonDict:
        """Store a message mentioning the bot; return its `app_mention` event."""
        bot_mention = f"<@{self.identity.bot_user_id}>"
        if bot_mention not in text:
            text = f"{bot_mention} {text}".rstrip()
        message = self._store_user_message(channel, user, text, files or [], thread_ts)
        event = self.message_event(message.channel, message.ts)
        event.pop("channel_type", None)
        event.pop("subtype", None)
        event["type"] = "app_mention"
        return event

    def message_changed(self, channel: str, previous: JsonDict, current: JsonDict) -> JsonDict:
        """The hidden `message_changed` event for an edit from `previous` to `current`."""
        resolved = self.workspace.channel(channel)
        event_ts = self.workspace.next_ts()
        return {
            "type": "message",
            "subtype": "message_changed",
            "message": current,
            "channel": resolved.id,
            "hidden": True,
            "previous_message": previous,
            "event_ts": event_ts,
            "ts": event_ts,
            "channel_type": resolved.channel_type,
        }

    def message_deleted(self, channel: str, previous: JsonDict) -> JsonDict:
        """The hidden `message_deleted` event for the message `previous` rendered."""
        resolved = self.workspace.channel(channel)
        event_ts = self.workspace.next_ts()
        return {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "deleted_ts": previous["ts"],
            "channel": resolved.id,
            "previous_message": previous,
            "event_ts": event_ts,
            "ts": event_ts,
            "channel_type": resolved.channel_type,
        }

    def bot_message(
        self,
        channel: str,
        text: str,
        *,
        bot_id: str,
        user: str | None,
        username: str | None,
        thread_ts: str | None,
        blocks: list[JsonDict] | None,
    ) -> JsonDict:
        """Store a message from a bot; an app's bot user posts without subtype, others as `bot_message`."""
        own = bot_id == self.identity.bot_id
        user = self.identity.bot_user_id if own else user
        message = Message(
            channel=channel,
            ts=self.workspace.next_ts(),
            text=text,
            user=user,
            bot_id=bot_id,
            app_id=self.identity.app_id if own else None,
            username=None if user else username,
            thread_ts=thread_ts,
            blocks=blocks,
            subtype=None if user else "bot_message",
            bot_profile=self.identity.bot_profile() if own else None,
        )
        self.workspace.store(message)
        return self.message_event(message.channel, message.ts)

    def _store_user_message(
        self, channel: str, user: str, text: str, files: list[JsonDict], thread_ts: str | None
    ) -> Message:
        message = Message(
            channel=channel,
            ts=self.workspace.next_ts(),
            text=text,
            user=user,
            thread_ts=thread_ts,
            blocks=rich_text_blocks(text) if text else None,
            files=list(files),
            subtype="file_share" if files else None,
            client_msg_id=None if files else str(uuid.uuid4()),
        )
        self.workspace.store(message)
        resolved = self.workspace.channel(message.channel)
        for f in files:
            self.files.record_share(
                str(f.get("id")),
                channel=resolved.id,
                channel_type=resolved.channel_type,
                ts=message.ts,
                thread_ts=message.thread_ts,
            )
        return message
