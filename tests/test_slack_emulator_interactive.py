"""Button presses and slash commands reach a real Bolt app the way Slack sends them, over Socket Mode
and signed HTTP, and what the app answers (acks, response_url posts) is recorded per viewer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from emulators.slack import LoopbackServer, SlackEmulator

GENERAL = "C0GENERAL"
ALICE, BOB = "U1", "U2"
SIGNING_SECRET = "test-signing-secret"
WAIT_S = 5.0
RERUN = "matrec_rerun"
CHOSE = "matrec_chose"

BOARD_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Best:* polymer"}},
    {
        "type": "actions",
        "block_id": "board_actions",
        "elements": [
            {"type": "button", "action_id": RERUN, "text": {"type": "plain_text", "text": "Re-run"}, "value": "c1"},
            {
                "type": "button",
                "action_id": "matrec_stress",
                "text": {"type": "plain_text", "text": "Stress"},
                "value": "c1",
            },
        ],
    },
    {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "We chose…"},
        "accessory": {
            "type": "static_select",
            "action_id": CHOSE,
            "placeholder": {"type": "plain_text", "text": "Pick"},
            "options": [
                {"text": {"type": "plain_text", "text": "Polymer"}, "value": "c1:polymer"},
                {"text": {"type": "plain_text", "text": "Steel"}, "value": "c1:steel"},
            ],
        },
    },
]


@pytest.fixture
def client(slack: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


def interactive_app(client: AsyncWebClient, heard: asyncio.Queue[dict[str, Any]], **kwargs: Any) -> AsyncApp:
    """A real Bolt app: buttons answer through respond(), /matrec acks with text then responds."""
    app = AsyncApp(client=client, **kwargs)

    async def on_action(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await heard.put(body)
        await respond(text=f"pressed {body['actions'][0]['action_id']}")

    async def on_command(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        if body["text"] == "announce":
            await ack(text="Announced", response_type="in_channel")
        else:
            await ack(text=f"Looking up {body['text']}")
        await heard.put(body)
        await respond(text="Here is your history")

    app.action(RERUN)(on_action)
    app.action(CHOSE)(on_action)
    app.command("/matrec")(on_command)
    return app


@asynccontextmanager
async def socket_bot(slack: SlackEmulator, client: AsyncWebClient) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    handler = AsyncSocketModeHandler(interactive_app(client, heard), slack.app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]  # unannotated in slack_bolt
    try:
        await slack.wait_for_socket_connection(WAIT_S)
        yield heard
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]


@asynccontextmanager
async def http_bot(slack: SlackEmulator, client: AsyncWebClient) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    server = LoopbackServer(interactive_app(client, heard, signing_secret=SIGNING_SECRET).web_app())
    base = await server.start()
    slack.set_http_target(signing_secret=SIGNING_SECRET, events_url=f"{base}/slack/events")
    try:
        yield heard
    finally:
        await server.stop()


async def board(client: AsyncWebClient, channel: str = GENERAL, thread_ts: str | None = None) -> str:
    posted = await client.chat_postMessage(channel=channel, text="board", blocks=BOARD_BLOCKS, thread_ts=thread_ts)
    return str(posted["ts"])


# --- block_actions ----------------------------------------------------------------------------------


async def test_a_button_press_reaches_bolt_over_the_socket_with_slacks_payload(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    parent = slack.user_message(GENERAL, ALICE, "photo")["ts"]
    ts = await board(client, thread_ts=parent)
    async with socket_bot(slack, client) as heard:
        envelope_id = await slack.click(BOB, GENERAL, ts, RERUN)
        body = await asyncio.wait_for(heard.get(), WAIT_S)
        await slack.wait_for_ack(envelope_id, WAIT_S)
    assert slack.deliveries[envelope_id].type == "interactive"
    assert body["type"] == "block_actions"
    assert body["user"] == {"id": BOB, "username": "bob", "name": "bob", "team_id": "T0TEST"}
    assert body["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": GENERAL,
        "is_ephemeral": False,
        "thread_ts": parent,
    }
    assert body["channel"] == {"id": GENERAL, "name": "general"}
    assert (body["message"]["ts"], body["message"]["thread_ts"]) == (ts, parent)
    assert body["message"]["blocks"] == BOARD_BLOCKS
    assert body["actions"][0]["value"] == "c1"
    assert (body["actions"][0]["block_id"], body["actions"][0]["type"]) == ("board_actions", "button")
    assert body["trigger_id"].count(".") == 2
    assert body["api_app_id"] == "ATEST"


async def test_the_respond_of_a_button_press_is_ephemeral_to_the_presser(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    ts = await board(client)
    async with socket_bot(slack, client) as heard:
        await slack.click(BOB, GENERAL, ts, RERUN)
        await asyncio.wait_for(heard.get(), WAIT_S)
        await slack.wait_until(lambda: len(slack.responses()) == 1, WAIT_S)
    [response] = slack.responses(BOB)
    assert (response["text"], response["visible_to"], response["source"]) == (
        "pressed matrec_rerun",
        BOB,
        "response_url",
    )
    assert slack.responses(ALICE) == []
    assert [m.ts for m in slack.history(GENERAL)] == [ts]


async def test_picking_an_option_sends_selected_option_and_state(slack: SlackEmulator, client: AsyncWebClient) -> None:
    ts = await board(client)
    async with socket_bot(slack, client) as heard:
        await slack.click(ALICE, GENERAL, ts, CHOSE, selected="c1:steel")
        body = await asyncio.wait_for(heard.get(), WAIT_S)
    action = body["actions"][0]
    assert action["type"] == "static_select"
    assert action["selected_option"] == {"text": {"type": "plain_text", "text": "Steel"}, "value": "c1:steel"}
    assert body["state"]["values"][action["block_id"]][CHOSE]["selected_option"]["value"] == "c1:steel"


async def test_clicking_what_the_message_does_not_hold_is_a_test_error(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    ts = await board(client)
    with pytest.raises(AssertionError, match="matrec_split"):
        await slack.click(ALICE, GENERAL, ts, "matrec_split")
    with pytest.raises(AssertionError, match="c2"):
        await slack.click(ALICE, GENERAL, ts, RERUN, value="c2")
    with pytest.raises(AssertionError, match="c1:wood"):
        await slack.click(ALICE, GENERAL, ts, CHOSE, selected="c1:wood")


async def test_a_person_outside_a_private_channel_cannot_click_there(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    private = slack.add_channel("secret", is_private=True, members=[ALICE, slack.bot_user_id])
    ts = await board(client, private.id)
    with pytest.raises(AssertionError, match="cannot see"):
        await slack.click(BOB, private.id, ts, RERUN)


async def test_an_ephemeral_messages_button_carries_is_ephemeral_and_no_message(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    sent = await client.chat_postEphemeral(channel=GENERAL, user=ALICE, text="similar", blocks=BOARD_BLOCKS)
    async with socket_bot(slack, client) as heard:
        with pytest.raises(AssertionError):
            await slack.click(BOB, GENERAL, sent["message_ts"], RERUN)  # not Bob's to see
        await slack.click(ALICE, GENERAL, sent["message_ts"], RERUN)
        body = await asyncio.wait_for(heard.get(), WAIT_S)
    assert body["container"]["is_ephemeral"] is True
    assert "message" not in body


async def test_a_button_press_arrives_over_http_as_a_signed_form_payload(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    ts = await board(client)
    async with http_bot(slack, client) as heard:
        delivery_id = await slack.click(ALICE, GENERAL, ts, RERUN)
        body = await asyncio.wait_for(heard.get(), WAIT_S)
        await slack.wait_until(lambda: len(slack.responses()) == 1, WAIT_S)
    assert slack.delivery.http_deliveries[delivery_id].status == 200
    assert (await slack.wait_for_ack(delivery_id, WAIT_S)).payload is None
    assert (body["type"], body["actions"][0]["action_id"]) == ("block_actions", RERUN)
    assert slack.responses(ALICE)[0]["text"] == "pressed matrec_rerun"


async def test_a_forged_http_interaction_is_refused(slack: SlackEmulator, client: AsyncWebClient) -> None:
    ts = await board(client)
    async with http_bot(slack, client) as heard:
        slack.set_http_target(signing_secret="wrong", events_url=slack.delivery.http_target.events_url)  # type: ignore[union-attr]
        delivery_id = await slack.click(ALICE, GENERAL, ts, RERUN)
    assert slack.delivery.http_deliveries[delivery_id].status == 401
    assert heard.empty()


# --- response_url -------------------------------------------------------------------------------------


async def post_json(url: str, body: dict[str, Any]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as answer:
        return answer.status, await answer.text()


async def test_a_response_url_can_replace_or_delete_the_original_message(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    ts = await board(client)
    async with socket_bot(slack, client) as heard:
        await slack.click(ALICE, GENERAL, ts, RERUN)
        url = (await asyncio.wait_for(heard.get(), WAIT_S))["response_url"]
    status, _ = await post_json(url, {"replace_original": True, "text": "Re-running"})
    assert status == 200
    assert slack.message(GENERAL, ts).text == "Re-running"
    assert slack.responses()[-1]["visible_to"] is None  # everyone sees a replaced message
    await post_json(url, {"delete_original": True})
    assert slack.message(GENERAL, ts).deleted


async def test_a_response_url_takes_five_posts(slack: SlackEmulator, client: AsyncWebClient) -> None:
    ts = await board(client)
    async with socket_bot(slack, client) as heard:
        await slack.click(ALICE, GENERAL, ts, RERUN)
        url = (await asyncio.wait_for(heard.get(), WAIT_S))["response_url"]
        await slack.wait_until(lambda: len(slack.responses()) == 1, WAIT_S)  # Bolt's own respond()
    statuses = [(await post_json(url, {"text": str(i)}))[0] for i in range(5)]
    assert statuses == [200, 200, 200, 200, 404]
    assert len(slack.responses(ALICE)) == 5


# --- slash commands -----------------------------------------------------------------------------------


async def test_a_slash_command_over_the_socket_records_the_ack_and_the_response(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    async with socket_bot(slack, client) as heard:
        envelope_id = await slack.slash_command(ALICE, GENERAL, "history 5")
        body = await asyncio.wait_for(heard.get(), WAIT_S)
        await slack.wait_until(lambda: len(slack.responses()) == 2, WAIT_S)
    delivery = slack.deliveries[envelope_id]
    assert delivery.type == "slash_commands"
    for field in ("token", "team_id", "team_domain", "channel_id", "channel_name", "user_id", "user_name"):
        assert field in body
    assert (body["command"], body["text"], body["user_id"], body["channel_name"]) == (
        "/matrec",
        "history 5",
        ALICE,
        "general",
    )
    assert body["response_url"].startswith(slack.base_url) and body["trigger_id"]
    by_source = {r["source"]: r for r in slack.responses(ALICE)}  # ack and respond() race, as in Slack
    ack, later = by_source["ack"], by_source["response_url"]
    assert (ack["source"], ack["text"], ack["response_type"]) == ("ack", "Looking up history 5", "ephemeral")
    assert (later["source"], later["text"], later["visible_to"]) == ("response_url", "Here is your history", ALICE)
    assert slack.responses(BOB) == []
    assert slack.history(GENERAL) == []


async def test_an_in_channel_ack_becomes_a_channel_message_everyone_sees(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    async with socket_bot(slack, client) as heard:
        await slack.slash_command(ALICE, GENERAL, "announce")
        await asyncio.wait_for(heard.get(), WAIT_S)
        await slack.wait_until(lambda: len(slack.responses()) == 2, WAIT_S)
    announced = slack.responses(BOB)
    assert [(r["text"], r["visible_to"]) for r in announced] == [("Announced", None)]
    assert [m.text for m in slack.history(GENERAL)] == ["Announced"]


async def test_a_slash_command_over_http_is_form_encoded_and_its_ack_body_is_a_response(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    dm = slack.add_im(BOB)
    async with http_bot(slack, client) as heard:
        delivery_id = await slack.slash_command(BOB, dm.id, "search bracket")
        body = await asyncio.wait_for(heard.get(), WAIT_S)
        await slack.wait_until(lambda: len(slack.responses()) == 2, WAIT_S)
    assert slack.delivery.http_deliveries[delivery_id].text == "Looking up search bracket"  # Bolt answers plain text
    assert (body["channel_name"], body["text"]) == ("directmessage", "search bracket")
    by_source = {r["source"]: r["text"] for r in slack.responses(BOB)}
    assert by_source == {"ack": "Looking up search bracket", "response_url": "Here is your history"}


async def test_a_response_url_from_an_ephemeral_button_replaces_that_ephemeral_for_its_reader(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    sent = await client.chat_postEphemeral(channel=GENERAL, user=ALICE, text="Analyse this?", blocks=BOARD_BLOCKS)
    async with socket_bot(slack, client) as heard:
        await slack.click(ALICE, GENERAL, sent["message_ts"], RERUN)
        url = (await asyncio.wait_for(heard.get(), WAIT_S))["response_url"]
        await slack.wait_until(lambda: len(slack.responses()) == 1, WAIT_S)
    await post_json(url, {"replace_original": True, "text": "Analysing"})
    replaced = slack.responses()[-1]
    assert (replaced["replace_original"], replaced["visible_to"], replaced["message_ts"]) == (
        True,
        ALICE,
        sent["message_ts"],
    )
    assert slack.ephemerals[0]["text"] == "Analysing"
    await post_json(url, {"delete_original": True})
    with pytest.raises(AssertionError):
        await slack.click(ALICE, GENERAL, sent["message_ts"], RERUN)  # gone from Alice's view


async def test_with_an_http_target_events_are_posted_signed_with_retry_headers(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    heard: asyncio.Queue[tuple[str, str, str | None]] = asyncio.Queue()
    app = AsyncApp(client=client, signing_secret=SIGNING_SECRET)

    async def on_message(event: dict[str, Any], body: dict[str, Any], request: AsyncBoltRequest) -> None:
        retry_num = request.headers.get("x-slack-retry-num", [None])[0]
        await heard.put((event["text"], body["event_id"], retry_num))

    app.event("message")(on_message)
    server = LoopbackServer(app.web_app())
    base = await server.start()
    try:
        slack.set_http_target(signing_secret=SIGNING_SECRET, events_url=f"{base}/slack/events")
        delivery_id = await slack.deliver_event(slack.user_message(GENERAL, ALICE, "over http"), event_id="Ev1")
        retried = await slack.deliver_event(
            slack.message_event(GENERAL, slack.history(GENERAL)[0].ts), event_id="Ev1", retry_attempt=1
        )
        got = [await asyncio.wait_for(heard.get(), WAIT_S) for _ in range(2)]
    finally:
        await server.stop()
    assert sorted(got, key=lambda g: g[2] or "") == [("over http", "Ev1", None), ("over http", "Ev1", "1")]
    assert (await slack.wait_for_ack(delivery_id, WAIT_S)).payload is None
    assert slack.delivery.http_deliveries[retried].status == 200
    assert slack.deliveries == {}  # nothing went over a socket
