"""Conversations as the bot sees them: conversations.members and users.conversations (paged with
cursors like Slack's), and conversations.open, which finds or creates the bot's DM with a person.

Each conversation type has its own read scope (channels:read, groups:read, im:read, mpim:read); a
bot token sees a public channel's members from outside it, but a private channel, DM or group DM
only from inside (else `channel_not_found`, as if it did not exist). Opening a DM needs im:write,
a group DM mpim:write.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from typing import TypeVar

from emulators.slack_errors import ApiError
from emulators.slack_identity import AppIdentity, JsonDict
from emulators.slack_web import ApiRequest, MethodSpec
from emulators.slack_workspace import Channel, ChannelType, Workspace

DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000
MAX_OPEN_USERS = 8  # conversations.open: "Needs at most 8 users to open"
WRITE_SCOPES: dict[ChannelType, str] = {"im": "im:write", "mpim": "mpim:write"}
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
            "conversations.open": MethodSpec(self.conversations_open, scopes=frozenset(WRITE_SCOPES.values())),
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

    async def conversations_open(self, req: ApiRequest) -> JsonDict:
        """conversations.open: the bot's DM with one user (group DM with several), created if missing.

        `channel` resumes an existing DM or group DM instead; `return_im` asks for the whole object.
        An existing conversation comes back with `no_op` and `already_open`, as Slack answers.
        """
        channel_ref, users = req.optional("channel"), req.optional("users")
        if channel_ref:
            found = self.workspace.channel(channel_ref)
            if not (found.is_im or found.is_mpim):
                raise ApiError("method_not_supported_for_channel_type")
            if self.identity.bot_user_id not in found.members:
                raise ApiError("channel_not_found")
            return self._opened(found, req, created=False)
        if not users:
            raise ApiError("users_list_not_supplied")
        named = list(dict.fromkeys(u.strip() for u in users.split(",") if u.strip()))
        if any(user not in self.workspace.users for user in named):
            raise ApiError("user_not_found")
        others = [user for user in named if user != self.identity.bot_user_id]
        if not others:
            raise ApiError("not_enough_users")
        if len(others) > MAX_OPEN_USERS:
            raise ApiError("too_many_users")
        kind: ChannelType = "im" if len(others) == 1 else "mpim"
        require_scope(self.identity, WRITE_SCOPES[kind])
        members = {*others, self.identity.bot_user_id}
        for existing in self.workspace.channels.values():
            if existing.channel_type == kind and set(existing.members) == members:
                return self._opened(existing, req, created=False)
        made = self.new_im(others[0]) if kind == "im" else self.new_mpim(others)
        return self._opened(made, req, created=True)

    def new_im(self, user: str, *, channel_id: str | None = None) -> Channel:
        """Add a DM between `user` and the bot."""
        channel_id = channel_id or "D" + secrets.token_hex(5).upper()
        return self.workspace.add_channel(
            Channel(id=channel_id, name=channel_id, is_im=True, members=[user, self.identity.bot_user_id])
        )

    def new_mpim(self, users: Sequence[str], *, channel_id: str | None = None) -> Channel:
        """Add a group DM between `users` and the bot, named as Slack names them (mpdm-alice--bob--matrec-1)."""
        members = list(dict.fromkeys([*users, self.identity.bot_user_id]))
        names = [self.workspace.users[m].name for m in members]
        return self.workspace.add_channel(
            Channel(
                id=channel_id or "C" + secrets.token_hex(5).upper(),
                name="mpdm-" + "--".join(names) + "-1",
                is_private=True,
                is_mpim=True,
                members=members,
            )
        )

    def _opened(self, channel: Channel, req: ApiRequest, *, created: bool) -> JsonDict:
        shown = channel.to_dict(self.identity.bot_user_id) if req.flag("return_im") else {"id": channel.id}
        return {"channel": shown} if created else {"no_op": True, "already_open": True, "channel": shown}

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
