"""Bot restart benchmark: `python -m bench.bot_restart [--runs N] [--json]`.

Kill -9 mid-consultation, restart at once. Per run: a fresh Slack emulator (in this process, with
Slack-like rate limits) and SQLite file; the Claude emulator in its own process (thinking off,
L = 1.0 s per call, F = 0.3 s). The bot (`python -m bot`, Socket Mode) gets one upload; once all
six branch requests are in flight (the emulator's records: arrived, not finished), it is sent
SIGKILL and a new process is spawned at once, without waiting for anything.

Measured from the spawn of the new process (time.monotonic() just before it) to the first version
of the same board (same ts) that shows a recommendation and says it resumed, as the Slack emulator
recorded that chat.update. Target: within 60 s. Beside it, the split: start-up (spawn to the new
Socket Mode connection) and the rest, against the resumed consultation's own ideal F + 2L (primer's
first byte, the branches, the aggregation).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.bot_process import (
    GENERAL,
    Upload,
    boards,
    bot_env,
    shown,
    slack_like_limits,
    spawn_bot,
    stop,
    upload,
    wait_connected,
)
from bench.claude_process import FIRST_TOKEN_S, ClaudeService, claude_process
from bench.photos import photo
from bench.targets import Figure, Target, arguments, exit_code, print_json, print_targets
from emulators.slack import SlackEmulator

LATENCY_S: Final = 1.0  # L
CLASSES: Final = 6
RESTART_TARGET_S: Final = 60.0
WAIT_S: Final = 120.0
POLL_S: Final = 0.02
RESUMED_MARK: Final = "Resumed"


@dataclass(frozen=True)
class Restart:
    """One run: seconds from the new process's spawn to its socket and to the resumed board's final state."""

    connected_s: float
    final_s: float
    same_board: bool


async def branches_in_flight(claude: ClaudeService) -> None:
    """Until all six branch requests have arrived and none has finished."""
    async with asyncio.timeout(WAIT_S):
        while True:
            branches = [c for c in await claude.calls() if c.kind == "branch"]
            if len(branches) >= CLASSES and all(c.finished_at is None for c in branches):
                return
            await asyncio.sleep(POLL_S)


def resumed_final_at(slack: SlackEmulator, u: Upload, board_ts: str) -> float | None:
    """When the board first showed a recommendation after saying it resumed (the note goes once final), if it has."""
    board = slack.message(u.channel, board_ts)
    resumed = False
    for version in board.versions:
        text = shown(version.blocks, version.text)
        resumed = resumed or RESUMED_MARK in text
        if resumed and "Best:" in text:
            return version.at
    return None


async def one_restart(claude: ClaudeService, workdir: Path) -> Restart:
    """Upload, kill -9 with the branches in flight, spawn again at once, wait for the board's final state."""
    async with SlackEmulator() as slack:
        slack_like_limits(slack)
        env = bot_env(slack, claude.base_url, workdir)
        before = len(slack.connections)
        first = await spawn_bot(env, workdir)
        try:
            await wait_connected(slack, before)
            await claude.reset()
            u = await upload(slack, GENERAL, photo(), "restart")
            await branches_in_flight(claude)
            (board,) = boards(slack, u)
        finally:
            stop(first, signal.SIGKILL)
            await first.wait()
        before = len(slack.connections)
        spawned_at = time.monotonic()
        second = await spawn_bot(env, workdir)
        try:
            await wait_connected(slack, before)
            connected_s = time.monotonic() - spawned_at
            await slack.wait_until(
                lambda: resumed_final_at(slack, u, board.ts) is not None, WAIT_S, "the resumed board"
            )
            final = resumed_final_at(slack, u, board.ts)
            assert final is not None
            return Restart(connected_s, final - spawned_at, [b.ts for b in boards(slack, u)] == [board.ts])
        finally:
            stop(second)
            await second.wait()


async def run_all(runs: int) -> list[Restart]:
    """`runs` restarts, each with a fresh Slack emulator and database."""
    results: list[Restart] = []
    async with claude_process(latency_s=LATENCY_S, first_token_s=FIRST_TOKEN_S, thinking=False) as claude:
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="matrec-bench-") as workdir:
                results.append(await one_restart(claude, Path(workdir)))
    return results


def targets(runs: list[Restart]) -> list[Target]:
    """The target, and where its time goes."""
    final = Figure.of([r.final_s for r in runs])
    connected = Figure.of([r.connected_s for r in runs])
    rest = Figure.of([r.final_s - r.connected_s for r in runs])
    same = sum(r.same_board for r in runs)
    ideal_s = FIRST_TOKEN_S + 2 * LATENCY_S
    return [
        Target("kill -9 mid-consultation, restart at once: spawn to the board's final state <= 60 s",
               final.text(2, "s"), f"start-up + {FIRST_TOKEN_S + 2 * LATENCY_S:g} s", final.high <= RESTART_TARGET_S),
        Target("... the same board, one board only (runs)", f"{same} of {len(runs)}", str(len(runs)),
               same == len(runs)),
        Target("... start-up: spawn to the new Socket Mode connection", connected.text(2, "s"), "-", None),
        Target("... connection to the final state", rest.text(2, "s"), f"{ideal_s:g} s (F + 2L)", None),
    ]  # fmt: skip


def main() -> None:
    """Run the benchmark; exits 1 if a target is missed."""
    args = arguments((__doc__ or "").splitlines()[0])
    runs = asyncio.run(run_all(args.runs))
    print(f"\nBot restart: L = {LATENCY_S:g} s per Claude call, F = {FIRST_TOKEN_S:g} s, {args.runs} runs")
    rows = targets(runs)
    print_targets(rows)
    if args.json:
        print_json(runs)
    sys.exit(exit_code(rows))


if __name__ == "__main__":
    main()
