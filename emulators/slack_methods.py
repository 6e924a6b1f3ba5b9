"""The Web API methods the emulator implements, with Slack's argument checks and error codes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from emulators.slack_blocks import (
    MARKDOWN_BLOCK_MAX_CHARS,
    POST_TEXT_MAX_CHARS,
    UPDATE_TEXT_MAX_CHARS,
    check_message,
    parse_blocks,
)
from emulators.slack_directory import HISTORY_SCOPES, READ_SCOPES, require_scope
from emulators.slack_errors import ApiError
from emulators.slack_events import EventFactory
from emulators.slack_files import FileHost, UploadedFile
from emulators.slack_identity import AppIdentity, JsonDict
from emulators.slack_socket import SocketModeServer
from emulators.slack_web import ApiRequest, MethodSpec
from emulators.slack_workspace import Channel, Message, Workspace

STREAM_IDLE_EXPIRY_S = 30.0
ALT_TXT_MAX_CHARS = 1_000
_REACTION_NAME = re.compile(r"[a-z0-9_+'\-]+(::skin-tone-[2-6])?")
_NO_CURSOR: JsonDict = {"next_cursor": ""}


@dataclass
class WebOptions:
    """Switches tests flip at run time."""

    streaming_enabled: bool = False
    stream_idle_expiry_s: float = STREAM_IDLE_EXPIRY_S


def expire_stream(message: Message) -> None:
    """End a stream that sat idle too long: later appends answer message_not_in_streaming_state."""
    message.streaming, message.stream_status = False, "expired"


class WebMethods:
    """Handlers for each implemented method; `specs()` maps method names to them."""

    def __init__(
        self,
        identity: AppIdentity,
        workspace: Workspace,
        files: FileHost,
        events: EventFactory,
        socket: SocketModeServer,
        base_url: Callable[[], str],
        options: WebOptions,
        echo: Callable[[JsonDict], None],
    ) -> None:
        self.identity, self.workspace, self.files, self.events = identity, workspace, files, events
        self.socket, self.base_url, self.options, self.echo = socket, base_url, options, echo

    def specs(self) -> dict[str, MethodSpec]:
        """Every implemented method with its token type and accepted scopes."""
        chat, react = frozenset({"chat:write"}), frozenset({"reactions:write"})
        read = frozenset({"channels:read", "groups:read", "im:read", "mpim:read"})
        history = frozenset({"channels:history", "groups:history", "im:history", "mpim:history"})
        return {
            "auth.test": MethodSpec(self.auth_test),
            "apps.connections.open": MethodSpec(self.apps_connections_open, token_kind="app"),
            "chat.postMessage": MethodSpec(self.chat_post_message, scopes=chat),
            "chat.update": MethodSpec(self.chat_update, scopes=chat),
            "chat.postEphemeral": MethodSpec(self.chat_post_ephemeral, scopes=chat),
            "chat.delete": MethodSpec(self.chat_delete, scopes=chat),
            "chat.getPermalink": MethodSpec(self.chat_get_permalink),
            "chat.startStream": MethodSpec(self.chat_start_stream, scopes=chat),
            "chat.appendStream": MethodSpec(self.chat_append_stream, scopes=chat),
            "chat.stopStream": MethodSpec(self.chat_stop_stream, scopes=chat),
            "reactions.add": MethodSpec(self.reactions_add, scopes=react),
            "reactions.remove": MethodSpec(self.reactions_remove, scopes=react),
            "files.info": MethodSpec(self.files_info, scopes=frozenset({"files:read"})),
            "files.getUploadURLExternal": MethodSpec(self.files_upload_url, scopes=frozenset({"files:write"})),
            "files.completeUploadExternal": MethodSpec(self.files_complete, scopes=frozenset({"files:write"})),
            "conversations.info": MethodSpec(self.conversations_info, scopes=read),
            "conversations.history": MethodSpec(self.conversations_history, scopes=history),
            "conversations.replies": MethodSpec(self.conversations_replies, scopes=history),
            "users.info": MethodSpec(self.users_info, scopes=frozenset({"users:read"})),
            "assistant.threads.setStatus": MethodSpec(self.set_status, scopes=frozenset({"assistant:write", *chat})),
        }

    async def auth_test(self, req: ApiRequest) -> JsonDict:
        """auth.test for the bot token."""
        i = self.identity
        return {
            "url": i.workspace_url,
            "team": i.team_name,
            "user": i.bot_user_name,
            "team_id": i.team_id,
            "user_id": i.bot_user_id,
            "bot_id": i.bot_id,
            "is_enterprise_install": False,
        }

    async def apps_connections_open(self, req: ApiRequest) -> JsonDict:
        """apps.connections.open: a fresh Socket Mode URL (app-level token only)."""
        return {"url": self.socket.issue_url(self.base_url())}

    async def chat_post_message(self, req: ApiRequest) -> JsonDict:
        """chat.postMessage as the bot user."""
        channel = self._member_channel(req.required("channel"))
        text = req.optional("text") or req.optional("markdown_text")
        blocks = parse_blocks(req.params.get("blocks"))
        check_message(
            text,
            blocks,
            text_max_chars=POST_TEXT_MAX_CHARS,
            require_content=not req.params.get("attachments"),
        )
        message = self._store_bot_message(channel, text or "", blocks, req.optional("thread_ts"))
        metadata = req.params.get("metadata")
        message.metadata = metadata if isinstance(metadata, dict) else None
        return {"channel": channel.id, "ts": message.ts, "message": self.workspace.render(message)}

    async def chat_update(self, req: ApiRequest) -> JsonDict:
        """chat.update of one of the bot's own messages."""
        message = self._own_message(req, "ts", refusal="cant_update_message")
        text = req.optional("text") or req.optional("markdown_text")
        blocks = parse_blocks(req.params.get("blocks"))
        if text is None and blocks is None and not req.params.get("attachments"):
            raise ApiError("no_text")
        check_message(text, blocks, text_max_chars=UPDATE_TEXT_MAX_CHARS, require_content=False)
        previous = self.workspace.render(message)
        if message.stream_status == "streaming":
            message.stream_status = "stopped"  # an update ends a stream; an expired one stays expired
        message.streaming = False
        self.workspace.edit(message, text=text, blocks=blocks)
        current = self.workspace.render(message)
        self.echo(self.events.message_changed(message.channel, previous, current))
        return {"channel": message.channel, "ts": message.ts, "text": message.text, "message": current}

    async def chat_post_ephemeral(self, req: ApiRequest) -> JsonDict:
        """chat.postEphemeral: visible to one member; kept in `workspace.ephemerals`, not in history."""
        channel = self._member_channel(req.required("channel"))
        user = req.required("user")
        if user not in channel.members:
            raise ApiError("user_not_in_channel")
        text, blocks = req.optional("text"), parse_blocks(req.params.get("blocks"))
        check_message(text, blocks, text_max_chars=POST_TEXT_MAX_CHARS)
        ts = self.workspace.next_ts()
        self.workspace.ephemerals.append(
            {
                "channel": channel.id,
                "user": user,
                "text": text or "",
                "blocks": blocks,
                "thread_ts": req.optional("thread_ts"),
                "message_ts": ts,
            }
        )
        self.workspace.signal.changed()
        return {"message_ts": ts}

    async def chat_delete(self, req: ApiRequest) -> JsonDict:
        """chat.delete of one of the bot's own messages."""
        message = self._own_message(req, "ts", refusal="cant_delete_message")
        previous = self.workspace.render(message)
        self.workspace.delete(message)
        self.echo(self.events.message_deleted(message.channel, previous))
        return {"channel": message.channel, "ts": message.ts}

    async def chat_get_permalink(self, req: ApiRequest) -> JsonDict:
        """chat.getPermalink."""
        message = self.workspace.message(req.required("channel"), req.required("message_ts"))
        link = f"{self.identity.workspace_url}archives/{message.channel}/p{message.ts.replace('.', '')}"
        return {"channel": message.channel, "permalink": link}

    async def chat_start_stream(self, req: ApiRequest) -> JsonDict:
        """chat.startStream: feature_disabled unless `options.streaming_enabled`."""
        self._require_streaming()
        channel = self._member_channel(req.required("channel"))
        thread_ts = req.required("thread_ts")
        if not channel.is_im and not (req.optional("recipient_team_id") and req.optional("recipient_user_id")):
            raise ApiError(
                "invalid_arguments",
                response_metadata={
                    "messages": ["[ERROR] recipient_team_id and recipient_user_id are required in channels"]
                },
            )
        _stream_content(req)  # refuse an oversized first chunk before anything is posted
        message = self._store_bot_message(channel, "", None, thread_ts)
        message.streaming, message.stream_status = True, "streaming"
        self._append_stream(message, req)
        return {"channel": channel.id, "ts": message.ts}

    async def chat_append_stream(self, req: ApiRequest) -> JsonDict:
        """chat.appendStream to a message still streaming."""
        self._require_streaming()
        message = self._streaming_message(req)
        self._append_stream(message, req)
        message.stream_appends += 1
        return {"channel": message.channel, "ts": message.ts}

    async def chat_stop_stream(self, req: ApiRequest) -> JsonDict:
        """chat.stopStream: final text/chunks/blocks, then the message leaves streaming state."""
        self._require_streaming()
        message = self._streaming_message(req)
        blocks = parse_blocks(req.params.get("blocks"))
        if blocks is not None:
            check_message(None, blocks, text_max_chars=POST_TEXT_MAX_CHARS, require_content=False)
        self._append_stream(message, req)
        if blocks is not None:
            self.workspace.edit(message, text=None, blocks=(message.blocks or []) + blocks)
        message.streaming, message.stream_status = False, "stopped"
        self.workspace.signal.changed()
        return {"channel": message.channel, "ts": message.ts, "message": self.workspace.render(message)}

    async def reactions_add(self, req: ApiRequest) -> JsonDict:
        """reactions.add by the bot user."""
        message, name = self._reaction_target(req)
        self.workspace.react(message, name, self.identity.bot_user_id)
        return {}

    async def reactions_remove(self, req: ApiRequest) -> JsonDict:
        """reactions.remove of the bot user's reaction."""
        message, name = self._reaction_target(req)
        self.workspace.unreact(message, name, self.identity.bot_user_id)
        return {}

    async def files_info(self, req: ApiRequest) -> JsonDict:
        """files.info: the full file object, also for Slack Connect stubs."""
        return {
            "file": self.files.full_object(req.required("file")),
            "comments": [],
            "response_metadata": _NO_CURSOR,
        }

    async def files_upload_url(self, req: ApiRequest) -> JsonDict:
        """files.getUploadURLExternal (step 1 of files_upload_v2): a file id and where to POST the bytes."""
        length = req.required("length")
        if not length.isdigit() or int(length) < 1:
            raise ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] invalid length"]})
        alt_txt = req.optional("alt_txt")
        if alt_txt is not None and len(alt_txt) > ALT_TXT_MAX_CHARS:
            raise ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] alt_txt is too long"]})
        file_id, url = self.files.begin_upload(req.required("filename"), alt_txt, self.identity.bot_user_id)
        return {"upload_url": url, "file_id": file_id}

    async def files_complete(self, req: ApiRequest) -> JsonDict:
        """files.completeUploadExternal (step 3): titles the files and shares them, as one bot message."""
        try:
            entries = json.loads(req.required("files"))
        except json.JSONDecodeError:
            entries = None
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise ApiError("invalid_arguments")
        hosted = [self.files.lookup(str(e.get("id"))) for e in entries]
        for f, entry in zip(hosted, entries, strict=True):
            f.title = str(entry.get("title") or f.name)
        targets = [c for c in [req.optional("channel_id"), *(req.optional("channels") or "").split(",")] if c]
        channels = [self._member_channel(ref) for ref in targets]  # all checked before anything is shared
        thread_ts, comment = req.optional("thread_ts"), req.optional("initial_comment")
        for channel in channels:
            objects = [self.files.full_object(f.id) for f in hosted]
            message = self._store_bot_message(channel, comment or "", None, thread_ts, files=objects)
            for f in hosted:
                self.files.record_share(
                    f.id,
                    channel=channel.id,
                    channel_type=channel.channel_type,
                    ts=message.ts,
                    thread_ts=message.thread_ts,
                )
                self.files.uploads.append(
                    UploadedFile(
                        f.id, f.name, f.title, f.alt_txt, f.content, channel.id, message.thread_ts, message.ts, comment
                    )
                )
        if not channels:
            self.files.uploads += [
                UploadedFile(f.id, f.name, f.title, f.alt_txt, f.content, None, None, None, comment) for f in hosted
            ]
        self.workspace.signal.changed()
        return {"files": [self.files.full_object(f.id) for f in hosted]}

    async def conversations_info(self, req: ApiRequest) -> JsonDict:
        """conversations.info: needs the read scope of the conversation's type; private ones only from inside."""
        channel = self.workspace.channel(req.required("channel"))
        require_scope(self.identity, READ_SCOPES[channel.channel_type])
        if not channel.is_public and self.identity.bot_user_id not in channel.members:
            raise ApiError("channel_not_found")
        return {"channel": channel.to_dict(self.identity.bot_user_id)}

    async def conversations_history(self, req: ApiRequest) -> JsonDict:
        """conversations.history, newest first, one page."""
        channel = self._member_channel(req.required("channel"))
        require_scope(self.identity, HISTORY_SCOPES[channel.channel_type])
        found = [self.workspace.render(m) for m in reversed(self.workspace.history(channel.id))]
        return {"messages": found, "has_more": False, "pin_count": 0, "response_metadata": _NO_CURSOR}

    async def conversations_replies(self, req: ApiRequest) -> JsonDict:
        """conversations.replies: the parent then its replies, one page."""
        channel = self._member_channel(req.required("channel"))
        require_scope(self.identity, HISTORY_SCOPES[channel.channel_type])
        found = self.workspace.thread(channel.id, req.required("ts"))
        if not found:
            raise ApiError("thread_not_found")
        return {
            "messages": [self.workspace.render(m) for m in found],
            "has_more": False,
            "response_metadata": _NO_CURSOR,
        }

    async def users_info(self, req: ApiRequest) -> JsonDict:
        """users.info."""
        user = self.workspace.users.get(req.required("user"))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user.to_dict()}

    async def set_status(self, req: ApiRequest) -> JsonDict:
        """assistant.threads.setStatus; an empty status clears it."""
        status = req.params.get("status")
        if status is None:
            req.required("status")
        self.workspace.set_status(req.required("channel_id"), req.required("thread_ts"), str(status))
        return {}

    def post_as_bot(self, channel: Channel, text: str, blocks: list[JsonDict] | None, thread_ts: str | None) -> Message:
        """Store a message from the bot user (e.g. an in_channel response to a slash command)."""
        return self._store_bot_message(channel, text, blocks, thread_ts)

    def _member_channel(self, ref: str) -> Channel:
        channel = self.workspace.channel(ref)
        if self.identity.bot_user_id not in channel.members:
            raise ApiError("not_in_channel")
        return channel

    def _own_message(self, req: ApiRequest, ts_field: str, *, refusal: str) -> Message:
        message = self.workspace.message(req.required("channel"), req.required(ts_field))
        if message.user != self.identity.bot_user_id:
            raise ApiError(refusal)
        return message

    def _store_bot_message(
        self,
        channel: Channel,
        text: str,
        blocks: list[JsonDict] | None,
        thread_ts: str | None,
        files: list[JsonDict] | None = None,
    ) -> Message:
        i = self.identity
        message = Message(
            channel=channel.id,
            ts=self.workspace.next_ts(),
            text=text,
            user=i.bot_user_id,
            bot_id=i.bot_id,
            app_id=i.app_id,
            thread_ts=thread_ts,
            blocks=blocks,
            files=files or [],
            subtype="file_share" if files else None,
            bot_profile=i.bot_profile(),
        )
        self.workspace.store(message)
        self.echo(self.events.message_event(channel.id, message.ts))
        return message

    def _reaction_target(self, req: ApiRequest) -> tuple[Message, str]:
        name = req.required("name")
        if not _REACTION_NAME.fullmatch(name):
            raise ApiError("invalid_name")
        return self.workspace.message(req.required("channel"), req.required("timestamp")), name

    def _require_streaming(self) -> None:
        if not self.options.streaming_enabled:
            raise ApiError("feature_disabled")

    def _streaming_message(self, req: ApiRequest) -> Message:
        message = self._own_message(req, "ts", refusal="cant_update_message")
        idle_s = time.monotonic() - message.last_stream_write
        if message.stream_status == "streaming" and idle_s > self.options.stream_idle_expiry_s:
            expire_stream(message)
        if message.stream_status != "streaming":
            raise ApiError("message_not_in_streaming_state")
        return message

    def _append_stream(self, message: Message, req: ApiRequest) -> None:
        markdown, chunk_list = _stream_content(req)
        message.stream_chunks.extend(chunk_list)
        message.last_stream_write = time.monotonic()
        if markdown or chunk_list:
            self.workspace.edit(message, text=message.text + markdown, blocks=None)


def _stream_content(req: ApiRequest) -> tuple[str, list[JsonDict]]:
    """The markdown and chunks one streaming call adds; msg_too_long past 12,000 characters."""
    chunks = req.params.get("chunks")
    chunk_list = [c for c in chunks if isinstance(c, dict)] if isinstance(chunks, list) else []
    markdown = req.optional("markdown_text") or ""
    markdown += "".join(str(c.get("text", "")) for c in chunk_list if c.get("type") == "markdown_text")
    if len(markdown) > MARKDOWN_BLOCK_MAX_CHARS:
        raise ApiError("msg_too_long")
    return markdown, chunk_list
