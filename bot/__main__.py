"""`python -m bot` (or `matrec-bot`): run the Slack bot until SIGINT/SIGTERM.

`python -m bot export-feedback OUT.jsonl` instead writes the team's choices as a dataset (bot/export.py).

Socket Mode when SLACK_APP_TOKEN is set, HTTP mode otherwise. A configuration problem ends the
process at once with one line naming the variable to fix.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import pydantic
from pydantic_settings import SettingsError

from bot import export
from bot.logs import configure
from bot.service import StartupError, serve
from bot.settings import BotSettings
from matrec.settings import EngineSettings, settings_error


def _secrets(settings: BotSettings, engine: EngineSettings) -> list[str]:
    values = [settings.slack_bot_token, settings.slack_app_token, settings.slack_signing_secret, settings.metrics_token]
    values.append(engine.anthropic_api_key)
    return [v.get_secret_value() for v in values if v is not None]


async def _run(settings: BotSettings, engine: EngineSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(settings, engine, stop)


def main() -> int:
    """Start the bot (or run the `export-feedback` subcommand); returns the exit code."""
    if sys.argv[1:2] == [export.PROG]:
        return export.main(sys.argv[2:])
    try:
        settings = BotSettings()
    except (pydantic.ValidationError, SettingsError) as error:
        print(f"matrec-bot: {settings_error(BotSettings, error)}", file=sys.stderr)
        return 1
    try:
        engine = EngineSettings()
    except (pydantic.ValidationError, SettingsError) as error:
        print(f"matrec-bot: {settings_error(EngineSettings, error)}", file=sys.stderr)
        return 1
    configure(settings.log_level, _secrets(settings, engine))
    try:
        asyncio.run(_run(settings, engine))
    except StartupError as error:
        print(f"matrec-bot: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
