#!/usr/bin/env bash
# Install matrec into .venv (once, or when pyproject.toml changed) and run the CLI with the given arguments.
set -euo pipefail
source "$(dirname "$0")/install.sh"
exec "$root/.venv/bin/matrec" "$@"
