"""The Slack emulator speaks the real protocols: the real slack_sdk and slack_bolt work against it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from emulators.slack import ForeignHost, LoopbackServer, SlackEmulator, TransportFault
from emulators.slack_identity import DEFAULT_BOT_SCOPES

GENERAL = "C0GENERAL"
ALICE = "U1"
SIGNING_SECRET = "test-signing-secret"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
WAIT_S = 5.0


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator() as emulator:
        yield emulator


@pytest.fixture
def client(slack: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def api_error(call: Awaitable[Any]) -> SlackApiError:
    """The SlackApiError an awaited client call raises."""
    with pytest.raises(SlackApiError) as raised:
        await call
    return raised.value


@dataclass(frozen=True)
class Heard:
    """One event a Bolt listener received, with the retry headers Bolt exposed."""

    body: dict[str, Any]
    retry_num: str | None
    retry_reason: str | None


def listening_app(client: AsyncWebClient, heard: asyncio.Queue[Heard], **kwargs: Any) -> AsyncApp:
    """A real Bolt AsyncApp whose `message` listener queues what it hears."""
    app = AsyncApp(client=client, **kwargs)

    async def on_message(body: dict[str, Any], request: AsyncBoltRequest) -> None:
        retry_num = request.headers.get("x-slack-retry-num", [None])[0]
        retry_reason = request.headers.get("x-slack-retry-reason", [None])[0]
        await heard.put(Heard(body, retry_num, retry_reason))

    app.event("message")(on_message)
    return app


@asynccontextmanager
async def socket_mode(app: AsyncApp, app_token: str) -> AsyncIterator[AsyncSocketModeHandler]:
    """Bolt's real Socket Mode handler, connected (as the bot's entry point connects it) then closed."""
    handler = AsyncSocketModeHandler(app, app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]  # unannotated in slack_bolt
    try:
        yield handler
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]


@pytest.fixture
async def socket_bot(slack: SlackEmulator, client: AsyncWebClient) -> AsyncIterator[asyncio.Queue[Heard]]:
    heard: asyncio.Queue[Heard] = asyncio.Queue()
    async with socket_mode(listening_app(client, heard), slack.app_token):
        await slack.wait_for_socket_connection(WAIT_S)
        yield heard


@pytest.fixture
async def http_bot(slack: SlackEmulator, client: AsyncWebClient) -> AsyncIterator[tuple[str, asyncio.Queue[Heard]]]:
    heard: asyncio.Queue[Heard] = asyncio.Queue()
    server = LoopbackServer(listening_app(client, heard, signing_secret=SIGNING_SECRET).web_app())
    base = await server.start()
    yield f"{base}/slack/events", heard
    await server.stop()


# --- Web API -----------------------------------------------------------------------------------


async def test_auth_test_reports_the_bot_user(slack: SlackEmulator, client: AsyncWebClient) -> None:
    answer = await client.auth_test()
    assert answer["user_id"] == "UBOT"
    assert answer["bot_id"] == "BBOT"
    assert answer["team_id"] == "T0TEST"
    assert answer["is_enterprise_install"] is False
    assert "files:read" in answer.headers["x-oauth-scopes"]


async def test_a_wrong_token_is_invalid_auth_and_no_token_is_not_authed(slack: SlackEmulator) -> None:
    wrong = await api_error(AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test())
    missing = await api_error(AsyncWebClient(base_url=slack.api_url).auth_test())
    assert (wrong.response.status_code, wrong.response["error"]) == (200, "invalid_auth")
    assert missing.response["error"] == "not_authed"


async def test_only_the_app_token_opens_a_socket_mode_url(slack: SlackEmulator, client: AsyncWebClient) -> None:
    opened = await client.apps_connections_open(app_token=slack.app_token)
    refused = await api_error(client.apps_connections_open(app_token=slack.bot_token))
    assert opened["url"].startswith(slack.base_url.replace("http://", "ws://") + "/socket?ticket=")
    assert refused.response["error"] == "not_allowed_token_type"


async def test_an_unknown_method_answers_unknown_method(client: AsyncWebClient) -> None:
    error = await api_error(client.api_call("chat.teleport"))
    assert error.response["error"] == "unknown_method"


async def test_an_updated_message_keeps_every_version(slack: SlackEmulator, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=GENERAL, text="Analysing...")
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "*Steel*"}}
    await client.chat_update(channel=GENERAL, ts=posted["ts"], text="Half way")
    updated = await client.chat_update(channel=GENERAL, ts=posted["ts"], text="Steel", blocks=[section])
    versions = slack.versions(GENERAL, posted["ts"])
    assert [v.text for v in versions] == ["Analysing...", "Half way", "Steel"]
    assert versions[-1].blocks == [section]
    assert updated["message"]["blocks"] == [section]
    assert slack.message(GENERAL, posted["ts"]).bot_id == "BBOT"


async def test_message_timestamps_strictly_increase(client: AsyncWebClient) -> None:
    stamps = [(await client.chat_postMessage(channel=GENERAL, text=str(i)))["ts"] for i in range(5)]
    assert stamps == sorted(stamps, key=float)
    assert len({float(s) for s in stamps}) == 5


async def test_replies_form_a_thread_under_the_parent(slack: SlackEmulator, client: AsyncWebClient) -> None:
    parent = slack.upload_message(GENERAL, ALICE, "what is this?", [slack.add_file(PNG, "a.png", "image/png", "png")])
    await client.chat_postMessage(channel=GENERAL, thread_ts=parent["ts"], text="Looking")
    await client.chat_postMessage(channel=GENERAL, thread_ts=parent["ts"], text="Steel")
    thread = slack.thread(GENERAL, parent["ts"])
    assert [m.text for m in thread] == ["what is this?", "Looking", "Steel"]
    assert [m.ts for m in slack.history(GENERAL)] == [parent["ts"]]


async def test_form_encoded_blocks_arrive_as_a_json_string_and_are_decoded(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    blocks = [{"type": "divider"}]
    posted = await client.api_call(
        "chat.postMessage", data={"channel": GENERAL, "text": "hi", "blocks": json.dumps(blocks)}
    )
    call = slack.calls_to("chat.postMessage")[-1]
    assert (call.encoding, call.params["blocks"]) == ("form", blocks)
    assert slack.message(GENERAL, posted["ts"]).blocks == blocks


async def test_reactions_are_added_once_and_removed_once(slack: SlackEmulator, client: AsyncWebClient) -> None:
    ts = slack.user_message(GENERAL, ALICE, "hello")["ts"]
    await client.reactions_add(channel=GENERAL, timestamp=ts, name="eyes")
    again = await api_error(client.reactions_add(channel=GENERAL, timestamp=ts, name="eyes"))
    assert slack.reactions(GENERAL, ts) == {"eyes": ["UBOT"]}
    await client.reactions_remove(channel=GENERAL, timestamp=ts, name="eyes")
    gone = await api_error(client.reactions_remove(channel=GENERAL, timestamp=ts, name="eyes"))
    assert (again.response["error"], gone.response["error"]) == ("already_reacted", "no_reaction")
    assert slack.reactions(GENERAL, ts) == {}


async def test_update_enforces_slacks_size_limits(client: AsyncWebClient) -> None:
    ts = (await client.chat_postMessage(channel=GENERAL, text="x" * 5000))["ts"]
    too_long = await api_error(client.chat_update(channel=GENERAL, ts=ts, text="x" * 4001))
    divider = {"type": "divider"}
    too_many = await api_error(client.chat_update(channel=GENERAL, ts=ts, text="t", blocks=[divider] * 51))
    wide = {"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}
    too_wide = await api_error(client.chat_update(channel=GENERAL, ts=ts, text="t", blocks=[wide]))
    assert too_long.response["error"] == "msg_too_long"
    assert too_many.response["error"] == "invalid_blocks"
    assert too_wide.response["errors"] == ["must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]


async def test_update_refuses_unknown_and_foreign_messages(slack: SlackEmulator, client: AsyncWebClient) -> None:
    theirs = slack.user_message(GENERAL, ALICE, "mine")["ts"]
    unknown = await api_error(client.chat_update(channel=GENERAL, ts="1.000001", text="t"))
    foreign = await api_error(client.chat_update(channel=GENERAL, ts=theirs, text="t"))
    assert (unknown.response["error"], foreign.response["error"]) == (
        "message_not_found",
        "cant_update_message",
    )


async def test_a_deleted_reply_leaves_the_thread_but_stays_inspectable(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    ts = slack.user_message(GENERAL, ALICE, "photo")["ts"]
    reply = await client.chat_postMessage(channel=GENERAL, thread_ts=ts, text="oops")
    await client.chat_delete(channel=GENERAL, ts=reply["ts"])
    assert [m.text for m in slack.thread(GENERAL, ts)] == ["photo"]
    assert slack.message(GENERAL, reply["ts"]).deleted


async def test_an_ephemeral_message_stays_out_of_the_channel(slack: SlackEmulator, client: AsyncWebClient) -> None:
    await client.chat_postEphemeral(channel=GENERAL, user=ALICE, text="Only you can see this")
    assert [e["user"] for e in slack.ephemerals] == [ALICE]
    assert slack.history(GENERAL) == []


async def test_a_person_editing_a_message_yields_message_changed_with_both_versions(
    slack: SlackEmulator,
) -> None:
    ts = slack.user_message(GENERAL, ALICE, "before")["ts"]
    event = slack.message_changed(GENERAL, ts, text="after")
    assert (event["subtype"], event["hidden"]) == ("message_changed", True)
    assert (event["previous_message"]["text"], event["message"]["text"]) == ("before", "after")
    assert event["message"]["blocks"][0]["elements"][0]["elements"] == [{"type": "text", "text": "after"}]
    assert [v.text for v in slack.versions(GENERAL, ts)] == ["before", "after"]


async def test_a_thread_status_shows_until_the_bot_replies(slack: SlackEmulator, client: AsyncWebClient) -> None:
    ts = slack.user_message(GENERAL, ALICE, "photo")["ts"]
    await client.assistant_threads_setStatus(channel_id=GENERAL, thread_ts=ts, status="is analysing...")
    assert slack.thread_status(GENERAL, ts) == "is analysing..."
    await client.chat_postMessage(channel=GENERAL, thread_ts=ts, text="Done")
    assert slack.thread_status(GENERAL, ts) is None


async def test_streaming_is_feature_disabled_until_enabled(slack: SlackEmulator, client: AsyncWebClient) -> None:
    ts = slack.user_message(GENERAL, ALICE, "photo")["ts"]
    disabled = await api_error(
        client.chat_startStream(
            channel=GENERAL,
            thread_ts=ts,
            markdown_text="a",
            recipient_team_id="T0TEST",
            recipient_user_id=ALICE,
        )
    )
    assert disabled.response["error"] == "feature_disabled"
    slack.enable_streaming()
    streamer = await client.chat_stream(
        channel=GENERAL, thread_ts=ts, buffer_size=1, recipient_team_id="T0TEST", recipient_user_id=ALICE
    )
    await streamer.append(markdown_text="Steel ")
    await streamer.append(markdown_text="wins")
    await streamer.stop()
    assert streamer.ts is not None
    assert slack.message(GENERAL, streamer.ts).text == "Steel wins"
    assert not slack.message(GENERAL, streamer.ts).streaming


async def test_users_and_conversations_can_be_looked_up(client: AsyncWebClient) -> None:
    user = await client.users_info(user=ALICE)
    channel = await client.conversations_info(channel=GENERAL)
    assert user["user"]["name"] == "alice"
    assert (channel["channel"]["name"], channel["channel"]["is_member"]) == ("general", True)


async def test_a_conversation_look_up_without_its_read_scope_is_missing_scope() -> None:
    async with SlackEmulator(scopes=DEFAULT_BOT_SCOPES - {"channels:read"}) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        missing_scope = await api_error(client.conversations_info(channel=GENERAL))
    assert (missing_scope.response["error"], missing_scope.response["needed"]) == ("missing_scope", "channels:read")


# --- rate limits ----------------------------------------------------------------------------------


async def test_a_rate_limited_call_answers_429_with_retry_after(slack: SlackEmulator, client: AsyncWebClient) -> None:
    ts = (await client.chat_postMessage(channel=GENERAL, text="a"))["ts"]
    slack.ratelimit_next("chat.update", retry_after_s=7)
    limited = await api_error(client.chat_update(channel=GENERAL, ts=ts, text="b"))
    assert limited.response.status_code == 429
    assert limited.response.headers["Retry-After"] == "7"
    assert limited.response["error"] == "ratelimited"
    assert slack.ratelimited_count["chat.update"] == 1


async def test_the_sdk_retry_handler_rides_out_a_429(slack: SlackEmulator, client: AsyncWebClient) -> None:
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    ts = (await client.chat_postMessage(channel=GENERAL, text="a"))["ts"]
    slack.ratelimit_next("chat.update", retry_after_s=0)
    await client.chat_update(channel=GENERAL, ts=ts, text="b")
    assert slack.ratelimited_count["chat.update"] == 1
    assert [c.status for c in slack.calls_to("chat.update")] == [429, 200]
    assert slack.message(GENERAL, ts).text == "b"


async def test_a_token_bucket_limits_bursts_per_channel(slack: SlackEmulator, client: AsyncWebClient) -> None:
    other = slack.add_channel("parts")
    slack.rate_limit("chat.postMessage", per_s=0.01, burst=2, per_channel=True)
    await client.chat_postMessage(channel=GENERAL, text="1")
    await client.chat_postMessage(channel=GENERAL, text="2")
    third = await api_error(client.chat_postMessage(channel=GENERAL, text="3"))
    await client.chat_postMessage(channel=other.id, text="elsewhere")
    assert third.response.status_code == 429
    assert int(third.response.headers["Retry-After"]) >= 1


# --- transport faults ------------------------------------------------------------------------------


def bare_client(slack: SlackEmulator, *, timeout_s: int = 30) -> AsyncWebClient:
    """A client without retry handlers, so each fault reaches the caller as it happened."""
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, timeout=timeout_s, retry_handlers=[])


async def test_a_dropped_connection_is_server_disconnected_and_changes_nothing(slack: SlackEmulator) -> None:
    client = bare_client(slack)
    ts = (await client.chat_postMessage(channel=GENERAL, text="a"))["ts"]
    slack.fail_transport("chat.update", TransportFault.DISCONNECT)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.chat_update(channel=GENERAL, ts=ts, text="b")
    assert slack.message(GENERAL, ts).text == "a"
    assert slack.transport_faults_served["chat.update"] == 1
    assert slack.calls_to("chat.update") == []  # no answer, so no recorded call
    await client.chat_update(channel=GENERAL, ts=ts, text="c")  # only the next call failed
    assert slack.message(GENERAL, ts).text == "c"


async def test_a_reset_connection_is_a_connection_reset_by_peer(slack: SlackEmulator) -> None:
    client = bare_client(slack)
    slack.fail_transport("chat.postMessage", TransportFault.RESET)
    with pytest.raises(aiohttp.ClientOSError, match="Connection reset by peer"):
        await client.chat_postMessage(channel=GENERAL, text="a")
    assert slack.history(GENERAL) == []


async def test_a_stalled_call_times_out_in_a_client_that_gives_up_first(slack: SlackEmulator) -> None:
    client = bare_client(slack, timeout_s=1)
    ts = (await client.chat_postMessage(channel=GENERAL, text="a"))["ts"]
    slack.fail_transport("chat.update", TransportFault.STALL)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await client.chat_update(channel=GENERAL, ts=ts, text="b")
    assert 0.9 < time.monotonic() - started < 2.0
    assert slack.message(GENERAL, ts).text == "a"


async def test_a_stall_ends_in_a_dropped_connection_for_a_patient_client(slack: SlackEmulator) -> None:
    client = bare_client(slack)
    slack.fail_transport("auth.test", TransportFault.STALL, stall_s=0.05)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.auth_test()


async def test_the_default_connection_retry_rides_out_one_drop_but_not_a_second(slack: SlackEmulator) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)  # slack_sdk's default: one retry
    slack.fail_transport("auth.test", TransportFault.DISCONNECT)
    slack.fail_transport("auth.test", TransportFault.RESET)  # queued behind the first
    with pytest.raises(aiohttp.ClientOSError):
        await client.auth_test()
    assert slack.transport_faults_served["auth.test"] == 2
    assert (await client.auth_test())["ok"]


async def test_stop_is_quick_with_a_call_stalled() -> None:
    slack = SlackEmulator()
    await slack.start()
    slack.fail_transport("auth.test", TransportFault.STALL)
    call = asyncio.create_task(bare_client(slack).auth_test())
    await slack.wait_until(lambda: slack.transport_faults_served["auth.test"] == 1, WAIT_S)
    started = time.monotonic()
    await slack.stop()
    assert time.monotonic() - started < 1.0
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call


async def test_a_bot_message_deleted_mid_run_answers_updates_with_message_not_found(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    ts = (await client.chat_postMessage(channel=GENERAL, text="board"))["ts"]
    slack.message_deleted(GENERAL, ts)  # e.g. a workspace admin removed it
    gone = await api_error(client.chat_update(channel=GENERAL, ts=ts, text="update"))
    assert (gone.response.status_code, gone.response["error"]) == (200, "message_not_found")


# --- files ----------------------------------------------------------------------------------------


async def test_a_private_file_downloads_only_with_the_bot_token(slack: SlackEmulator) -> None:
    url = slack.add_file(PNG, "part.png", "image/png", "png")["url_private_download"]
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"Authorization": f"Bearer {slack.bot_token}"}) as with_token:
            assert (with_token.status, with_token.content_type) == (200, "image/png")
            assert await with_token.read() == PNG
        async with http.get(url) as without_token:
            assert (without_token.status, without_token.content_type) == (200, "text/html")
            assert (await without_token.text()).startswith("<!DOCTYPE html>")
    assert [(d.had_token, d.token_valid) for d in slack.downloads] == [(True, True), (False, False)]


async def test_a_redirect_to_another_host_is_recorded_with_whether_a_token_went_there(
    slack: SlackEmulator,
) -> None:
    async with ForeignHost(PNG, "image/png") as foreign, aiohttp.ClientSession() as http:
        target = foreign.url("/origin/part.png")
        url = slack.add_file(PNG, "part.png", "image/png", "png", redirect_to=target)["url_private_download"]
        auth = {"Authorization": f"Bearer {slack.bot_token}"}
        async with http.get(url, headers=auth, allow_redirects=False) as first:
            assert (first.status, first.headers["Location"]) == (302, target)
        async with http.get(first.headers["Location"]) as second:  # followed by hand, token left behind
            assert await second.read() == PNG
        assert not foreign.received_token
        async with http.get(target, headers=auth):  # what a careless bot would do
            pass
        assert foreign.received_token
    assert slack.downloads[0].redirected_to == target


async def test_a_slack_connect_stub_is_completed_by_files_info(slack: SlackEmulator, client: AsyncWebClient) -> None:
    stub = slack.add_file(PNG, "part.png", "image/png", "png", connect_stub=True)
    info = await client.files_info(file=stub["id"])
    assert stub["file_access"] == "check_file_info"
    assert "url_private_download" not in stub
    assert info["file"]["url_private_download"].startswith(slack.base_url)
    assert info["file"]["size"] == len(PNG)
    missing = await api_error(client.files_info(file="FNOPE"))
    assert missing.response["error"] == "file_not_found"


async def test_files_upload_v2_shares_the_file_in_the_thread(slack: SlackEmulator, client: AsyncWebClient) -> None:
    ts = slack.user_message(GENERAL, ALICE, "photo")["ts"]
    uploaded = await client.files_upload_v2(
        content=b"chart-bytes", filename="chart.png", channel=GENERAL, thread_ts=ts, initial_comment="Scores"
    )
    reply = slack.thread(GENERAL, ts)[-1]
    assert (reply.user, reply.text, reply.files[0]["name"]) == ("UBOT", "Scores", "chart.png")
    assert slack.files.files[uploaded["file"]["id"]].content == b"chart-bytes"


# --- Socket Mode with the real Bolt ---------------------------------------------------------------


async def test_an_upload_reaches_a_bolt_listener_and_is_acked(
    slack: SlackEmulator, socket_bot: asyncio.Queue[Heard]
) -> None:
    photo = slack.add_file(PNG, "part.png", "image/png", "png")
    event = slack.upload_message(GENERAL, ALICE, "what material?", [photo])
    envelope_id = await slack.deliver_event(event)
    heard = await asyncio.wait_for(socket_bot.get(), WAIT_S)
    ack = await slack.wait_for_ack(envelope_id, WAIT_S)
    assert heard.body["event"]["subtype"] == "file_share"
    assert heard.body["event"]["files"][0]["id"] == photo["id"]
    assert heard.body["authorizations"][0]["user_id"] == "UBOT"
    assert (heard.retry_num, heard.retry_reason) == ("0", "")  # first deliveries carry retry_attempt 0
    assert ack.connection_id == slack.deliveries[envelope_id].connection_id
    assert len(slack.calls_to("auth.test")) == 1  # Bolt authorizes the first request with auth.test


async def test_a_redelivery_repeats_the_event_id_with_retry_headers(
    slack: SlackEmulator, socket_bot: asyncio.Queue[Heard]
) -> None:
    first = await slack.deliver_event(slack.user_message(GENERAL, ALICE, "hello"))
    original = await asyncio.wait_for(socket_bot.get(), WAIT_S)
    again = await slack.redeliver(first, retry_attempt=1, retry_reason="timeout")
    retried = await asyncio.wait_for(socket_bot.get(), WAIT_S)
    await slack.wait_for_ack(again, WAIT_S)
    assert retried.body["event_id"] == original.body["event_id"]
    assert (retried.retry_num, retried.retry_reason) == ("1", "timeout")


async def test_a_refresh_requested_disconnect_reconnects_and_events_keep_flowing(
    slack: SlackEmulator, socket_bot: asyncio.Queue[Heard]
) -> None:
    first = await slack.wait_for_socket_connection(WAIT_S)
    await slack.disconnect("refresh_requested")
    await slack.wait_until(lambda: not first.is_open and len(slack.socket.open_connections) == 1, WAIT_S)
    envelope_id = await slack.deliver_event(slack.user_message(GENERAL, ALICE, "still there?"))
    await slack.wait_for_ack(envelope_id, WAIT_S)
    assert (await asyncio.wait_for(socket_bot.get(), WAIT_S)).body["event"]["text"] == "still there?"
    assert len(slack.calls_to("apps.connections.open")) == 2


async def test_a_dropped_socket_is_replaced(slack: SlackEmulator, socket_bot: asyncio.Queue[Heard]) -> None:
    first = await slack.wait_for_socket_connection(WAIT_S)
    await slack.drop_socket_connections()
    await slack.wait_until(lambda: not first.is_open and len(slack.socket.open_connections) == 1, WAIT_S)
    envelope_id = await slack.deliver_event(slack.user_message(GENERAL, ALICE, "back"))
    await slack.wait_for_ack(envelope_id, WAIT_S)


async def test_the_bots_own_writes_echo_back_and_bolt_skips_them(
    slack: SlackEmulator, client: AsyncWebClient, socket_bot: asyncio.Queue[Heard]
) -> None:
    slack.echo_bot_messages = True
    posted = await client.chat_postMessage(channel=GENERAL, text="Looking")
    await client.chat_update(channel=GENERAL, ts=posted["ts"], text="Steel")
    await slack.wait_until(lambda: len(slack.deliveries) == 2, WAIT_S)
    for envelope_id in list(slack.deliveries):
        await slack.wait_for_ack(envelope_id, WAIT_S)
    echoed = {d.payload["event"].get("subtype", "plain") for d in slack.deliveries.values()}
    await slack.deliver_event(slack.user_message(GENERAL, ALICE, "hi"))
    heard = await asyncio.wait_for(socket_bot.get(), WAIT_S)
    assert echoed == {"plain", "message_changed"}
    assert heard.body["event"]["text"] == "hi"
    assert socket_bot.empty()


async def test_stop_is_quick_with_a_client_connected() -> None:
    slack = SlackEmulator()
    await slack.start()
    app = AsyncApp(client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
    async with socket_mode(app, slack.app_token):
        await slack.wait_for_socket_connection(WAIT_S)
        started = time.monotonic()
        await slack.stop()
        assert time.monotonic() - started < 2.0


async def test_waiting_for_a_condition_that_never_holds_times_out(slack: SlackEmulator) -> None:
    with pytest.raises(TimeoutError, match="nothing happens"):
        await slack.wait_until(lambda: False, 0.05, "nothing happens")


# --- HTTP mode with the real Bolt -----------------------------------------------------------------


async def test_a_signed_event_reaches_the_listener(
    slack: SlackEmulator, http_bot: tuple[str, asyncio.Queue[Heard]]
) -> None:
    url, heard = http_bot
    body = slack.event_callback(slack.user_message(GENERAL, ALICE, "over http"))
    status, _ = await slack.post_signed(
        url, body, signing_secret=SIGNING_SECRET, retry_num=1, retry_reason="http_timeout"
    )
    got = await asyncio.wait_for(heard.get(), WAIT_S)
    assert status == 200
    assert got.body["event_id"] == body["event_id"]
    assert (got.retry_num, got.retry_reason) == ("1", "http_timeout")


async def test_unsigned_stale_and_forged_requests_are_refused(
    slack: SlackEmulator, http_bot: tuple[str, asyncio.Queue[Heard]]
) -> None:
    url, heard = http_bot
    body = slack.event_callback(slack.user_message(GENERAL, ALICE, "sneaky"))
    unsigned = await slack.post_signed(url, body, signing_secret=SIGNING_SECRET, sign=False)
    stale = await slack.post_signed(url, body, signing_secret=SIGNING_SECRET, timestamp=int(time.time()) - 301)
    forged = await slack.post_signed(url, body, signing_secret="not-the-secret")
    assert [unsigned.status, stale.status, forged.status] == [401, 401, 401]
    assert heard.empty()


async def test_the_url_verification_challenge_is_answered(
    slack: SlackEmulator, http_bot: tuple[str, asyncio.Queue[Heard]]
) -> None:
    status, text = await slack.post_url_verification(http_bot[0], signing_secret=SIGNING_SECRET, challenge="abc123")
    assert (status, json.loads(text)) == (200, {"challenge": "abc123"})
