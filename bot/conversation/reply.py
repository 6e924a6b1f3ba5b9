"""ThreadReply: a person's new message in a thread (or a DM), as the message listener hands it over."""

from __future__ import annotations

from dataclasses import dataclass

from bot.files import SlackFile


@dataclass(frozen=True)
class ThreadReply:
    """One human message that may belong to a consultation thread.

    `text` is plain (mentions decoded, the bot's own mention dropped: `bot.slack_text.plain_text`);
    `raw_text` is Slack's markup as sent, where `<@U…>` tells a mention of a teammate from a name.
    `team` is the workspace of the person (the event's `team`, else the body's `team_id`): a
    streamed answer in a channel must name its recipient's team.
    """

    event_id: str | None
    channel: str
    channel_type: str | None
    ts: str
    thread_ts: str
    user: str | None
    text: str
    raw_text: str
    files: tuple[SlackFile, ...] = ()
    team: str | None = None
