"""A loopback Slack for tests: Web API, file hosting, Socket Mode and signed HTTP delivery.

The real slack_sdk / slack_bolt clients talk to it unchanged, pointed at it by base URL:

    async with SlackEmulator() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        app = AsyncApp(token=slack.bot_token, client=client)
        handler = AsyncSocketModeHandler(app, slack.app_token)   # apps.connections.open -> ws://.../socket
        await handler.connect_async()
        envelope_id = await slack.deliver_event(slack.upload_message("C0GENERAL", "U1", "", [file]))
        await slack.wait_for_ack(envelope_id)

People interact as in Slack: `click` presses a button or picks an option in a message the bot
posted (the block_actions payload is built from the stored blocks), `click_view` does so in the
App Home tab, `slash_command` runs /matrec, `open_home` opens the Home tab. These go over the socket,
or as signed HTTP POSTs once `set_http_target` names the request URLs. What the app answers through
acks and response_urls is in `responses(user)`; views in `home_view` / `opened_views`; streams in
`stream_state`; uploads in `uploaded_files`.

Failures come scripted: `ratelimit_next` answers 429s (`use_slack_rate_limits` applies Slack's
tiers), `fail_transport` drops, resets or stalls the next calls of a method (no HTTP answer at all),
`message_deleted` removes any message, the bot's too, `expire_streams` / `expire_triggers` age
streams and trigger_ids past Slack's limits.

The workspace starts with users U1 (alice), U2 (bob), the bot user, and #general (C0GENERAL) holding
all of them; `add_channel`, `add_im` and `add_mpim` add conversations. Every state change wakes
`wait_until`, so tests wait on conditions, never on sleeps.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType

from aiohttp import web

from emulators.slack_delivery import AppDelivery
from emulators.slack_directory import Directory
from emulators.slack_events import EventFactory, rich_text_blocks
from emulators.slack_faults import STALL_S, TransportFault, TransportFaults
from emulators.slack_files import FileDownload, FileHost, HostedFile, UploadedFile
from emulators.slack_foreign import ForeignHost, ForeignRequest
from emulators.slack_http import HttpDelivery, post_signed, url_verification_body
from emulators.slack_identity import (
    DEFAULT_BOT_SCOPES,
    TEST_APP_TOKEN,
    TEST_BOT_TOKEN,
    AppIdentity,
    JsonDict,
)
from emulators.slack_interactive import ResponseUrls, Triggers
from emulators.slack_loopback import LoopbackServer
from emulators.slack_methods import STREAM_IDLE_EXPIRY_S, WebMethods, WebOptions, expire_stream
from emulators.slack_ratelimit import RateLimits
from emulators.slack_signal import StateSignal
from emulators.slack_socket import SOCKET_PATH, Ack, Delivery, SocketConnection, SocketModeServer
from emulators.slack_views import Views
from emulators.slack_web import ApiCall, WebApi
from emulators.slack_workspace import Channel, Message, MessageVersion, StreamState, User, Workspace

__all__ = [
    "Ack",
    "ApiCall",
    "Channel",
    "Delivery",
    "FileDownload",
    "ForeignHost",
    "ForeignRequest",
    "HttpDelivery",
    "LoopbackServer",
    "Message",
    "MessageVersion",
    "SlackEmulator",
    "SocketConnection",
    "StreamState",
    "TransportFault",
    "UploadedFile",
    "User",
]

DEFAULT_CHANNEL_ID = "C0GENERAL"
DEFAULT_USER_ID = "U1"
WAIT_TIMEOUT_S = 5.0
URL_VERIFICATION_CHALLENGE = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"


class SlackEmulator:
    """One aiohttp server on 127.0.0.1 that plays Slack for the real SDKs; see the module docstring."""

    def __init__(
        self,
        *,
        bot_token: str = TEST_BOT_TOKEN,
        app_token: str = TEST_APP_TOKEN,
        team_id: str = "T0TEST",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        app_id: str = "ATEST",
        scopes: Iterable[str] = DEFAULT_BOT_SCOPES,
        echo_bot_messages: bool = False,
        seed: int = 0,
    ) -> None:
        self.identity = AppIdentity(
            bot_token=bot_token,
            app_token=app_token,
            team_id=team_id,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
            app_id=app_id,
            scopes=frozenset(scopes),
        )
        self.echo_bot_messages = echo_bot_messages
        self.signal = StateSignal()
        self.workspace = Workspace(self.identity, self.signal)
        self.files = FileHost(self.identity, self.signal, lambda: self.base_url)
        self.events = EventFactory(self.identity, self.workspace, self.files)
        self.socket = SocketModeServer(self.identity, self.signal, random.Random(seed))
        self.limits = RateLimits()
        self.faults = TransportFaults(self.signal)
        self.options = WebOptions()
        methods = WebMethods(
            self.identity,
            self.workspace,
            self.files,
            self.events,
            self.socket,
            lambda: self.base_url,
            self.options,
            self._echo,
        )
        self.triggers = Triggers()
        self.response_urls = ResponseUrls(
            self.identity, self.workspace, self.signal, lambda: self.base_url, methods.post_as_bot
        )
        self.views = Views(self.identity, self.workspace, self.triggers, self.signal)
        self.directory = Directory(self.identity, self.workspace)
        specs = {**methods.specs(), **self.views.specs(), **self.directory.specs()}
        self.web = WebApi(self.identity, specs, self.limits, self.faults, self.signal)
        self.delivery = AppDelivery(
            self.identity,
            self.workspace,
            self.events,
            self.socket,
            self.triggers,
            self.response_urls,
            self.views,
            WAIT_TIMEOUT_S,
        )
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self.web.handle)
        app.router.add_get(SOCKET_PATH, self.socket.handle)
        app.router.add_routes(self.files.routes())
        app.router.add_routes(self.response_urls.routes())
        self._server = LoopbackServer(app)
        self._echo_tasks: set[asyncio.Task[str]] = set()
        self.workspace.add_user(bot_user_id, self.identity.bot_user_name, is_bot=True, bot_id=bot_id)
        self.workspace.add_user(DEFAULT_USER_ID, "alice")
        self.workspace.add_user("U2", "bob")
        self.add_channel("general", channel_id=DEFAULT_CHANNEL_ID)

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> str:
        """Start serving on 127.0.0.1:<free port>; returns the base URL (no trailing slash)."""
        return await self._server.start()

    async def stop(self) -> None:
        """Close open sockets (quickly, even with a client connected or a call stalled) and stop serving."""
        self.faults.release()
        for task in list(self._echo_tasks):
            task.cancel()
        await asyncio.gather(*self._echo_tasks, return_exceptions=True)
        await self.socket.close_all()
        await self._server.stop()

    async def __aenter__(self) -> SlackEmulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` while running."""
        return self._server.base_url

    @property
    def api_url(self) -> str:
        """The `base_url` to give AsyncWebClient: `{base}/api/`."""
        return f"{self.base_url}/api/"

    @property
    def bot_token(self) -> str:
        """The bot token (xoxb-) the Web API and file hosts accept."""
        return self.identity.bot_token

    @property
    def app_token(self) -> str:
        """The app-level token (xapp-) apps.connections.open accepts."""
        return self.identity.app_token

    @property
    def bot_user_id(self) -> str:
        """The bot's user id (auth.test user_id)."""
        return self.identity.bot_user_id

    # --- workspace -------------------------------------------------------------------------------

    def add_user(self, user_id: str, name: str, *, is_bot: bool = False) -> User:
        """Add a workspace member."""
        return self.workspace.add_user(user_id, name, is_bot=is_bot)

    def add_channel(
        self,
        name: str,
        *,
        channel_id: str | None = None,
        is_private: bool = False,
        members: Iterable[str] | None = None,
    ) -> Channel:
        """Add a channel; members default to every user, the bot included."""
        chosen = list(members) if members is not None else list(self.workspace.users)
        return self.workspace.add_channel(
            Channel(
                id=channel_id or "C" + secrets.token_hex(5).upper(),
                name=name,
                is_private=is_private,
                members=chosen,
            )
        )

    def add_im(self, user: str, *, channel_id: str | None = None) -> Channel:
        """Add the DM between `user` and the bot."""
        return self.directory.new_im(user, channel_id=channel_id)

    def add_mpim(self, users: Sequence[str], *, channel_id: str | None = None) -> Channel:
        """Add a group DM (mpim) between `users` and the bot; events there carry channel_type "mpim"."""
        return self.directory.new_mpim(users, channel_id=channel_id)

    def message(self, channel: str, ts: str) -> Message:
        """The stored message at `ts` (deleted ones too: see `.deleted`); KeyError if none."""
        return self.workspace.channel(channel).messages[ts]

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The current thread under the message at `ts`: parent first, then replies by ts."""
        return self.workspace.thread(channel, ts)

    def history(self, channel: str) -> list[Message]:
        """Top-level messages of a channel, oldest first."""
        return self.workspace.history(channel)

    def reactions(self, channel: str, ts: str) -> dict[str, list[str]]:
        """Reaction name -> users who reacted, for the message at `ts`."""
        return {name: list(users) for name, users in self.message(channel, ts).reactions.items()}

    def versions(self, channel: str, ts: str) -> list[MessageVersion]:
        """Every text/blocks the message at `ts` went through, in order (the post is the first)."""
        return list(self.message(channel, ts).versions)

    def thread_status(self, channel: str, thread_ts: str) -> str | None:
        """The assistant status currently shown under a thread (assistant.threads.setStatus)."""
        return self.workspace.thread_statuses.get((self.workspace.channel(channel).id, thread_ts))

    @property
    def ephemerals(self) -> list[JsonDict]:
        """Every chat.postEphemeral, in order."""
        return self.workspace.ephemerals

    # --- Web API -------------------------------------------------------------------------------

    @property
    def calls(self) -> list[ApiCall]:
        """Every Web API call, in arrival order."""
        return self.web.calls

    def calls_to(self, method: str) -> list[ApiCall]:
        """The recorded calls to one method."""
        return [c for c in self.web.calls if c.method == method]

    def rate_limit(
        self,
        method: str,
        *,
        per_s: float,
        burst: int = 1,
        retry_after_s: int | None = None,
        per_channel: bool = False,
    ) -> None:
        """Token-bucket limit on `method`: 429 + Retry-After once `burst` calls outrun `per_s`."""
        self.limits.limit(method, per_s=per_s, burst=burst, retry_after_s=retry_after_s, per_channel=per_channel)

    def ratelimit_next(self, method: str, count: int = 1, *, retry_after_s: int = 1) -> None:
        """Answer the next `count` calls to `method` with 429 and `Retry-After: retry_after_s`."""
        self.limits.fail_next(method, count, retry_after_s=retry_after_s)

    def clear_rate_limits(self, method: str | None = None) -> None:
        """Lift the limits on one method, or on all."""
        self.limits.clear(method)

    @property
    def ratelimited_count(self) -> Counter[str]:
        """429s served, by method."""
        return self.limits.served

    def fail_transport(self, method: str, fault: TransportFault, count: int = 1, *, stall_s: float = STALL_S) -> None:
        """Make the next `count` calls to `method` get no HTTP answer: the connection drops, resets or stalls."""
        self.faults.fail_next(method, fault, count, stall_s=stall_s)

    def clear_transport_faults(self, method: str | None = None) -> None:
        """Forget the transport faults still queued for one method, or for all."""
        self.faults.clear(method)

    @property
    def transport_faults_served(self) -> Counter[str]:
        """Transport faults inflicted so far, by method (counted when the call arrives)."""
        return self.faults.served

    def use_slack_rate_limits(
        self,
        *,
        burst: int | None = None,
        per_minute: Mapping[int, float] | None = None,
        posts_per_s: float | None = None,
    ) -> None:
        """Limit every method by Slack's documented tier (Tier 2: 20/min, 3: 50/min, 4: 100/min...).

        Off by default so tests only meet limits they ask for; `burst` (default: a minute's worth)
        is how many calls pass at once before the per-minute refill applies; `per_minute` (tier ->
        calls a minute) and `posts_per_s` (chat.postMessage per channel) change Slack's rates.
        """
        self.limits.use_slack_tiers(burst=burst, per_minute=per_minute, posts_per_s=posts_per_s)

    def enable_streaming(self, enabled: bool = True, *, idle_expiry_s: float = STREAM_IDLE_EXPIRY_S) -> None:
        """Let chat.startStream/appendStream/stopStream work (default: they answer feature_disabled)."""
        self.options.streaming_enabled = enabled
        self.options.stream_idle_expiry_s = idle_expiry_s

    def stream_state(self, channel: str, ts: str) -> StreamState:
        """Where a streamed message stands: streaming, stopped or expired, its text and append count."""
        message = self.message(channel, ts)
        assert message.stream_status is not None, f"{ts} was not started with chat.startStream"
        return StreamState(
            message.stream_status, message.text, message.stream_appends, list(message.stream_chunks), message.blocks
        )

    def expire_streams(self) -> int:
        """Expire every open stream now, as ~30 s of idleness would; returns how many were open."""
        open_streams = [
            m for c in self.workspace.channels.values() for m in c.messages.values() if m.stream_status == "streaming"
        ]
        for message in open_streams:
            expire_stream(message)
        self.signal.changed()
        return len(open_streams)

    # --- files ---------------------------------------------------------------------------------

    def add_file(
        self,
        content: bytes,
        name: str,
        mimetype: str,
        filetype: str,
        *,
        user: str = DEFAULT_USER_ID,
        channel: str = DEFAULT_CHANNEL_ID,
        redirect_to: str | None = None,
        connect_stub: bool = False,
        title: str | None = None,
    ) -> JsonDict:
        """Host a file; returns the object a message carries (a `check_file_info` stub if connect_stub)."""
        resolved = self.workspace.channel(channel)
        hosted = HostedFile(
            id=self.files.new_id(),
            name=name,
            title=title or name,
            mimetype=mimetype,
            filetype=filetype,
            content=content,
            user=user,
            created=int(time.time()),
            channels={resolved.id: resolved.channel_type},
            redirect_to=redirect_to,
            connect_stub=connect_stub,
        )
        return self.files.add(hosted)

    def file_object(self, file_id: str) -> JsonDict:
        """The full file object (what files.info returns)."""
        return self.files.full_object(file_id)

    def uploaded_files(self, channel: str | None = None) -> list[UploadedFile]:
        """What the app uploaded (files upload v2), in order; only those shared in `channel` if given."""
        if channel is None:
            return list(self.files.uploads)
        resolved = self.workspace.channel(channel).id
        return [u for u in self.files.uploads if u.channel == resolved]

    @property
    def downloads(self) -> list[FileDownload]:
        """Every request to a private file URL, in order."""
        return self.files.downloads

    # --- events --------------------------------------------------------------------------------

    def upload_message(
        self, channel: str, user: str, text: str, files: list[JsonDict], thread_ts: str | None = None
    ) -> JsonDict:
        """Store a person's upload and return its `message` event (subtype file_share)."""
        return self.events.user_message(channel, user, text, files=files, thread_ts=thread_ts)

    def user_message(self, channel: str, user: str, text: str, *, thread_ts: str | None = None) -> JsonDict:
        """Store a typed message and return its `message` event."""
        return self.events.user_message(channel, user, text, thread_ts=thread_ts)

    def mention_event(
        self,
        channel: str,
        user: str,
        text: str = "",
        *,
        files: list[JsonDict] | None = None,
        thread_ts: str | None = None,
    ) -> JsonDict:
        """Store a message mentioning the bot and return its `app_mention` event."""
        return self.events.mention(channel, user, text, files=files, thread_ts=thread_ts)

    def message_event(self, channel: str, ts: str) -> JsonDict:
        """The `message` event of a stored message (e.g. the one that accompanies an app_mention)."""
        return self.events.message_event(channel, ts)

    def message_changed(
        self, channel: str, ts: str, *, text: str | None = None, blocks: list[JsonDict] | None = None
    ) -> JsonDict:
        """Edit a stored message (if text/blocks given) and return the `message_changed` event."""
        message = self.workspace.message(channel, ts)
        previous = self.workspace.render(message)
        if text is not None and blocks is None and message.bot_id is None:
            blocks = rich_text_blocks(text) if text else []  # a person's client re-renders its rich_text
        if text is not None or blocks is not None:
            self.workspace.edit(message, text=text, blocks=blocks)
        return self.events.message_changed(channel, previous, self.workspace.render(message))

    def message_deleted(self, channel: str, ts: str) -> JsonDict:
        """Delete a stored message (a person's, or the bot's as an admin can) and return `message_deleted`."""
        message = self.workspace.message(channel, ts)
        previous = self.workspace.render(message)
        self.workspace.delete(message)
        return self.events.message_deleted(channel, previous)

    def bot_message(
        self,
        channel: str,
        text: str,
        *,
        bot_id: str = "B0OTHER",
        user: str | None = None,
        username: str | None = "other-bot",
        thread_ts: str | None = None,
        blocks: list[JsonDict] | None = None,
    ) -> JsonDict:
        """Store a bot's message and return its event (our own bot_id gives the bot user's shape)."""
        return self.events.bot_message(
            channel, text, bot_id=bot_id, user=user, username=username, thread_ts=thread_ts, blocks=blocks
        )

    def event_callback(self, event: JsonDict, *, event_id: str | None = None) -> JsonDict:
        """The outer `event_callback` body around an inner event."""
        return self.events.event_callback(event, event_id=event_id)

    # --- Socket Mode ---------------------------------------------------------------------------

    async def deliver_event(
        self,
        event: JsonDict,
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        event_id: str | None = None,
        timeout_s: float = WAIT_TIMEOUT_S,
    ) -> str:
        """Push an event in an `events_api` envelope (waiting for a socket), or POST it signed to the
        events URL once `set_http_target` named one; returns the envelope (or delivery) id."""
        body = self.event_callback(event, event_id=event_id)
        if self.delivery.http_target is not None:
            return await self.delivery.post_event(body, retry_attempt=retry_attempt, retry_reason=retry_reason)
        return await self.socket.send_envelope(
            "events_api",
            body,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            accepts_response_payload=False,
            timeout_s=timeout_s,
        )

    async def deliver_envelope(
        self,
        envelope_type: str,
        payload: JsonDict,
        *,
        accepts_response_payload: bool = False,
        timeout_s: float = WAIT_TIMEOUT_S,
    ) -> str:
        """Push any envelope (`slash_commands`, `interactive`, ...); returns the envelope_id."""
        return await self.socket.send_envelope(
            envelope_type,
            payload,
            retry_attempt=0,
            retry_reason="",
            accepts_response_payload=accepts_response_payload,
            timeout_s=timeout_s,
        )

    async def redeliver(
        self,
        envelope_id: str,
        retry_attempt: int = 1,
        retry_reason: str = "timeout",
        timeout_s: float = WAIT_TIMEOUT_S,
    ) -> str:
        """Send an earlier event again, same event_id, as Slack's retry; returns the new envelope_id."""
        first = self.socket.deliveries[envelope_id]
        return await self.socket.send_envelope(
            first.type,
            first.payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            accepts_response_payload=False,
            timeout_s=timeout_s,
        )

    async def wait_for_ack(self, envelope_id: str, timeout_s: float = WAIT_TIMEOUT_S) -> Ack:
        """Wait until the app acks this envelope (or answered this HTTP delivery with 200); returns the ack."""
        http = self.delivery.http_acks
        await self.wait_until(
            lambda: envelope_id in self.socket.acks or envelope_id in http, timeout_s, f"ack of {envelope_id}"
        )
        return self.socket.acks.get(envelope_id) or http[envelope_id]

    async def wait_for_socket_connection(self, timeout_s: float = WAIT_TIMEOUT_S) -> SocketConnection:
        """Wait until a socket is open; returns the newest."""
        await self.wait_until(lambda: bool(self.socket.open_connections), timeout_s, "a Socket Mode connection")
        return self.socket.open_connections[-1]

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Send `{"type": "disconnect", "reason": ...}` on every open socket."""
        await self.socket.send_disconnect(reason)

    async def drop_socket_connections(self, *, graceful: bool = True) -> None:
        """Close every open socket: with a close frame, or (graceful=False) by cutting TCP."""
        await self.socket.drop(graceful=graceful)

    @property
    def acks(self) -> dict[str, Ack]:
        """Acks received, by envelope_id."""
        return self.socket.acks

    @property
    def deliveries(self) -> dict[str, Delivery]:
        """Envelopes pushed, by envelope_id."""
        return self.socket.deliveries

    @property
    def connections(self) -> list[SocketConnection]:
        """Every socket ever opened (check `.is_open`)."""
        return self.socket.connections

    # --- people interacting ----------------------------------------------------------------------

    async def click(
        self,
        user: str,
        channel: str,
        message_ts: str,
        action_id: str,
        *,
        value: str | None = None,
        selected: str | None = None,
    ) -> str:
        """`user` presses the button `action_id` (the one with `value`, if several share the id) or
        picks option `selected` of a select, in a message the bot posted (or an ephemeral one it sent
        them); delivers the `block_actions` payload built from the message's blocks (AssertionError
        if the element is not there). Returns the envelope id (Socket Mode) or delivery id (HTTP)."""
        return await self.delivery.click(user, channel, message_ts, action_id, value=value, selected=selected)

    async def click_view(
        self,
        user: str,
        action_id: str,
        *,
        view_id: str | None = None,
        value: str | None = None,
        selected: str | None = None,
    ) -> str:
        """`user` presses an element in their App Home tab (or in the view `view_id`, e.g. an open
        modal); delivers block_actions with `container.type` "view" and the view (no response_url)."""
        return await self.delivery.click_view(user, action_id, view_id=view_id, value=value, selected=selected)

    async def slash_command(self, user: str, channel: str, text: str, *, command: str = "/matrec") -> str:
        """`user` runs `command text` in `channel`; the ack body and response_url posts land in `responses`."""
        return await self.delivery.slash_command(user, channel, text, command)

    async def open_home(self, user: str) -> str:
        """`user` opens the app's Home tab: delivers `app_home_opened` (with their published view, if any)."""
        return await self.delivery.open_home(user)

    def responses(self, user: str | None = None) -> list[JsonDict]:
        """Slash command acks and response_url posts, in order; with `user`, those that person can see
        (`visible_to` is them, or None for an in_channel one in a conversation they are in)."""
        found = [r.to_dict() for r in self.response_urls.responses]
        if user is None:
            return found
        return [
            r
            for r in found
            if r["visible_to"] == user
            or (r["visible_to"] is None and user in self.workspace.channel(r["channel"]).members)
        ]

    def home_view(self, user: str) -> JsonDict | None:
        """The App Home view views.publish last stored for `user`."""
        stored = self.views.homes.get(user)
        return stored.view if stored is not None else None

    def opened_views(self, user: str) -> list[JsonDict]:
        """Every modal views.open opened for `user` (as last updated), oldest first."""
        return self.views.opened(user)

    def expire_triggers(self) -> None:
        """Age every trigger_id past Slack's 3 s, so views.open answers expired_trigger_id."""
        self.triggers.expire_all()

    # --- HTTP mode -----------------------------------------------------------------------------

    def set_http_target(
        self,
        *,
        signing_secret: str,
        events_url: str,
        interactivity_url: str | None = None,
        command_url: str | None = None,
    ) -> None:
        """Deliver clicks, slash commands and Home opens as signed POSTs to these request URLs
        (left-out ones default to `events_url`, where Bolt serves all three) instead of the socket."""
        self.delivery.use_http(
            signing_secret=signing_secret,
            events_url=events_url,
            interactivity_url=interactivity_url,
            command_url=command_url,
        )

    def use_socket_mode(self) -> None:
        """Deliver clicks, slash commands and Home opens over Socket Mode again (the default)."""
        self.delivery.use_socket_mode()

    async def post_signed(
        self,
        url: str,
        body: JsonDict | str,
        *,
        signing_secret: str,
        timestamp: int | None = None,
        sign: bool = True,
        signature: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> HttpDelivery:
        """POST a body to the app's request URL signed like Slack (or badly/stale/unsigned on request)."""
        return await post_signed(
            url,
            body,
            signing_secret=signing_secret,
            timestamp=timestamp,
            sign=sign,
            signature_override=signature,
            retry_num=retry_num,
            retry_reason=retry_reason,
        )

    async def post_url_verification(
        self,
        url: str,
        *,
        signing_secret: str,
        challenge: str = URL_VERIFICATION_CHALLENGE,
    ) -> HttpDelivery:
        """POST the signed url_verification challenge; a correct app answers the challenge."""
        body = url_verification_body(challenge, self.identity.verification_token)
        return await post_signed(url, body, signing_secret=signing_secret)

    # --- synchronisation -----------------------------------------------------------------------

    async def wait_until(
        self, predicate: Callable[[], bool], timeout_s: float = WAIT_TIMEOUT_S, what: str = ""
    ) -> None:
        """Return once `predicate()` holds, re-checked on every state change; TimeoutError otherwise."""
        await self.signal.wait_until(predicate, timeout_s, what)

    def _echo(self, event: JsonDict) -> None:
        # Real Slack sends the bot's own writes back as events; opt-in so tests stay quiet by default.
        if not self.echo_bot_messages or not self.socket.open_connections:
            return
        task = asyncio.get_running_loop().create_task(self.deliver_event(event))
        self._echo_tasks.add(task)
        task.add_done_callback(self._echo_tasks.discard)
