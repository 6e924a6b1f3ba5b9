"""What a person's interactions send the app: block_actions and slash command payloads, their
short-lived trigger_ids, and the response_urls the app answers through.

Slack's rules modelled here:
- A trigger_id opens a modal within 3 s of the interaction, once (`expired_trigger_id`,
  `exchanged_trigger_id`; a string Slack never issued is `invalid_trigger_id`).
- A response_url takes up to 5 posts within 30 minutes. Its message is ephemeral (only the person
  who interacted sees it) unless `response_type` is "in_channel"; from a message's button,
  `replace_original` / `delete_original` edit or delete that message instead.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from emulators.slack_errors import ApiError
from emulators.slack_identity import AppIdentity, JsonDict
from emulators.slack_signal import StateSignal
from emulators.slack_workspace import Channel, Message, Workspace

TRIGGER_TTL_S = 3.0
RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_TTL_S = 30 * 60.0
ResponseSource = Literal["ack", "response_url"]
PostAsBot = Callable[[Channel, str, list[JsonDict] | None, str | None], Message]


@dataclass
class _Trigger:
    user: str
    issued_at: float
    exchanged: bool = False


class Triggers:
    """Issues trigger_ids with each interaction and exchanges them (once, within 3 s) for a view."""

    def __init__(self) -> None:
        self._issued: dict[str, _Trigger] = {}

    def issue(self, user: str) -> str:
        """A fresh trigger_id like `12345.98765.abcd2358fdea` for `user`'s interaction, issued now."""
        trigger_id = f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"
        self._issued[trigger_id] = _Trigger(user, time.monotonic())
        return trigger_id

    def exchange(self, trigger_id: str) -> str:
        """Use a trigger_id up; returns the user it belongs to, or raises Slack's error for it."""
        trigger = self._issued.get(trigger_id)
        if trigger is None:
            raise ApiError("invalid_trigger_id")
        if trigger.exchanged:
            raise ApiError("exchanged_trigger_id")
        if time.monotonic() - trigger.issued_at > TRIGGER_TTL_S:
            raise ApiError("expired_trigger_id")
        trigger.exchanged = True
        return trigger.user

    def expire_all(self) -> None:
        """Age every trigger past its 3 s (a test's stand-in for a slow handler)."""
        for trigger in self._issued.values():
            trigger.issued_at -= TRIGGER_TTL_S + 1.0


@dataclass
class _ResponseUrl:
    channel: str
    user: str
    message_ts: str | None  # the message whose button was pressed (None for a slash command)
    thread_ts: str | None
    issued_at: float
    ephemeral: JsonDict | None = None  # the ephemeral message whose button was pressed
    uses: int = 0


@dataclass(frozen=True)
class Response:
    """What the app answered an interaction with: an ack body or a response_url post."""

    source: ResponseSource
    channel: str
    user: str  # who interacted
    response_type: Literal["ephemeral", "in_channel"]
    text: str
    blocks: list[JsonDict] | None
    replace_original: bool
    delete_original: bool
    thread_ts: str | None
    message_ts: str | None  # the message an in_channel response became, or the one it replaced/deleted
    visible_to: str | None  # the one person who sees it, or None when the whole channel does
    at: float = field(default_factory=time.monotonic)

    def to_dict(self) -> JsonDict:
        """The response as tests read it."""
        return {
            "source": self.source,
            "channel": self.channel,
            "user": self.user,
            "visible_to": self.visible_to,
            "response_type": self.response_type,
            "text": self.text,
            "blocks": self.blocks,
            "replace_original": self.replace_original,
            "delete_original": self.delete_original,
            "thread_ts": self.thread_ts,
            "message_ts": self.message_ts,
        }


class ResponseUrls:
    """Serves `/actions/<team>/<n>/<secret>` like hooks.slack.com and records every response."""

    def __init__(
        self,
        identity: AppIdentity,
        workspace: Workspace,
        signal: StateSignal,
        base_url: Callable[[], str],
        post_as_bot: PostAsBot,
    ) -> None:
        self.identity, self.workspace, self.signal = identity, workspace, signal
        self._base_url, self._post_as_bot = base_url, post_as_bot
        self._urls: dict[str, _ResponseUrl] = {}
        self.responses: list[Response] = []

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp route response_urls point at."""
        return [web.post("/actions/{team}/{number}/{secret}", self._handle)]

    def issue(
        self,
        channel: str,
        user: str,
        *,
        message_ts: str | None,
        thread_ts: str | None,
        ephemeral: JsonDict | None = None,
    ) -> str:
        """A fresh response_url for one interaction (from a message, an ephemeral one, or a command)."""
        secret = secrets.token_urlsafe(18)
        self._urls[secret] = _ResponseUrl(channel, user, message_ts, thread_ts, time.monotonic(), ephemeral)
        number = secrets.randbelow(10**13)
        return f"{self._base_url()}/actions/{self.identity.team_id}/{number}/{secret}"

    def record(self, source: ResponseSource, channel: str, user: str, body: JsonDict, *, thread_ts: str | None) -> None:
        """Apply one response body (post, replace or delete) and record it."""
        self._apply(source, _ResponseUrl(channel, user, None, thread_ts, time.monotonic()), body)

    async def _handle(self, request: web.Request) -> web.Response:
        target = self._urls.get(request.match_info["secret"])
        if target is None or time.monotonic() - target.issued_at > RESPONSE_URL_TTL_S:
            return web.Response(status=404, text="expired_url")
        if target.uses >= RESPONSE_URL_MAX_USES:
            return web.Response(status=404, text="used_url")
        try:
            body = await request.json(loads=json.loads)
        except json.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload")
        target.uses += 1
        try:
            self._apply("response_url", target, body)
        except ApiError as error:
            return web.json_response(error.body(), status=404)
        return web.json_response({"ok": True})

    def _apply(self, source: ResponseSource, target: _ResponseUrl, body: JsonDict) -> None:
        text = str(body.get("text") or "")
        blocks = body.get("blocks") if isinstance(body.get("blocks"), list) else None
        in_channel = body.get("response_type") == "in_channel"
        replace, delete = bool(body.get("replace_original")), bool(body.get("delete_original"))
        message_ts: str | None = None
        visible_to: str | None = None if in_channel else target.user
        touched_original = False
        original = self._original(target) if (replace or delete) else None
        ephemeral = target.ephemeral if (replace or delete) and original is None else None
        if ephemeral is not None and not ephemeral.get("deleted"):
            if delete:
                ephemeral["deleted"] = True
            else:
                ephemeral.update(text=text, blocks=blocks)
            message_ts, visible_to, touched_original = str(ephemeral["message_ts"]), target.user, True
        elif original is not None:
            if delete:
                self.workspace.delete(original)
            else:
                self.workspace.edit(original, text=text, blocks=blocks if blocks is not None else [])
            message_ts, visible_to, touched_original = original.ts, None, True  # everyone saw the original
        elif in_channel:
            channel = self.workspace.channel(target.channel)
            thread_ts = str(body["thread_ts"]) if body.get("thread_ts") else target.thread_ts
            message_ts = self._post_as_bot(channel, text, blocks, thread_ts).ts
        self.responses.append(
            Response(
                source,
                target.channel,
                target.user,
                "in_channel" if in_channel else "ephemeral",
                text,
                blocks,
                replace and touched_original,
                delete and touched_original,
                target.thread_ts,
                message_ts,
                visible_to,
            )
        )
        self.signal.changed()

    def _original(self, target: _ResponseUrl) -> Message | None:
        if target.message_ts is None:
            return None
        found = self.workspace.channel(target.channel).messages.get(target.message_ts)
        return None if found is None or found.deleted else found


def find_element(blocks: list[JsonDict], action_id: str, *, value: str | None = None) -> tuple[int, JsonDict, JsonDict]:
    """(block index, block, element) of the element with `action_id` (and `value`, if given); AssertionError if none."""
    for index, block in enumerate(blocks):
        candidates: list[object] = []
        if isinstance(block.get("elements"), list):
            candidates += block["elements"]
        for key in ("accessory", "element"):
            if key in block:
                candidates.append(block[key])
        for element in candidates:
            if not isinstance(element, dict) or element.get("action_id") != action_id:
                continue
            if value is None or element.get("value") == value:
                return index, block, element
    raise AssertionError(f"no element with action_id {action_id!r} (value {value!r}) in the message's blocks")


def block_id_of(block: JsonDict, index: int) -> str:
    """The block's own block_id, or the stable one Slack assigns to a block posted without one."""
    given = block.get("block_id")
    if isinstance(given, str) and given:
        return given
    return hashlib.sha256(json.dumps(block, sort_keys=True).encode() + bytes([index % 256])).hexdigest()[:5]


def selected_option(element: JsonDict, value: str) -> JsonDict:
    """The option of a select/overflow element whose value is `value`; AssertionError if none."""
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options += group.get("options") or []
    for option in options:
        if isinstance(option, dict) and option.get("value") == value:
            return {"text": option.get("text"), "value": value}
    raise AssertionError(f"no option with value {value!r} in {element.get('action_id')!r}")


def action_of(block: JsonDict, index: int, element: JsonDict, *, selected: str | None) -> JsonDict:
    """The `actions[0]` entry Slack sends for a press of `element` (or a pick of option `selected`)."""
    kind = str(element.get("type"))
    action: JsonDict = {
        "action_id": element["action_id"],
        "block_id": block_id_of(block, index),
        "type": kind,
        "action_ts": f"{time.time():.6f}",
    }
    if kind == "button":
        assert selected is None, "a button has no options to select"
        action["text"] = element.get("text")
        if "value" in element:
            action["value"] = element["value"]
        if "style" in element:
            action["style"] = element["style"]
    elif "options" in element or "option_groups" in element:
        assert selected is not None, f"pick an option of the {kind} with selected=..."
        action["selected_option"] = selected_option(element, selected)
        if kind != "overflow" and "placeholder" in element:
            action["placeholder"] = element["placeholder"]
    else:
        raise AssertionError(f"clicking a {kind} element is not modelled")
    return action


def state_of(action: JsonDict) -> JsonDict:
    """The `state` Slack attaches: the values of stateful elements (a select's pick)."""
    if "selected_option" not in action:
        return {"values": {}}
    value = {"type": action["type"], "selected_option": action["selected_option"]}
    return {"values": {action["block_id"]: {action["action_id"]: value}}}


def channel_name(channel: Channel) -> str:
    """The channel name Slack puts in interaction payloads (DMs are "directmessage")."""
    return "directmessage" if channel.is_im else channel.name
