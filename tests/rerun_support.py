"""Reading re-runs in the Slack emulator and the store: boards, buttons, offers, records, Claude requests."""

from __future__ import annotations

from pathlib import Path

from bot import actions
from bot.blocks.board import TITLE
from bot.store import Consultation, Store
from emulators.claude import ClaudeEmulator
from emulators.claude_records import RecordedRequest
from emulators.slack import SlackEmulator
from emulators.slack_workspace import Message
from tests.bot_support import WAIT_S, Upload, bot_replies


def action_ids(message: Message) -> set[str]:
    """The action ids of every button and select in the message."""
    return {
        str(element.get("action_id"))
        for block in message.blocks or []
        if block.get("type") == "actions"
        for element in block.get("elements", [])
    }


def is_board(message: Message) -> bool:
    """A consultation board, in whatever state (its fallback text names the board's title first)."""
    return message.text.startswith(TITLE)


def final_boards(slack: SlackEmulator, sent: Upload) -> list[Message]:
    """The boards in the upload's thread that reached their final state (feedback buttons), oldest first."""
    return [m for m in bot_replies(slack, sent.channel, sent.ts) if is_board(m) and actions.HELPFUL in action_ids(m)]


def charts(slack: SlackEmulator, sent: Upload) -> int:
    """How many score charts the bot uploaded into the upload's thread (one per final consultation)."""
    return sum(1 for u in slack.uploaded_files(sent.channel) if u.thread_ts == sent.ts)


async def wait_final_boards(slack: SlackEmulator, sent: Upload, count: int) -> list[Message]:
    """Wait until `count` consultations in the thread are final (their chart follows the stored final
    state); returns the final boards."""
    try:
        await slack.wait_until(lambda: charts(slack, sent) >= count, WAIT_S, what=f"{count} charts")
    except TimeoutError as error:
        shown = "\n".join(
            f"- {m.text[:200]!r} {sorted(action_ids(m))}" for m in bot_replies(slack, sent.channel, sent.ts)
        )
        raise TimeoutError(f"{error}; the thread shows:\n{shown}") from None
    return final_boards(slack, sent)


def with_action(slack: SlackEmulator, sent: Upload, action_id: str) -> list[Message]:
    """The bot's messages in the thread that carry the element `action_id`, oldest first."""
    return [m for m in bot_replies(slack, sent.channel, sent.ts) if action_id in action_ids(m)]


async def wait_for_text(slack: SlackEmulator, sent: Upload, text: str) -> Message:
    """Wait for a bot reply in the thread that says `text`; returns it."""

    def found() -> Message | None:
        return next((m for m in bot_replies(slack, sent.channel, sent.ts) if text in m.text), None)

    await slack.wait_until(lambda: found() is not None, WAIT_S, what=repr(text))
    message = found()
    assert message is not None
    return message


async def thread_records(tmp_path: Path, sent: Upload) -> list[Consultation]:
    """The consultations stored in the upload's thread, oldest first."""
    async with await Store.open(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        return await store.for_thread(sent.channel, sent.ts)


def branches_since(claude: ClaudeEmulator, start: int) -> list[RecordedRequest]:
    """The branch requests Claude received after the first `start` requests."""
    return [r for r in claude.requests[start:] if r.kind.kind == "branch"]


def part_context(request: RecordedRequest) -> str:
    """The `<part_context>` a request carried (the whole user text if it has none)."""
    text = "\n".join(
        block.get("text", "")
        for message in request.body.get("messages", [])
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "text"
    )
    start, end = text.find("<part_context>"), text.find("</part_context>")
    return text[start + len("<part_context>") : end] if 0 <= start < end else text
