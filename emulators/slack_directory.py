"""Membership look-ups: conversations.members and users.conversations, paged with cursors like Slack's.

Each conversation type has its own read scope (channels:read, groups:read, im:read, mpim:read); a
bot token sees a public channel's members from outside it, but a private channel, DM or group DM
only from inside (else `channel_not_found`, as if it did not exist).
"""

from __future__ import annotations

import base64
import binascii
from typing import TypeVar

from emulators.slack_errors import ApiError
from emulators.slack_identity import AppIdentity, JsonDict
from emulators.slack_web import ApiRequest, MethodSpec
from emulators.slack_workspace import Channel, ChannelType, Workspace

DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000
READ_SCOPES: dict[ChannelType, str] = {
    "channel": "channels:read",
    "group": "groups:read",
    "im": "im:read",
    "mpim": "mpim:read",
}
HISTORY_SCOPES: dict[ChannelType, str] = {
    "channel": "channels:history",
    "group": "groups:history",
    "im": "im:history",
    "mpim": "mpim:history",
}
_Item = TypeVar("_Item")
_TYPE_NAMES: dict[str, ChannelType] = {
    "public_channel": "channel",
    "private_channel": "group",
    "im": "im",
    "mpim": "mpim",
}


class Directory:
    """Serves the membership methods over the workspace, as the bot is allowed to see it."""

    def __init__(self, identity: AppIdentity, workspace: Workspace) -> None:
        self.identity = identity
        self.workspace = workspace

    def specs(self) -> dict[str, MethodSpec]:
        """The methods with their any-of scopes (each conversation type checks its own one)."""
        read = frozenset(READ_SCOPES.values())
        return {
            "conversations.members": MethodSpec(self.conversations_members, scopes=read),
            "users.conversations": MethodSpec(self.users_conversations, scopes=read),
        }

    async def conversations_members(self, req: ApiRequest) -> JsonDict:
        """conversations.members: member ids, one page at a time."""
        channel = self.workspace.channel(req.required("channel"))
        self._require_scope(channel.channel_type)
        if not self.bot_can_see(channel):
            raise ApiError("channel_not_found")
        page, cursor = _page(list(channel.members), req)
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    async def users_conversations(self, req: ApiRequest) -> JsonDict:
        """users.conversations: the conversations `user` (default: the bot) is in that the bot can see."""
        user = req.optional("user") or self.identity.bot_user_id
        if user not in self.workspace.users:
            raise ApiError("user_not_found")
        kinds = _types(req.optional("types"))
        for kind in kinds:
            self._require_scope(kind)
        found = [
            c.to_dict(self.identity.bot_user_id)
            for c in self.workspace.channels.values()
            if c.channel_type in kinds and user in c.members and self.bot_can_see(c)
        ]
        page, cursor = _page(found, req)
        return {"channels": page, "response_metadata": {"next_cursor": cursor}}

    def bot_can_see(self, channel: Channel) -> bool:
        """A public channel is visible to the bot; anything else only if it is a member."""
        return channel.is_public or self.identity.bot_user_id in channel.members

    def _require_scope(self, kind: ChannelType) -> None:
        require_scope(self.identity, READ_SCOPES[kind])


def require_scope(identity: AppIdentity, needed: str) -> None:
    """Slack's missing_scope answer when the token lacks `needed` (the per-type check after the router's any-of)."""
    if needed not in identity.scopes:
        raise ApiError("missing_scope", needed=needed, provided=",".join(sorted(identity.scopes)))


def _types(value: str | None) -> list[ChannelType]:
    if not value:
        return ["channel"]
    kinds: list[ChannelType] = []
    for name in value.split(","):
        kind = _TYPE_NAMES.get(name.strip())
        if kind is None:
            raise ApiError("invalid_types")
        kinds.append(kind)
    return kinds


def _page(items: list[_Item], req: ApiRequest) -> tuple[list[_Item], str]:
    """One page from `cursor` (opaque base64 like Slack's), and the cursor of the next ("" at the end)."""
    raw_limit = req.optional("limit")
    try:
        limit = int(raw_limit) if raw_limit else DEFAULT_PAGE_LIMIT
    except ValueError:
        raise ApiError("invalid_limit") from None
    if limit < 1:
        limit = DEFAULT_PAGE_LIMIT
    limit = min(limit, MAX_PAGE_LIMIT)
    start = _offset(req.optional("cursor"))
    page = items[start : start + limit]
    end = start + len(page)
    cursor = base64.b64encode(f"offset:{end}".encode()).decode() if end < len(items) else ""
    return page, cursor


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        kind, _, number = base64.b64decode(cursor, validate=True).decode().partition(":")
        if kind == "offset" and number.isdigit():
            return int(number)
    except (binascii.Error, UnicodeDecodeError):
        pass
    raise ApiError("invalid_cursor")
