"""`python -m bot` as a real process: start-up errors name the variable; a full flow; no secret in logs."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.bot_support import GENERAL, board_replies, rendered, upload, wait_boards
from tests.engine_support import KEY, jpeg_bytes

START_S = 30.0
METRICS_TOKEN = "metrics-token-never-logged"


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH", "SYSTEMROOT"}}
    return {**keep, "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}", "PORT": "0", **values}


def _slack_env(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path, **values: str) -> dict[str, str]:
    defaults = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_API_URL": slack.api_url,
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": claude.base_url,
        "HOST": "127.0.0.1",
    }
    return _env(tmp_path, **(defaults | values))


async def _exits(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), START_S)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_a_missing_bot_token_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    code, err = await _exits(_env(tmp_path), tmp_path)
    assert code == 1
    assert err.strip().splitlines() == [
        "matrec-bot: SLACK_BOT_TOKEN is not set: export SLACK_BOT_TOKEN=xoxb-... (OAuth & Permissions page)"
    ]


async def test_http_mode_without_a_signing_secret_names_it(tmp_path: Path) -> None:
    code, err = await _exits(_env(tmp_path, SLACK_BOT_TOKEN="xoxb-1-2"), tmp_path)
    assert code == 1
    assert "SLACK_SIGNING_SECRET is not set" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SLACK_BOT_TOKEN", "xoxb-wrong", "SLACK_BOT_TOKEN was rejected by Slack (invalid_auth)"),
        ("SLACK_APP_TOKEN", "xapp-wrong", "SLACK_APP_TOKEN was rejected by Slack (invalid_auth)"),
        ("SLACK_APP_TOKEN", "xoxb-not-an-app-token", "SLACK_APP_TOKEN must be an app-level token"),
        ("ANTHROPIC_API_KEY", "", "ANTHROPIC_API_KEY is not set"),
    ],
)
async def test_an_invalid_token_is_one_line_naming_the_variable(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    env = _slack_env(slack, claude, tmp_path, **{variable: value})
    code, err = await _exits(env, tmp_path)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and expected in err
    assert value not in err or not value


async def test_the_real_process_serves_an_upload_and_never_logs_a_secret(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    env = _slack_env(
        slack,
        claude,
        tmp_path,
        MATREC_LOG_LEVEL="DEBUG",
        MATREC_UPDATE_INTERVAL_S="0.05",
        MATREC_METRICS_TOKEN=METRICS_TOKEN,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    stderr = asyncio.create_task(process.stderr.read())  # drained all along: a full pipe would block the bot
    try:
        await slack.wait_for_socket_connection(START_S)
        sent = await upload(slack, jpeg_bytes())
        (board,) = await wait_boards(slack, sent)
        assert "Best: Metal" in rendered(board)
        assert len(board_replies(slack, GENERAL, sent.ts)) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), START_S)
    logs = (await stderr).decode()
    assert process.returncode == 0
    assert "started in socket mode" in logs
    assert logs.count("consultation ended {") == 1
    for secret in (slack.bot_token, slack.app_token, KEY, METRICS_TOKEN):
        assert secret not in logs
