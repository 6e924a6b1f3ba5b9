#!/usr/bin/env bash
# Install matrec into .venv (once, or when pyproject.toml changed) and run the Slack bot.
# Needs SLACK_BOT_TOKEN, SLACK_APP_TOKEN (Socket Mode) and ANTHROPIC_API_KEY, from the
# environment or a .env file in the working directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$root/.venv/bin/matrec-bot" ] || [ "$root/pyproject.toml" -nt "$root/.venv/.installed" ]; then
  python3 -m venv "$root/.venv"
  "$root/.venv/bin/python" -m pip install --quiet --upgrade pip
  "$root/.venv/bin/python" -m pip install --quiet -e "$root"
  touch "$root/.venv/.installed"
fi
exec "$root/.venv/bin/matrec-bot" "$@"
