"""App Home and modals: app_home_opened reaches Bolt, views.publish keeps one home per user, and a
modal opens only with a trigger_id Slack issued moments ago."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from emulators.slack import LoopbackServer, SlackEmulator

GENERAL = "C0GENERAL"
ALICE, BOB = "U1", "U2"
SIGNING_SECRET = "test-signing-secret"
WAIT_S = 5.0
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "Your consultations"}}
MODAL = {"type": "modal", "title": {"type": "plain_text", "text": "Details"}, "blocks": [SECTION]}


@pytest.fixture
def client(slack: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as raised:
        await call
    return str(raised.value.response["error"])


def home_app(client: AsyncWebClient, heard: asyncio.Queue[dict[str, Any]], **kwargs: Any) -> AsyncApp:
    """A real Bolt app that publishes a home view naming the viewer, and opens a modal on /matrec."""
    app = AsyncApp(client=client, **kwargs)

    async def on_home(event: dict[str, Any], client: AsyncWebClient) -> None:
        view = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": event["user"]}}]}
        await client.views_publish(user_id=event["user"], view=view)
        await heard.put(event)

    async def on_command(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)
        await heard.put(body)

    app.event("app_home_opened")(on_home)
    app.command("/matrec")(on_command)
    return app


@pytest.fixture
async def socket_heard(slack: SlackEmulator, client: AsyncWebClient) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    handler = AsyncSocketModeHandler(home_app(client, heard), slack.app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]  # unannotated in slack_bolt
    await slack.wait_for_socket_connection(WAIT_S)
    yield heard
    await handler.close_async()  # type: ignore[no-untyped-call]


async def test_opening_the_home_tab_lets_the_app_publish_a_view_per_user(
    slack: SlackEmulator, socket_heard: asyncio.Queue[dict[str, Any]]
) -> None:
    envelope_id = await slack.open_home(ALICE)
    event = await asyncio.wait_for(socket_heard.get(), WAIT_S)
    await slack.wait_for_ack(envelope_id, WAIT_S)
    await slack.wait_until(lambda: slack.home_view(ALICE) is not None, WAIT_S)
    assert (event["type"], event["tab"], event["user"]) == ("app_home_opened", "home", ALICE)
    assert event["channel"].startswith("D")
    assert "view" not in event  # nothing published yet
    home = slack.home_view(ALICE)
    assert home is not None and home["blocks"][0]["text"]["text"] == ALICE
    assert slack.home_view(BOB) is None
    await slack.open_home(ALICE)
    again = await asyncio.wait_for(socket_heard.get(), WAIT_S)
    assert again["view"]["id"] == home["id"]  # Slack sends the view it shows


async def test_app_home_opened_arrives_over_signed_http(slack: SlackEmulator, client: AsyncWebClient) -> None:
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    server = LoopbackServer(home_app(client, heard, signing_secret=SIGNING_SECRET).web_app())
    base = await server.start()
    try:
        slack.set_http_target(signing_secret=SIGNING_SECRET, events_url=f"{base}/slack/events")
        delivery_id = await slack.open_home(BOB)
        await asyncio.wait_for(heard.get(), WAIT_S)
    finally:
        await server.stop()
    assert slack.delivery.http_deliveries[delivery_id].status == 200
    assert slack.home_view(BOB) is not None


async def test_views_publish_accepts_only_a_home_view_of_at_most_100_blocks(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    assert await error_of(client.views_publish(user_id=ALICE, view=MODAL)) == "invalid_arguments"
    too_many = {"type": "home", "blocks": [SECTION] * 101}
    assert await error_of(client.views_publish(user_id=ALICE, view=too_many)) == "invalid_arguments"
    assert await error_of(client.views_publish(user_id="U404", view={"type": "home", "blocks": []})) == "user_not_found"
    published = await client.views_publish(user_id=ALICE, view={"type": "home", "blocks": [SECTION] * 100})
    assert len(published["view"]["blocks"]) == 100
    assert slack.home_view(ALICE) == published["view"]


async def test_a_stale_hash_is_a_hash_conflict(slack: SlackEmulator, client: AsyncWebClient) -> None:
    first = await client.views_publish(user_id=ALICE, view={"type": "home", "blocks": [SECTION]})
    await client.views_publish(user_id=ALICE, view={"type": "home", "blocks": []}, hash=first["view"]["hash"])
    stale = client.views_publish(user_id=ALICE, view={"type": "home", "blocks": []}, hash=first["view"]["hash"])
    assert await error_of(stale) == "hash_conflict"


async def test_a_slash_command_trigger_opens_a_modal_once(
    slack: SlackEmulator, client: AsyncWebClient, socket_heard: asyncio.Queue[dict[str, Any]]
) -> None:
    await slack.slash_command(BOB, GENERAL, "")
    body = await asyncio.wait_for(socket_heard.get(), WAIT_S)
    [modal] = slack.opened_views(BOB)
    assert (modal["type"], modal["title"]["text"]) == ("modal", "Details")
    assert slack.opened_views(ALICE) == []
    assert await error_of(client.views_open(trigger_id=body["trigger_id"], view=MODAL)) == "exchanged_trigger_id"


async def test_a_trigger_older_than_three_seconds_is_expired(slack: SlackEmulator, client: AsyncWebClient) -> None:
    trigger = slack.triggers.issue(ALICE)
    slack.expire_triggers()
    assert await error_of(client.views_open(trigger_id=trigger, view=MODAL)) == "expired_trigger_id"
    assert await error_of(client.views_open(trigger_id="1.2.made-up", view=MODAL)) == "invalid_trigger_id"
    assert slack.opened_views(ALICE) == []


async def test_a_modal_needs_a_short_plain_text_title(slack: SlackEmulator, client: AsyncWebClient) -> None:
    untitled = {"type": "modal", "blocks": [SECTION]}
    long_title = {**MODAL, "title": {"type": "plain_text", "text": "x" * 25}}
    assert (
        await error_of(client.views_open(trigger_id=slack.triggers.issue(ALICE), view=untitled)) == "invalid_arguments"
    )
    assert (
        await error_of(client.views_open(trigger_id=slack.triggers.issue(ALICE), view=long_title))
        == "invalid_arguments"
    )
    assert slack.opened_views(ALICE) == []


async def test_views_update_changes_an_open_modal(slack: SlackEmulator, client: AsyncWebClient) -> None:
    opened = await client.views_open(trigger_id=slack.triggers.issue(ALICE), view=MODAL)
    changed = {**MODAL, "blocks": [SECTION, {"type": "divider"}]}
    await client.views_update(view_id=opened["view"]["id"], view=changed)
    assert [b["type"] for b in slack.opened_views(ALICE)[0]["blocks"]] == ["section", "divider"]
    assert await error_of(client.views_update(view_id="VNOPE", view=changed)) == "not_found"


async def test_a_button_in_the_home_tab_arrives_with_the_view_and_no_response_url(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    button = {
        "type": "button",
        "action_id": "matrec_details",
        "value": "c9",
        "text": {"type": "plain_text", "text": "x"},
    }
    published = await client.views_publish(
        user_id=ALICE, view={"type": "home", "blocks": [{"type": "actions", "elements": [button]}]}
    )
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    app = AsyncApp(client=client)

    async def on_details(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await heard.put(body)

    app.action("matrec_details")(on_details)
    handler = AsyncSocketModeHandler(app, slack.app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]  # unannotated in slack_bolt
    try:
        envelope_id = await slack.click_view(ALICE, "matrec_details")
        body = await asyncio.wait_for(heard.get(), WAIT_S)
        await slack.wait_for_ack(envelope_id, WAIT_S)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    assert body["container"] == {"type": "view", "view_id": published["view"]["id"]}
    assert (body["view"]["type"], body["actions"][0]["value"]) == ("home", "c9")
    assert "response_url" not in body
    with pytest.raises(AssertionError):
        await slack.click_view(BOB, "matrec_details")  # Bob has no home view
