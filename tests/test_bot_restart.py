"""Restarts lose nothing: `python -m bot` killed with SIGKILL mid-consultation, then started again.

The new process resumes the consultation onto the board the old one posted (which says it
resumed), and Slack's retry of the upload, racing the resume, starts nothing: one board, one
final state.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.bot_support import GENERAL, bot_replies, rendered, upload, wait_boards
from tests.engine_support import KEY, jpeg_bytes

START_S = 30.0
CALL_LATENCY_S = 0.6  # long enough that the kill lands mid-consultation


def _env(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH", "SYSTEMROOT"}}
    return {
        **keep,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_API_URL": slack.api_url,
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": claude.base_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "HOST": "127.0.0.1",
        "PORT": "0",
        "MATREC_UPDATE_INTERVAL_S": "0.05",
    }


async def _start(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", env=env, cwd=cwd, stderr=asyncio.subprocess.DEVNULL
    )


async def test_a_killed_bot_resumes_the_consultation_on_its_board_and_a_racing_retry_adds_nothing(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    claude.latency_s = CALL_LATENCY_S
    env = _env(slack, claude, tmp_path)
    first = await _start(env, tmp_path)
    try:
        await slack.wait_for_socket_connection(START_S)
        sent = await upload(slack, jpeg_bytes(), text="Wall bracket for a 20 kg pump, indoors, 500 a year")
        await claude.wait_for_requests(6)  # every branch is in flight (the board is up by then)
        (board,) = bot_replies(slack, GENERAL, sent.ts)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    assert first.returncode == -signal.SIGKILL
    await slack.wait_until(lambda: not slack.socket.open_connections, START_S, what="the dead socket closed")
    second = await _start(env, tmp_path)
    try:
        retry = asyncio.create_task(slack.redeliver(sent.envelope_id, retry_attempt=1, timeout_s=START_S))
        await slack.wait_for_ack(await retry, START_S)
        (final,) = await wait_boards(slack, sent)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), START_S)
    assert final.ts == board.ts  # the same board, updated to its final state
    assert "Best: Metal" in rendered(final)
    shown = [v.text + json.dumps(v.blocks or []) for v in slack.versions(GENERAL, final.ts)]
    assert any("Resumed after the bot restarted" in version for version in shown)  # said so while it ran
    assert "white_check_mark" in slack.reactions(GENERAL, sent.ts)
    assert second.returncode == 0
