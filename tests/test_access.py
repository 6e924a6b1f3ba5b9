"""Access: membership from conversations.members (every page, remembered briefly), and the rules on it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.access import Access


def _response(data: dict[str, Any]) -> AsyncSlackResponse:
    return AsyncSlackResponse(
        client=AsyncWebClient(token="xoxb-fake"),
        http_verb="POST",
        api_url="conversations.members",
        req_args={},
        data=data,
        headers={},
        status_code=200,
    )


@dataclass
class FakeMembers:
    """Answers conversations.members and users.conversations from a table, `page` items at a time,
    and keeps every call."""

    channels: dict[str, list[str]]
    page: int = 2
    errors: dict[str, str] = field(default_factory=dict)
    history: list[tuple[str, str | None]] = field(default_factory=list)

    async def conversations_members(
        self, *, channel: str, cursor: str | None = None, limit: int | None = None
    ) -> AsyncSlackResponse:
        self.history.append((channel, cursor))
        self._refuse(channel)
        return self._page("members", self.channels[channel], cursor)

    async def users_conversations(
        self, *, cursor: str | None = None, limit: int | None = None, types: str | None = None, user: str | None = None
    ) -> AsyncSlackResponse:
        assert user is not None and types == "public_channel,private_channel,mpim,im"
        self.history.append((user, cursor))
        self._refuse(user)
        mine = [{"id": channel} for channel, members in self.channels.items() if user in members]
        return self._page("channels", mine, cursor)

    def _refuse(self, key: str) -> None:
        if key in self.errors:
            refused = _response({"ok": False, "error": self.errors[key]})
            raise SlackApiError("refused", refused)  # type: ignore[no-untyped-call]  # unannotated in slack_sdk

    def _page(self, name: str, items: list[Any], cursor: str | None) -> AsyncSlackResponse:
        start = int(cursor or 0)
        end = start + self.page
        next_cursor = str(end) if end < len(items) else ""
        return _response({"ok": True, name: items[start:end], "response_metadata": {"next_cursor": next_cursor}})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


CHANNELS = {
    "C1": ["U1", "U2", "U3", "U4", "U5", "UBOT"],
    "G1": ["U1", "UBOT"],
    "D1": ["U2", "UBOT"],
}


def _channels() -> dict[str, list[str]]:
    return {channel: list(members) for channel, members in CHANNELS.items()}


async def test_members_are_read_across_every_page() -> None:
    fake = FakeMembers(_channels())
    access = Access(fake)
    assert await access.members("C1") == frozenset(CHANNELS["C1"])
    assert [cursor for _, cursor in fake.history] == [None, "2", "4"]


async def test_membership_is_remembered_for_the_ttl_and_asked_again_after() -> None:
    fake, clock = FakeMembers(_channels(), page=100), Clock()
    access = Access(fake, ttl_s=60.0, clock=clock)
    await access.members("G1")
    clock.now += 59.0
    await access.members("G1")
    assert len(fake.history) == 1
    fake.channels["G1"] = ["U1", "U2", "UBOT"]
    clock.now += 2.0
    assert "U2" in await access.members("G1")
    assert len(fake.history) == 2


async def test_a_conversation_slack_will_not_describe_has_no_members() -> None:
    fake = FakeMembers(_channels(), errors={"G9": "channel_not_found"})
    access = Access(fake)
    assert await access.members("G9") == frozenset()
    assert not await access.can_see_all({"U1"}, "G9")


async def test_visible_channels_are_those_the_user_is_in_asked_once_per_person() -> None:
    fake = FakeMembers(_channels(), page=1)
    access = Access(fake)
    assert await access.visible_channels("U1", ["C1", "G1", "D1", "C9"]) == {"C1", "G1"}
    assert await access.visible_channels("U1", ["G1"]) == {"G1"}
    assert fake.history == [("U1", None), ("U1", "1")]  # both pages, then remembered
    assert await access.visible_channels("U2", ["C1", "G1", "D1"]) == {"C1", "D1"}
    assert await access.visible_channels("U9", ["C1", "G1", "D1"]) == set()


async def test_a_person_slack_will_not_describe_sees_nothing() -> None:
    access = Access(FakeMembers(_channels(), errors={"U1": "user_not_found"}))
    assert await access.visible_channels("U1", ["C1", "G1"]) == set()


async def test_can_see_all_needs_every_viewer_in_the_linked_conversation() -> None:
    access = Access(FakeMembers(_channels()))
    assert await access.can_see_all({"U1", "U2"}, "C1")
    assert not await access.can_see_all({"U1", "U2"}, "G1")
    assert await access.can_see_all({"U1"}, "G1")
    assert not await access.can_see_all(set(), "C1")  # nobody to show it to: show nothing


async def test_concurrent_questions_about_one_channel_ask_slack_once() -> None:
    fake = FakeMembers(_channels(), page=100)
    access = Access(fake)
    await asyncio.gather(*(access.members("C1") for _ in range(5)))
    assert len(fake.history) == 1
