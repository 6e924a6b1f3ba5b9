#!/usr/bin/env bash
# Install matrec into .venv (once, or when pyproject.toml changed) and run the Slack bot.
# Needs SLACK_BOT_TOKEN, SLACK_APP_TOKEN (Socket Mode) and ANTHROPIC_API_KEY, from the
# environment or a .env file in the working directory.
set -euo pipefail
source "$(dirname "$0")/install.sh"
exec "$root/.venv/bin/matrec-bot" "$@"
