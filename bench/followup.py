"""Follow-up benchmark: `python -m bench.followup [--runs N] [--json]`.

The real bot process (`python -m bot`, Socket Mode) against the Slack emulator (in this process,
streaming enabled, Slack-like rate limits) and the Claude emulator (its own process, thinking off:
every call takes L = 1.0 s, first byte at F = 0.2 s, 20% of L). Each run starts all three afresh,
then in #general:

1. one upload with its requirements; once its board is final, the board's size is measured here
   (the issue's rule, counted by this script, not by the bot: the text lines of every block —
   section text and fields, context elements, headers, markdown — buttons and selects not counted)
   and the line the aggregator's reasoning starts on (its first words, read from the bot's own
   SQLite file, found in the board's lines);
2. a follow-up question in the thread: from the question's delivery to the first version of the
   bot's answer that shows answer text (the Slack emulator's record of the streamed message);
3. a second, different question a few seconds later (well within the 5-minute cache lifetime):
   whether its Claude request read the shared prefix (system, tools, photo, consultation) from the
   cache the first follow-up wrote (`cache_read_input_tokens` > 0).

Ideal for the first streamed text: F = 0.2 s (the emulator's first byte; nothing can show sooner),
plus the event's delivery and one Web API call, which the ideal leaves out.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.bot_process import GENERAL, reacted, running_bot, slack_like_limits, upload
from bench.claude_process import ClaudeService, claude_process
from bench.photos import photo
from bench.targets import Figure, Target, arguments, exit_code, print_json, print_targets
from emulators.slack import SlackEmulator
from emulators.slack_workspace import Message

LATENCY_S: Final = 1.0  # L
FIRST_BYTE_S: Final = 0.2  # F = 20% of L
ALICE: Final = "U1"
FIRST_QUESTION: Final = "Would it still hold up at 150 °C in a dishwasher?"
SECOND_QUESTION: Final = "Which grade of aluminium would you pick, and why not a polymer?"
WAIT_S: Final = 60.0
FIRST_TEXT_TARGET_S: Final = 1.5
MAX_BOARD_LINES: Final = 20
RATIONALE_WITHIN: Final = 8
_WORD = re.compile(r"[A-Za-z]{3,}")


@dataclass(frozen=True)
class Run:
    """One run's figures."""

    board_lines: int
    rationale_line: int | None  # 1-based; None: the reasoning's first words were not found on the board
    first_text_s: list[float]  # per follow-up question
    second_cache_read: int  # cache_read_input_tokens of the second follow-up's request
    second_cache_write: int


def text_lines(blocks: list[dict[str, Any]] | None) -> list[str]:
    """The text lines of a message's blocks, in order (the board-size rule; controls not counted)."""
    lines: list[str] = []

    def add(text: Any) -> None:
        if isinstance(text, dict):
            text = text.get("text")
        if isinstance(text, str) and text.strip():
            lines.extend(text.split("\n"))

    for block in blocks or []:
        kind = block.get("type")
        if kind in {"section", "header", "markdown"}:
            add(block.get("text"))
            for field in block.get("fields") or []:
                add(field)
        elif kind == "context":
            for element in block.get("elements") or []:
                if element.get("type") in {"mrkdwn", "plain_text"}:
                    add(element)
    return lines


def rationale_words(database: Path) -> list[str]:
    """The first words of the stored recommendation's reasoning (the bot's SQLite file, read only)."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        row = connection.execute(
            "SELECT recommendation FROM consultations WHERE recommendation IS NOT NULL ORDER BY seq LIMIT 1"
        ).fetchone()
    assert row is not None, "no stored recommendation"
    rationale = str(json.loads(row[0])["rationale"])
    return _WORD.findall(rationale)[:4]


def line_of(lines: list[str], words: list[str]) -> int | None:
    """The 1-based line holding all of `words`, if any."""
    for number, line in enumerate(lines, start=1):
        if all(word in line for word in words):
            return number
    return None


def bot_messages_after(slack: SlackEmulator, channel: str, thread_ts: str, after: set[str]) -> list[Message]:
    """The bot's messages in the thread that were not there before."""
    return [m for m in slack.thread(channel, thread_ts) if m.bot_id and m.ts != thread_ts and m.ts not in after]


def first_text_at(message: Message) -> float | None:
    """When the message first showed any text of the answer (time.monotonic())."""
    return next((v.at for v in message.versions if v.text.strip()), None)


async def ask(slack: SlackEmulator, channel: str, thread_ts: str, question: str) -> tuple[float, Message]:
    """Ask in the thread; wait for the answer to finish. Returns seconds to its first text, and it."""
    before = {m.ts for m in slack.thread(channel, thread_ts)}
    event = slack.user_message(channel, ALICE, question, thread_ts=thread_ts)
    sent_at = time.monotonic()
    await slack.deliver_event(event)

    def answered() -> bool:
        new = bot_messages_after(slack, channel, thread_ts, before | {str(event["ts"])})
        return any(m.stream_status in (None, "stopped") and m.text.strip() for m in new)

    await slack.wait_until(answered, WAIT_S, "the follow-up's answer")
    new = bot_messages_after(slack, channel, thread_ts, before | {str(event["ts"])})
    shown = [t for m in new if (t := first_text_at(m)) is not None]
    return min(shown) - sent_at, new[0]


async def one_run() -> Run:
    """Fresh emulators and a fresh bot: an upload, then two follow-up questions."""
    with tempfile.TemporaryDirectory(prefix="matrec-bench-") as workdir:
        async with (
            SlackEmulator() as slack,
            claude_process(latency_s=LATENCY_S, first_token_s=FIRST_BYTE_S, thinking=False) as claude,
            running_bot(slack, claude.base_url, Path(workdir)),
        ):
            slack.enable_streaming()
            slack_like_limits(slack)
            u = await upload(slack, GENERAL, photo(), "followup")
            await slack.wait_until(lambda: reacted(slack, u), WAIT_S, "the consultation")
            board = _final_board(slack, u.channel, u.ts)
            lines = text_lines(board.blocks)
            rationale_line = line_of(lines, rationale_words(Path(workdir) / "bench.db"))
            await claude.reset()
            first_s, _ = await ask(slack, u.channel, u.ts, FIRST_QUESTION)
            second_s, _ = await ask(slack, u.channel, u.ts, SECOND_QUESTION)
            read, write = await _second_follow_up_cache(claude)
            return Run(len(lines), rationale_line, [first_s, second_s], read, write)


def _final_board(slack: SlackEmulator, channel: str, ts: str) -> Message:
    boards = [m for m in slack.thread(channel, ts) if m.bot_id and m.ts != ts and m.blocks and "Best" in str(m.blocks)]
    assert boards, "no final board in the thread"
    return boards[0]


async def _second_follow_up_cache(claude: ClaudeService) -> tuple[int, int]:
    calls = [c for c in await claude.calls() if c.kind == "follow_up" and c.usage is not None]
    assert len(calls) >= 2, f"expected two follow-up calls, saw {len(calls)}"
    usage = calls[1].usage
    assert usage is not None
    return usage.cache_read_tokens, usage.cache_write_5m_tokens + usage.cache_write_1h_tokens


def targets(runs: list[Run]) -> list[Target]:
    """The follow-up targets, each per run (median and spread over runs)."""
    first = Figure.of([max(r.first_text_s) for r in runs])
    first_median = Figure.of([statistics.median(r.first_text_s) for r in runs])
    lines = Figure.of([r.board_lines for r in runs])
    found = [r.rationale_line for r in runs]
    rationale = Figure.of([line or 99 for line in found])
    reads = Figure.of([r.second_cache_read for r in runs])
    writes = Figure.of([r.second_cache_write for r in runs])
    return [
        Target("follow-up question to its first streamed text, max of 2 per run <= 1.5 s", first.text(2, "s"),
               f"{FIRST_BYTE_S:g} s (F)", first.high <= FIRST_TEXT_TARGET_S),
        Target("... median of the 2 per run", first_median.text(2, "s"), f"{FIRST_BYTE_S:g} s (F)", None),
        Target("second follow-up reads the shared prefix from cache (tokens read)", reads.text(0), "> 0",
               reads.low > 0),
        Target("... tokens it wrote to the cache (its new turn is not marked for caching)", writes.text(0), "-", None),
        Target("final board: text lines <= 20", lines.text(0), "-", lines.high <= MAX_BOARD_LINES),
        Target("... the aggregator's reasoning starts on line <= 8", rationale.text(0), "-",
               None not in found and rationale.high <= RATIONALE_WITHIN),
    ]  # fmt: skip


def main() -> None:
    """Run the benchmark; exits 1 if a target is missed."""
    args = arguments((__doc__ or "").splitlines()[0])
    runs = [asyncio.run(one_run()) for _ in range(args.runs)]
    rows = targets(runs)
    print_targets(rows)
    if args.json:
        print_json({"runs": [r.__dict__ for r in runs]})
    sys.exit(exit_code(rows))


if __name__ == "__main__":
    main()
