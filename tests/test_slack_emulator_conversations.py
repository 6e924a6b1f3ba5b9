"""Group DMs and membership look-ups: what conversations.members and users.conversations show a bot
token, page by page, under each conversation type's own read scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from emulators.slack import Channel, SlackEmulator
from emulators.slack_identity import DEFAULT_BOT_SCOPES

GENERAL = "C0GENERAL"
ALICE, BOB, CAROL = "U1", "U2", "U3"


@pytest.fixture
def client(slack: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def error_of(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as raised:
        await call
    return raised.value


async def test_a_group_dm_is_an_mpim_and_its_messages_say_so(slack: SlackEmulator, client: AsyncWebClient) -> None:
    mpim = slack.add_mpim([ALICE, BOB])
    event = slack.user_message(mpim.id, ALICE, "which steel?")
    info = await client.conversations_info(channel=mpim.id)
    assert event["channel_type"] == "mpim"
    assert set(mpim.members) == {ALICE, BOB, slack.bot_user_id}
    assert (info["channel"]["is_mpim"], info["channel"]["is_private"], info["channel"]["is_channel"]) == (
        True,
        True,
        False,
    )
    assert info["channel"]["name"].startswith("mpdm-alice--bob--")


async def test_conversations_members_pages_with_a_cursor(slack: SlackEmulator, client: AsyncWebClient) -> None:
    for n in range(5):
        slack.add_user(f"U1{n}", f"user{n}")
    crowd = slack.add_channel("crowd")  # every user, the bot included: 8 members
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        page = await client.conversations_members(channel=crowd.id, limit=3, cursor=cursor)
        seen += page["members"]
        pages += 1
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert seen == crowd.members
    assert pages == 3
    bad = await error_of(client.conversations_members(channel=crowd.id, cursor="not-a-cursor"))
    assert bad.response["error"] == "invalid_cursor"


async def test_a_private_channel_without_the_bot_is_not_found_but_a_public_one_is_listed(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    secret = slack.add_channel("secret", is_private=True, members=[ALICE, BOB])
    public = slack.add_channel("outside", members=[ALICE])
    hidden = await error_of(client.conversations_members(channel=secret.id))
    listed = await client.conversations_members(channel=public.id)
    assert hidden.response["error"] == "channel_not_found"
    assert listed["members"] == [ALICE]


@pytest.mark.parametrize(
    ("scope", "kind"),
    [("channels:read", "public"), ("groups:read", "private"), ("im:read", "im"), ("mpim:read", "mpim")],
)
async def test_each_conversation_type_needs_its_own_read_scope(scope: str, kind: str) -> None:
    async with SlackEmulator(scopes=DEFAULT_BOT_SCOPES - {scope}) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        made: dict[str, Callable[[], Channel]] = {
            "public": lambda: slack.add_channel("pub"),
            "private": lambda: slack.add_channel("priv", is_private=True),
            "im": lambda: slack.add_im(ALICE),
            "mpim": lambda: slack.add_mpim([ALICE, BOB]),
        }
        target = made[kind]().id
        others = [m() for k, m in made.items() if k != kind]
        missing = await error_of(client.conversations_members(channel=target))
        for other in others:
            assert (await client.conversations_members(channel=other.id))["ok"]
    assert (missing.response["error"], missing.response["needed"]) == ("missing_scope", scope)


async def test_without_any_read_scope_the_router_refuses_before_the_method() -> None:
    scopes = DEFAULT_BOT_SCOPES - {"channels:read", "groups:read", "im:read", "mpim:read"}
    async with SlackEmulator(scopes=scopes) as bare:
        client = AsyncWebClient(token=bare.bot_token, base_url=bare.api_url)
        refused = await error_of(client.users_conversations(user=ALICE))
    assert refused.response["error"] == "missing_scope"
    assert "mpim:read" in refused.response["needed"]


async def test_users_conversations_lists_what_the_user_is_in_and_the_bot_can_see(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    slack.add_user(CAROL, "carol")
    shared_private = slack.add_channel("design", is_private=True, members=[ALICE, slack.bot_user_id])
    slack.add_channel("hr", is_private=True, members=[ALICE])  # the bot is not in it: invisible
    outside = slack.add_channel("random", members=[ALICE])  # public, without the bot: visible
    slack.add_channel("carols", members=[CAROL, slack.bot_user_id])  # Alice is not in it
    mpim = slack.add_mpim([ALICE, BOB])
    dm = slack.add_im(ALICE)
    everything = "public_channel,private_channel,mpim,im"
    listed = await client.users_conversations(user=ALICE, types=everything, limit=100)
    public_only = await client.users_conversations(user=ALICE)
    assert {c["id"] for c in listed["channels"]} == {GENERAL, shared_private.id, outside.id, mpim.id, dm.id}
    assert {c["id"] for c in public_only["channels"]} == {GENERAL, outside.id}
    unknown = await error_of(client.users_conversations(user="U404"))
    bad_type = await error_of(client.users_conversations(user=ALICE, types="public_channel,nonsense"))
    assert (unknown.response["error"], bad_type.response["error"]) == ("user_not_found", "invalid_types")


async def test_users_conversations_pages_too(slack: SlackEmulator, client: AsyncWebClient) -> None:
    ids = {GENERAL} | {slack.add_channel(f"c{n}").id for n in range(4)}
    first = await client.users_conversations(user=BOB, limit=2)
    second = await client.users_conversations(user=BOB, limit=2, cursor=first["response_metadata"]["next_cursor"])
    third = await client.users_conversations(user=BOB, limit=2, cursor=second["response_metadata"]["next_cursor"])
    got = [c["id"] for page in (first, second, third) for c in page["channels"]]
    assert set(got) == ids and len(got) == 5
    assert third["response_metadata"]["next_cursor"] == ""


async def test_reading_a_group_dms_history_needs_mpim_history() -> None:
    async with SlackEmulator(scopes=DEFAULT_BOT_SCOPES - {"mpim:history"}) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        mpim = slack.add_mpim([ALICE, BOB])
        ts = slack.user_message(mpim.id, ALICE, "hi")["ts"]
        refused = await error_of(client.conversations_replies(channel=mpim.id, ts=ts))
        general = await client.conversations_history(channel=GENERAL)
    assert (refused.response["error"], refused.response["needed"]) == ("missing_scope", "mpim:history")
    assert general["ok"]


async def test_conversations_open_finds_or_creates_the_bots_dm_with_one_user(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    slack.add_user(CAROL, "carol")
    existing = slack.add_im(ALICE)
    resumed = await client.conversations_open(users=ALICE)
    created = await client.conversations_open(users=CAROL)
    again = await client.conversations_open(users=CAROL, return_im=True)
    by_id = await client.conversations_open(channel=existing.id)
    assert (resumed["channel"]["id"], resumed["already_open"]) == (existing.id, True)
    assert "already_open" not in created.data
    dm = slack.workspace.channel(created["channel"]["id"])
    assert dm.is_im and set(dm.members) == {CAROL, slack.bot_user_id}
    assert (again["channel"]["id"], again["channel"]["is_im"], again["channel"]["user"]) == (dm.id, True, CAROL)
    assert by_id["channel"]["id"] == existing.id
    posted = await client.chat_postMessage(channel=dm.id, text="hello carol")
    assert [m.text for m in slack.history(dm.id)] == ["hello carol"] and posted["ok"]


async def test_conversations_open_answers_bad_input_with_slacks_errors(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    crowd = [slack.add_user(f"U1{n:02d}", f"user{n}").id for n in range(9)]
    arguments: list[dict[str, str]] = [
        {"users": ""},  # the SDK refuses to send neither, so send an empty list
        {"users": "U404"},
        {"users": slack.bot_user_id},
        {"users": ",".join(crowd)},
        {"channel": GENERAL},
        {"channel": "D404"},
        {"users": f"{ALICE},{BOB}"},  # a group DM needs mpim:write
    ]
    errors = [
        (await error_of(client.api_call("conversations.open", params=kwargs))).response["error"] for kwargs in arguments
    ]
    assert errors == [
        "users_list_not_supplied",
        "user_not_found",
        "not_enough_users",
        "too_many_users",
        "method_not_supported_for_channel_type",
        "channel_not_found",
        "missing_scope",
    ]


async def test_conversations_open_needs_im_write() -> None:
    async with SlackEmulator(scopes=DEFAULT_BOT_SCOPES - {"im:write"}) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        refused = await error_of(client.conversations_open(users=ALICE))
    assert (refused.response["error"], refused.response["needed"]) == ("missing_scope", "im:write,mpim:write")
    assert "im:write" in DEFAULT_BOT_SCOPES


async def test_conversations_open_with_several_users_opens_one_group_dm() -> None:
    async with SlackEmulator(scopes=DEFAULT_BOT_SCOPES | {"mpim:write"}) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        first = await client.conversations_open(users=f"{ALICE},{BOB}")
        second = await client.conversations_open(users=f"{BOB},{ALICE}")
        mpim = slack.workspace.channel(first["channel"]["id"])
    assert mpim.is_mpim and set(mpim.members) == {ALICE, BOB, slack.bot_user_id}
    assert (second["channel"]["id"], second["already_open"]) == (mpim.id, True)


async def test_conversations_open_is_rate_limited_as_tier_3(slack: SlackEmulator, client: AsyncWebClient) -> None:
    slack.use_slack_rate_limits(burst=1)
    await client.conversations_open(users=ALICE)
    limited = await error_of(client.conversations_open(users=ALICE))
    assert limited.response.status_code == 429
