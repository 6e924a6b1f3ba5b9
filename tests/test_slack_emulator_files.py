"""Files upload v2 as slack_sdk's files_upload_v2 performs it: URL, upload POST, completion; the file
shared as a bot message in the thread, with its title and alt text kept for tests to read."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from emulators.slack import SlackEmulator

GENERAL = "C0GENERAL"
ALICE = "U1"
CHART = b"\x89PNG\r\n\x1a\n" + b"chart" * 20


@pytest.fixture
def client(slack: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as raised:
        await call
    return str(raised.value.response["error"])


async def test_an_uploaded_chart_lands_in_the_thread_with_title_alt_text_and_bytes(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    parent = slack.user_message(GENERAL, ALICE, "bracket")["ts"]
    answer = await client.files_upload_v2(
        content=CHART,
        filename="scores.png",
        title="Scores by class",
        alt_txt="Bar chart: polymer 0.8, steel 0.6",
        channel=GENERAL,
        thread_ts=parent,
        initial_comment="Scores",
    )
    [uploaded] = slack.uploaded_files(GENERAL)
    assert (uploaded.title, uploaded.alt_txt, uploaded.content) == (
        "Scores by class",
        "Bar chart: polymer 0.8, steel 0.6",
        CHART,
    )
    assert (uploaded.thread_ts, uploaded.initial_comment, uploaded.id) == (parent, "Scores", answer["file"]["id"])
    reply = slack.thread(GENERAL, parent)[-1]
    assert (reply.ts, reply.subtype, reply.user, reply.text) == (uploaded.message_ts, "file_share", "UBOT", "Scores")
    assert reply.files[0]["alt_txt"] == "Bar chart: polymer 0.8, steel 0.6"
    assert answer["file"]["title"] == "Scores by class"
    assert [c.method for c in slack.calls if c.method.startswith("files.")] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    assert slack.calls_to("files.getUploadURLExternal")[0].params["length"] == str(len(CHART))


async def test_uploads_are_listed_per_channel(slack: SlackEmulator, client: AsyncWebClient) -> None:
    parts = slack.add_channel("parts")
    await client.files_upload_v2(content=b"a", filename="a.png", channel=GENERAL)
    await client.files_upload_v2(content=b"b", filename="b.png", channel=parts.id)
    await client.files_upload_v2(content=b"c", filename="c.png")  # not shared anywhere
    assert [u.name for u in slack.uploaded_files(parts.id)] == ["b.png"]
    assert [(u.name, u.channel) for u in slack.uploaded_files()] == [
        ("a.png", GENERAL),
        ("b.png", parts.id),
        ("c.png", None),
    ]


async def test_upload_arguments_are_checked_like_slacks(slack: SlackEmulator, client: AsyncWebClient) -> None:
    assert await error_of(client.files_getUploadURLExternal(filename="x.png", length=0)) == "invalid_arguments"
    long_alt = client.files_getUploadURLExternal(filename="x.png", length=3, alt_txt="a" * 1001)
    assert await error_of(long_alt) == "invalid_arguments"
    assert await error_of(client.files_completeUploadExternal(files=[{"id": "FNOPE"}])) == "file_not_found"
    outside = slack.add_channel("outside", members=[ALICE])
    started = await client.files_getUploadURLExternal(filename="x.png", length=3)
    refused = client.files_completeUploadExternal(files=[{"id": started["file_id"]}], channel_id=outside.id)
    assert await error_of(refused) == "not_in_channel"
    assert slack.uploaded_files() == []


async def test_uploading_needs_files_write() -> None:
    async with SlackEmulator(scopes={"chat:write", "files:read"}) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        assert await error_of(client.files_upload_v2(content=b"a", filename="a.png", channel=GENERAL)) == (
            "missing_scope"
        )
