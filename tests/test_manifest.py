"""manifest.yml parses, and lists exactly the scopes and events the bot relies on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import SUBSCRIBED_EVENTS
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.bot_support import ALICE, GENERAL, Upload, bot_settings, running_bot, wait_finished
from tests.engine_support import KEY, jpeg_bytes

MANIFEST = Path(__file__).parent.parent / "manifest.yml"

# The bot scope each Web API method the bot calls needs (Slack's method reference pages).
SCOPE_OF_METHOD = {
    "auth.test": None,
    "apps.connections.open": None,  # the app-level token's connections:write
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "assistant.threads.setStatus": "chat:write",
    "reactions.add": "reactions:write",
    "reactions.remove": "reactions:write",
    "files.info": "files:read",
}
# Receiving each subscribed event needs its read scope.
SCOPE_OF_EVENT = {
    "app_mention": "app_mentions:read",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
}


def _manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_the_manifest_subscribes_to_exactly_the_events_the_listeners_handle() -> None:
    manifest = _manifest()
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert sorted(manifest["settings"]["event_subscriptions"]["bot_events"]) == sorted(SUBSCRIBED_EVENTS)


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator() as emulator:
        yield emulator


async def test_the_manifest_asks_for_exactly_the_scopes_a_consultation_uses(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    async with ClaudeEmulator(api_key=KEY) as claude, running_bot(slack, claude, bot_settings(slack, tmp_path)):
        stub = slack.add_file(jpeg_bytes(), "shared.jpg", "image/jpeg", "jpg", connect_stub=True)
        event = slack.upload_message(GENERAL, ALICE, "a bracket from a Slack Connect channel", [stub])
        await slack.deliver_event(event)
        await wait_finished(slack, Upload.of(event))
    methods = {call.method for call in slack.calls}
    assert methods <= SCOPE_OF_METHOD.keys(), f"a method without a known scope: {methods - SCOPE_OF_METHOD.keys()}"
    used = {scope for m in methods if (scope := SCOPE_OF_METHOD[m])} | {SCOPE_OF_EVENT[e] for e in SUBSCRIBED_EVENTS}
    assert sorted(_manifest()["oauth_config"]["scopes"]["bot"]) == sorted(used)
