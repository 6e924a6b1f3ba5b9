"""The emulated workspace: channels, users, and messages with their edit history and reactions."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Literal

from emulators.slack_errors import ApiError
from emulators.slack_identity import AppIdentity, JsonDict
from emulators.slack_signal import StateSignal

ChannelType = Literal["channel", "group", "im", "mpim"]
StreamStatus = Literal["streaming", "stopped", "expired"]


@dataclass(frozen=True)
class MessageVersion:
    """One state a message went through: its text and blocks, and when (monotonic seconds)."""

    text: str
    blocks: list[JsonDict] | None
    at: float


@dataclass
class Message:
    """A message as the workspace stores it; `versions` holds every text/blocks it had, in order."""

    channel: str
    ts: str
    text: str
    user: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    username: str | None = None
    thread_ts: str | None = None
    parent_user_id: str | None = None
    blocks: list[JsonDict] | None = None
    files: list[JsonDict] = field(default_factory=list)
    subtype: str | None = None
    metadata: JsonDict | None = None
    client_msg_id: str | None = None
    bot_profile: JsonDict | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    versions: list[MessageVersion] = field(default_factory=list)
    edited: JsonDict | None = None
    deleted: bool = False
    streaming: bool = False
    stream_status: StreamStatus | None = None
    stream_appends: int = 0
    stream_chunks: list[JsonDict] = field(default_factory=list)
    last_stream_write: float = 0.0

    @property
    def is_reply(self) -> bool:
        """True for a message inside a thread that is not the thread's parent."""
        return self.thread_ts is not None and self.thread_ts != self.ts


@dataclass(frozen=True)
class StreamState:
    """A streamed message as a test sees it: whether it still streams, its text, how many appends."""

    status: StreamStatus
    text: str
    appends: int
    chunks: list[JsonDict]
    blocks: list[JsonDict] | None


@dataclass
class Channel:
    """A public channel, private channel (group), DM or group DM (mpim), with its members and messages by ts."""

    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    is_mpim: bool = False
    members: list[str] = field(default_factory=list)
    created: int = 1700000000
    creator: str = "U1"
    messages: dict[str, Message] = field(default_factory=dict)

    @property
    def channel_type(self) -> ChannelType:
        """The `channel_type` Slack puts in message events."""
        if self.is_im:
            return "im"
        if self.is_mpim:
            return "mpim"
        return "group" if self.is_private else "channel"

    @property
    def is_public(self) -> bool:
        """True for a public channel: anyone in the workspace may read it and list its members."""
        return not (self.is_im or self.is_mpim or self.is_private)

    def to_dict(self, viewer: str) -> JsonDict:
        """The conversation object conversations.info returns, as seen by `viewer`."""
        if self.is_im:
            other = next((m for m in self.members if m != viewer), viewer)
            return {
                "id": self.id,
                "created": self.created,
                "is_im": True,
                "is_org_shared": False,
                "user": other,
                "is_user_deleted": False,
                "priority": 0,
            }
        empty = {"value": "", "creator": "", "last_set": 0}
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": self.is_public,
            "is_group": False,
            "is_im": False,
            "is_mpim": self.is_mpim,
            "is_private": not self.is_public,
            "created": self.created,
            "is_archived": False,
            "is_general": self.name == "general",
            "unlinked": 0,
            "name_normalized": self.name,
            "is_shared": False,
            "is_org_shared": False,
            "is_pending_ext_shared": False,
            "pending_shared": [],
            "context_team_id": "",
            "updated": self.created * 1000,
            "parent_conversation": None,
            "creator": self.creator,
            "is_ext_shared": False,
            "shared_team_ids": [],
            "pending_connected_team_ids": [],
            "is_member": viewer in self.members,
            "topic": dict(empty),
            "purpose": dict(empty),
            "previous_names": [],
            "num_members": len(self.members),
        }


@dataclass(frozen=True)
class User:
    """A workspace member; users.info returns `to_dict()`."""

    id: str
    name: str
    team_id: str
    real_name: str = ""
    is_bot: bool = False
    bot_id: str | None = None

    def to_dict(self) -> JsonDict:
        """The user object users.info returns."""
        real = self.real_name or self.name
        profile: JsonDict = {
            "real_name": real,
            "display_name": self.name,
            "real_name_normalized": real,
            "display_name_normalized": self.name,
            "team": self.team_id,
            "image_48": "",
            "image_72": "",
        }
        if self.bot_id:
            profile["bot_id"] = self.bot_id
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "deleted": False,
            "real_name": real,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1700000000,
        }


class Workspace:
    """Channels, users and messages; every change signals `StateSignal`."""

    def __init__(self, identity: AppIdentity, signal: StateSignal) -> None:
        self.identity = identity
        self.signal = signal
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, User] = {}
        self.ephemerals: list[JsonDict] = []
        self.thread_statuses: dict[tuple[str, str], str] = {}
        self.status_history: list[tuple[str, str, str]] = []
        self._last_ts_us = 0

    def next_ts(self) -> str:
        """A fresh message ts from the wall clock, strictly greater than every earlier one."""
        self._last_ts_us = max(time.time_ns() // 1000, self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def add_user(self, user_id: str, name: str, *, is_bot: bool = False, bot_id: str | None = None) -> User:
        """Register a member of the workspace."""
        user = User(id=user_id, name=name, team_id=self.identity.team_id, is_bot=is_bot, bot_id=bot_id)
        self.users[user_id] = user
        self.signal.changed()
        return user

    def add_channel(self, channel: Channel) -> Channel:
        """Register a conversation."""
        self.channels[channel.id] = channel
        self.signal.changed()
        return channel

    def channel(self, ref: str) -> Channel:
        """The conversation with this id (or `#name`/`name`); ApiError channel_not_found otherwise."""
        if ref in self.channels:
            return self.channels[ref]
        name = ref.removeprefix("#")
        for channel in self.channels.values():
            if channel.name == name and not channel.is_im:
                return channel
        raise ApiError("channel_not_found")

    def message(self, channel: str, ts: str) -> Message:
        """The live (not deleted) message at `ts`; ApiError message_not_found otherwise."""
        found = self.channel(channel).messages.get(ts)
        if found is None or found.deleted:
            raise ApiError("message_not_found")
        return found

    def thread_root(self, channel: Channel, thread_ts: str) -> str:
        """The parent ts a reply should attach to (a reply's ts resolves to its own parent)."""
        parent = channel.messages.get(thread_ts)
        if parent is not None and parent.thread_ts is not None:
            return parent.thread_ts
        return thread_ts

    def store(self, message: Message) -> Message:
        """Add a new message, set its thread fields and first version, and signal the change."""
        channel = self.channel(message.channel)
        message.channel = channel.id
        if message.thread_ts is not None:
            message.thread_ts = self.thread_root(channel, message.thread_ts)
            parent = channel.messages.get(message.thread_ts)
            if parent is not None:
                parent.thread_ts = parent.ts
                message.parent_user_id = parent.user
        message.versions.append(MessageVersion(message.text, copy.deepcopy(message.blocks), time.monotonic()))
        channel.messages[message.ts] = message
        if message.user == self.identity.bot_user_id:
            # Slack clears an assistant status when the bot replies in that thread.
            self.thread_statuses.pop((channel.id, message.thread_ts or message.ts), None)
        self.signal.changed()
        return message

    def edit(self, message: Message, *, text: str | None, blocks: list[JsonDict] | None) -> None:
        """Replace text and/or blocks (omitted ones are kept) and record the new version."""
        if text is not None:
            message.text = text
        if blocks is not None:
            message.blocks = blocks or None
        message.edited = {"user": message.user or "", "ts": self.next_ts()}
        message.versions.append(MessageVersion(message.text, copy.deepcopy(message.blocks), time.monotonic()))
        self.signal.changed()

    def delete(self, message: Message) -> None:
        """Mark a message deleted; it disappears from history and threads but keeps its versions."""
        message.deleted = True
        self.signal.changed()

    def react(self, message: Message, name: str, user: str) -> None:
        """Add `user`'s reaction `name`; ApiError already_reacted if present."""
        users = message.reactions.setdefault(name, [])
        if user in users:
            raise ApiError("already_reacted")
        users.append(user)
        self.signal.changed()

    def unreact(self, message: Message, name: str, user: str) -> None:
        """Remove `user`'s reaction `name`; ApiError no_reaction if absent."""
        users = message.reactions.get(name, [])
        if user not in users:
            raise ApiError("no_reaction")
        users.remove(user)
        if not users:
            del message.reactions[name]
        self.signal.changed()

    def set_status(self, channel: str, thread_ts: str, status: str) -> None:
        """Set (or, with an empty status, clear) the assistant status shown under a thread."""
        key = (self.channel(channel).id, thread_ts)
        if status:
            self.thread_statuses[key] = status
        else:
            self.thread_statuses.pop(key, None)
        self.status_history.append((key[0], thread_ts, status))
        self.signal.changed()

    def history(self, channel: str) -> list[Message]:
        """Top-level messages of a channel (thread parents included, replies not), oldest first."""
        found = self.channel(channel).messages.values()
        return [m for m in found if not m.deleted and not m.is_reply]

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The parent at `ts` and its replies, oldest first (deleted messages left out)."""
        resolved = self.channel(channel)
        root = self.thread_root(resolved, ts)
        return [m for m in resolved.messages.values() if not m.deleted and (m.ts == root or m.thread_ts == root)]

    def render(self, message: Message) -> JsonDict:
        """The message as the Web API and events show it."""
        out: JsonDict = {"type": "message"}
        if message.subtype:
            out["subtype"] = message.subtype
        optional = {
            "user": message.user,
            "bot_id": message.bot_id,
            "app_id": message.app_id,
            "username": message.username,
            "client_msg_id": message.client_msg_id,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        out["text"] = message.text
        out["ts"] = message.ts
        out["team"] = self.identity.team_id
        if message.bot_profile is not None:
            out["bot_profile"] = message.bot_profile
        if message.blocks is not None:
            out["blocks"] = message.blocks
        if message.files:
            out.update({"files": message.files, "upload": False, "display_as_bot": False})
        if message.metadata is not None:
            out["metadata"] = message.metadata
        if message.edited is not None:
            out["edited"] = message.edited
        if message.thread_ts is not None:
            out["thread_ts"] = message.thread_ts
            if message.is_reply and message.parent_user_id:
                out["parent_user_id"] = message.parent_user_id
            else:
                out.update(self._thread_summary(message))
        if message.reactions:
            out["reactions"] = [{"name": n, "users": list(u), "count": len(u)} for n, u in message.reactions.items()]
        return copy.deepcopy(out)

    def _thread_summary(self, parent: Message) -> JsonDict:
        replies = [m for m in self.thread(parent.channel, parent.ts) if m.ts != parent.ts]
        users = list(dict.fromkeys(m.user or m.bot_id or "" for m in replies))
        summary: JsonDict = {
            "reply_count": len(replies),
            "reply_users_count": len(users),
            "reply_users": users,
            "is_locked": False,
            "subscribed": False,
        }
        if replies:
            summary["latest_reply"] = replies[-1].ts
        return summary
