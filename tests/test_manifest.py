"""manifest.yml (and its HTTP twin) list exactly the scopes, events and features the bot uses.

One scenario exercises every path of the bot against a Slack emulator that grants exactly the
manifest's scopes, so a scope the manifest forgot fails the scenario (`missing_scope`); then every
Web API call made and every event subscribed is mapped to the scope Slack's reference gives it, and
that set must equal the manifest's, so a scope nothing needs fails too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import actions
from bot.app import SUBSCRIBED_EVENTS
from bot.command import COMMAND
from emulators.claude import ClaudeEmulator
from emulators.slack import ApiCall, SlackEmulator
from tests.bot_support import (
    ALICE,
    BOB,
    GENERAL,
    WAIT_S,
    Upload,
    bot_settings,
    rendered,
    running_bot,
    upload,
    wait_finished,
)
from tests.engine_support import KEY, jpeg_bytes

ROOT = Path(__file__).parent.parent
MANIFEST = ROOT / "manifest.yml"
HTTP_MANIFEST = ROOT / "manifest-http.yml"
EVENTS_PATH = "/slack/events"

# The bot scope each Web API method needs (Slack's method reference pages); None: no scope.
SCOPE_OF_METHOD: dict[str, str | None] = {
    "auth.test": None,
    "apps.connections.open": None,  # the app-level token's connections:write
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.startStream": "chat:write",
    "chat.appendStream": "chat:write",
    "chat.stopStream": "chat:write",
    "chat.getPermalink": None,
    "assistant.threads.setStatus": "chat:write",
    "reactions.add": "reactions:write",
    "reactions.remove": "reactions:write",
    "files.info": "files:read",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "users.info": "users:read",
    "views.publish": None,
    "conversations.open": "im:write",
}
# Conversation methods need the scope of the conversation's type.
READ_SCOPE = {"channel": "channels:read", "group": "groups:read", "im": "im:read", "mpim": "mpim:read"}
HISTORY_SCOPE = {"channel": "channels:history", "group": "groups:history", "im": "im:history", "mpim": "mpim:history"}
TYPE_OF = {"public_channel": "channel", "private_channel": "group", "im": "im", "mpim": "mpim"}
# Receiving each subscribed event needs its read scope.
SCOPE_OF_EVENT: dict[str, str | None] = {
    "app_home_opened": None,
    "app_mention": "app_mentions:read",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
    "message.mpim": "mpim:history",
}
PRIVATE = "GDESIGN"
NO_BOT = "CNOBOT"


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _scopes(manifest: dict[str, Any]) -> list[str]:
    return sorted(manifest["oauth_config"]["scopes"]["bot"])


def test_the_manifest_subscribes_to_exactly_the_events_the_listeners_handle() -> None:
    manifest = _load(MANIFEST)
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert sorted(manifest["settings"]["event_subscriptions"]["bot_events"]) == sorted(SUBSCRIBED_EVENTS)


def test_the_manifest_turns_on_what_the_bot_serves() -> None:
    manifest = _load(MANIFEST)
    assert manifest["settings"]["interactivity"]["is_enabled"] is True  # board and answer buttons
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True  # bot.home publishes a view
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True  # DMs with the bot
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [COMMAND]
    assert "assistant_view" not in manifest["features"]  # not set up as an agent: see the file's header
    assert "assistant:write" not in _scopes(manifest)


def test_the_http_manifest_is_the_same_app_with_request_urls() -> None:
    socket, http = _load(MANIFEST), _load(HTTP_MANIFEST)
    assert _scopes(http) == _scopes(socket)
    events = socket["settings"]["event_subscriptions"]["bot_events"]
    assert http["settings"]["event_subscriptions"]["bot_events"] == events
    assert http["settings"]["socket_mode_enabled"] is False
    urls = [
        http["settings"]["event_subscriptions"]["request_url"],
        http["settings"]["interactivity"]["request_url"],
        *(c["url"] for c in http["features"]["slash_commands"]),
    ]
    assert all(url.startswith("https://") and url.endswith(EVENTS_PATH) for url in urls), urls
    assert [c["command"] for c in http["features"]["slash_commands"]] == [COMMAND]
    same = {k: v for k, v in http["features"].items() if k != "slash_commands"}
    assert same == {k: v for k, v in socket["features"].items() if k != "slash_commands"}


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    """A workspace that granted the app exactly the manifest's scopes."""
    async with SlackEmulator(scopes=_scopes(_load(MANIFEST))) as emulator:
        yield emulator


def _conversation_type(slack: SlackEmulator, channel: str) -> str:
    return str(slack.workspace.channel(channel).channel_type)


def _scopes_of(slack: SlackEmulator, call: ApiCall) -> set[str]:
    """The scopes Slack requires for this call (per conversation type where that matters)."""
    if call.method in {"conversations.members", "conversations.info"}:
        return {READ_SCOPE[_conversation_type(slack, str(call.params["channel"]))]}
    if call.method in {"conversations.history", "conversations.replies"}:
        return {HISTORY_SCOPE[_conversation_type(slack, str(call.params["channel"]))]}
    if call.method == "users.conversations":
        types = str(call.params.get("types") or "public_channel").split(",")
        return {READ_SCOPE[TYPE_OF[t]] for t in types}
    assert call.method in SCOPE_OF_METHOD, f"a method without a known scope: {call.method}"
    scope = SCOPE_OF_METHOD[call.method]
    return {scope} if scope else set()


async def _command(slack: SlackEmulator, user: str, channel: str, text: str) -> dict[str, Any]:
    seen = len(slack.responses(user))
    await slack.slash_command(user, channel, text)
    await slack.wait_until(lambda: len(slack.responses(user)) > seen, WAIT_S, what=f"the answer to {text!r}")
    return slack.responses(user)[seen]


async def test_the_manifest_asks_for_exactly_the_scopes_the_bot_uses(slack: SlackEmulator, tmp_path: Path) -> None:
    slack.add_channel("design", channel_id=PRIVATE, is_private=True, members=[ALICE, BOB, slack.bot_user_id])
    slack.add_channel("no-bot", channel_id=NO_BOT, members=[ALICE, BOB])
    dm = slack.add_im(ALICE)
    group = slack.add_mpim([ALICE, BOB])
    slack.enable_streaming()
    async with ClaudeEmulator(api_key=KEY) as claude, running_bot(slack, claude, bot_settings(slack, tmp_path)):
        # An upload from a Slack Connect channel (a file stub: files.info), its board, chart and links.
        stub = slack.add_file(jpeg_bytes(), "shared.jpg", "image/jpeg", "jpg", connect_stub=True)
        event = slack.upload_message(GENERAL, ALICE, "a pump bracket from a Slack Connect channel", [stub])
        await slack.deliver_event(event)
        first = Upload.of(event)
        await wait_finished(slack, first)
        # A similar part in a private channel: similar-consultation links check both memberships.
        second = await upload(slack, jpeg_bytes(), text="another pump bracket, 20 kg", channel=PRIVATE)
        await wait_finished(slack, second)
        # A follow-up question, answered in a stream.
        question = slack.user_message(GENERAL, BOB, "Would it still work at 150 °C?", thread_ts=first.ts)
        await slack.deliver_event(question)
        await slack.wait_until(
            lambda: any(c.method == "chat.stopStream" and c.ok for c in slack.calls), WAIT_S, what="a streamed answer"
        )
        # Feedback, the team's choice and Details on the first board.
        board = next(m for m in slack.thread(GENERAL, first.ts) if m.bot_id and actions.HELPFUL in rendered(m))
        await slack.click(BOB, GENERAL, board.ts, actions.HELPFUL)
        await slack.click(BOB, GENERAL, board.ts, actions.DETAILS)
        await slack.wait_until(
            lambda: sum(1 for m in slack.thread(GENERAL, first.ts) if m.bot_id) >= 4, WAIT_S, what="details"
        )
        # The team's memory, ephemeral; `ask` from a channel the bot is not in opens a DM.
        for text in ("history", "search bracket", "stats"):
            assert (await _command(slack, ALICE, GENERAL, text))["response_type"] == "ephemeral"
        await _command(slack, BOB, NO_BOT, "ask a hinge for an outdoor gate, 2 kg, 200 a year")
        await slack.wait_until(
            lambda: any(c.method == "conversations.open" and c.ok for c in slack.calls), WAIT_S, what="the DM"
        )
        # App Home, a group DM upload, a DM description (help, no Claude call).
        await slack.open_home(ALICE)
        await slack.wait_until(lambda: slack.home_view(ALICE) is not None, WAIT_S, what="the home view")
        in_group = await upload(slack, jpeg_bytes(), text="a clip", channel=group.id)
        await wait_finished(slack, in_group)
        described = slack.user_message(dm.id, ALICE, "a gasket for hot water, 90 C")
        await slack.deliver_event(described)
        await slack.wait_until(
            lambda: any(m.bot_id and actions.ANALYSE_TEXT in rendered(m) for m in slack.thread(dm.id, described["ts"])),
            WAIT_S,
            what="the DM help",
        )
    refused = [c for c in slack.calls if c.response.get("error") == "missing_scope"]
    assert refused == [], f"calls refused for a scope the manifest lacks: {[(c.method, c.params) for c in refused]}"
    used = {scope for call in slack.calls for scope in _scopes_of(slack, call)}
    used |= {scope for e in SUBSCRIBED_EVENTS if (scope := SCOPE_OF_EVENT[e])}
    used.add("commands")  # /matrec
    assert _scopes(_load(MANIFEST)) == sorted(used)
