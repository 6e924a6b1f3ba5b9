"""What people do, delivered to the app as Slack delivers it: button presses (block_actions), slash
commands and App Home opens, over Socket Mode or, once `use_http` named the request URLs, as signed
HTTP POSTs (interactions form-encoded as `payload=<json>`, commands as plain form fields).

Every interaction carries a fresh trigger_id and response_url. A slash command's ack body (Bolt's
`ack(text=...)`: the envelope ack's payload, or the HTTP response body) is its first response.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from emulators.slack_events import EventFactory
from emulators.slack_http import HttpDelivery, post_signed
from emulators.slack_identity import AppIdentity, JsonDict
from emulators.slack_interactive import ResponseUrls, Triggers, action_of, channel_name, find_element, state_of
from emulators.slack_socket import Ack, Delivery, SocketModeServer
from emulators.slack_views import Views
from emulators.slack_workspace import Channel, Workspace

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class HttpTarget:
    """The app's request URLs (Bolt serves all three on /slack/events) and its signing secret."""

    signing_secret: str
    events_url: str
    interactivity_url: str
    command_url: str


class AppDelivery:
    """Builds interaction payloads from the workspace's state and pushes them to the app."""

    def __init__(
        self,
        identity: AppIdentity,
        workspace: Workspace,
        events: EventFactory,
        socket: SocketModeServer,
        triggers: Triggers,
        responses: ResponseUrls,
        views: Views,
        timeout_s: float,
    ) -> None:
        self.identity, self.workspace, self.events, self.socket = identity, workspace, events, socket
        self.triggers, self.responses, self.views, self.timeout_s = triggers, responses, views, timeout_s
        self.http_target: HttpTarget | None = None
        self.http_deliveries: dict[str, HttpDelivery] = {}
        self.http_acks: dict[str, Ack] = {}
        self._commands: dict[str, tuple[str, str, str | None]] = {}  # envelope id -> channel, user, thread
        socket.ack_listeners.append(self._on_socket_ack)

    def use_http(
        self,
        *,
        signing_secret: str,
        events_url: str,
        interactivity_url: str | None = None,
        command_url: str | None = None,
    ) -> None:
        """Deliver by signed HTTP POST from now on (URLs left out default to `events_url`)."""
        self.http_target = HttpTarget(
            signing_secret, events_url, interactivity_url or events_url, command_url or events_url
        )

    def use_socket_mode(self) -> None:
        """Deliver over Socket Mode again."""
        self.http_target = None

    async def click(
        self, user: str, channel: str, message_ts: str, action_id: str, *, value: str | None, selected: str | None
    ) -> str:
        """Deliver `user`'s press of the element `action_id` in a stored (or ephemeral) message."""
        resolved = self.workspace.channel(channel)
        self._assert_can_see(user, resolved)
        stored = resolved.messages.get(message_ts)
        ephemeral = None if stored is not None else self._ephemeral(resolved.id, message_ts, user)
        if stored is not None:
            assert not stored.deleted, f"message {message_ts} was deleted"
            blocks = stored.blocks or []
        else:
            assert ephemeral is not None, f"no message {message_ts} in {channel} that {user} can see"
            blocks = ephemeral.get("blocks") or []
        index, block, element = find_element(blocks, action_id, value=value)
        action = action_of(block, index, element, selected=selected)
        thread_ts = stored.thread_ts if stored is not None else ephemeral.get("thread_ts") if ephemeral else None
        container: JsonDict = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": resolved.id,
            "is_ephemeral": stored is None,
        }
        if thread_ts:
            container["thread_ts"] = thread_ts
        payload: JsonDict = {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": self.identity.app_id,
            "token": self.identity.verification_token,
            "container": container,
            "trigger_id": self.triggers.issue(user),
            "team": {"id": self.identity.team_id, "domain": self.identity.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": resolved.id, "name": channel_name(resolved)},
        }
        if stored is not None:
            payload["message"] = self.workspace.render(stored)
        payload["state"] = state_of(action)
        payload["response_url"] = self.responses.issue(
            resolved.id,
            user,
            message_ts=message_ts if stored is not None else None,
            thread_ts=thread_ts,
            ephemeral=ephemeral,
        )
        payload["actions"] = [action]
        if self.http_target is None:
            return await self._envelope("interactive", payload, accepts_response_payload=False)
        body = urlencode({"payload": json.dumps(payload)})
        return await self._post(self.http_target.interactivity_url, body, FORM)

    async def click_view(
        self, user: str, action_id: str, *, view_id: str | None, value: str | None, selected: str | None
    ) -> str:
        """Deliver `user`'s press of an element in their home tab (or the view `view_id`): no response_url."""
        candidates = [self.views.homes[user]] if user in self.views.homes else []
        candidates += [m for m in self.views.modals if m.user == user]
        found = [v for v in candidates if view_id is None or v.id == view_id]
        assert found, f"{user} has no view {view_id or '(home)'} to click in"
        view = found[0].view
        index, block, element = find_element(list(view.get("blocks") or []), action_id, value=value)
        action = action_of(block, index, element, selected=selected)
        view_state = state_of(action)
        payload: JsonDict = {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": self.identity.app_id,
            "token": self.identity.verification_token,
            "container": {"type": "view", "view_id": view["id"]},
            "trigger_id": self.triggers.issue(user),
            "team": {"id": self.identity.team_id, "domain": self.identity.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "view": {**view, "state": view_state},
            "actions": [action],
        }
        if self.http_target is None:
            return await self._envelope("interactive", payload, accepts_response_payload=False)
        return await self._post(self.http_target.interactivity_url, urlencode({"payload": json.dumps(payload)}), FORM)

    async def slash_command(self, user: str, channel: str, text: str, command: str) -> str:
        """Deliver `user` typing `command text` in `channel`."""
        resolved = self.workspace.channel(channel)
        self._assert_can_see(user, resolved)
        fields = {
            "token": self.identity.verification_token,
            "team_id": self.identity.team_id,
            "team_domain": self.identity.team_domain,
            "channel_id": resolved.id,
            "channel_name": channel_name(resolved),
            "user_id": user,
            "user_name": self.workspace.users[user].name,
            "command": command,
            "text": text,
            "api_app_id": self.identity.app_id,
            "is_enterprise_install": "false",
            "response_url": self.responses.issue(resolved.id, user, message_ts=None, thread_ts=None),
            "trigger_id": self.triggers.issue(user),
        }
        if self.http_target is None:
            envelope_id = str(uuid.uuid4())
            self._commands[envelope_id] = (resolved.id, user, None)
            return await self._envelope(
                "slash_commands", fields, accepts_response_payload=True, envelope_id=envelope_id
            )
        delivery_id = await self._post(self.http_target.command_url, urlencode(fields), FORM)
        answered = self.http_deliveries[delivery_id]
        if answered.status == 200 and answered.text.strip():
            self.responses.record("ack", resolved.id, user, _json_or_text(answered.text), thread_ts=None)
        return delivery_id

    async def open_home(self, user: str) -> str:
        """Deliver `app_home_opened` (tab "home") for `user`, with the view published for them, if any."""
        assert user in self.workspace.users, f"unknown user {user}"
        event: JsonDict = {
            "type": "app_home_opened",
            "user": user,
            "channel": self._app_dm(user).id,
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        }
        home = self.views.homes.get(user)
        if home is not None:
            event["view"] = home.view
        body = self.events.event_callback(event)
        if self.http_target is None:
            return await self._envelope("events_api", body, accepts_response_payload=False)
        return await self.post_event(body, retry_attempt=0, retry_reason="")

    def _on_socket_ack(self, delivery: Delivery, ack: Ack) -> None:
        where = self._commands.pop(delivery.envelope_id, None)
        if where is not None and ack.payload:
            self.responses.record("ack", where[0], where[1], ack.payload, thread_ts=where[2])

    async def _envelope(
        self, kind: str, payload: JsonDict, *, accepts_response_payload: bool, envelope_id: str | None = None
    ) -> str:
        return await self.socket.send_envelope(
            kind,
            payload,
            retry_attempt=0,
            retry_reason="",
            accepts_response_payload=accepts_response_payload,
            timeout_s=self.timeout_s,
            envelope_id=envelope_id,
        )

    async def post_event(self, body: JsonDict, *, retry_attempt: int, retry_reason: str) -> str:
        """POST an event_callback to the events URL, signed, with Slack's retry headers on a retry."""
        assert self.http_target is not None, "set_http_target first"
        return await self._post(
            self.http_target.events_url,
            json.dumps(body),
            "application/json",
            retry_num=retry_attempt or None,
            retry_reason=retry_reason or None,
        )

    async def _post(
        self, url: str, body: str, content_type: str, *, retry_num: int | None = None, retry_reason: str | None = None
    ) -> str:
        assert self.http_target is not None
        answered = await post_signed(
            url,
            body,
            signing_secret=self.http_target.signing_secret,
            content_type=content_type,
            retry_num=retry_num,
            retry_reason=retry_reason,
        )
        delivery_id = str(uuid.uuid4())
        self.http_deliveries[delivery_id] = answered
        if answered.status == 200:
            payload = _json_or_text(answered.text) if answered.text.strip() else None
            self.http_acks[delivery_id] = Ack(delivery_id, payload, 0, time.monotonic())
        self.workspace.signal.changed()
        return delivery_id

    def _user(self, user: str) -> JsonDict:
        name = self.workspace.users[user].name
        return {"id": user, "username": name, "name": name, "team_id": self.identity.team_id}

    def _assert_can_see(self, user: str, channel: Channel) -> None:
        assert user in self.workspace.users, f"unknown user {user}"
        assert channel.is_public or user in channel.members, f"{user} cannot see {channel.id}"

    def _ephemeral(self, channel: str, ts: str, user: str) -> JsonDict | None:
        for sent in self.workspace.ephemerals:
            if sent.get("deleted"):
                continue
            if sent["channel"] == channel and sent["message_ts"] == ts and sent["user"] == user:
                return sent
        return None

    def _app_dm(self, user: str) -> Channel:
        bot = self.identity.bot_user_id
        for channel in self.workspace.channels.values():
            if channel.is_im and set(channel.members) == {user, bot}:
                return channel
        dm_id = "D" + uuid.uuid4().hex[:10].upper()
        return self.workspace.add_channel(Channel(id=dm_id, name=dm_id, is_im=True, members=[user, bot]))


def _json_or_text(text: str) -> JsonDict:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return {"text": text}
    return parsed if isinstance(parsed, dict) else {"text": text}
