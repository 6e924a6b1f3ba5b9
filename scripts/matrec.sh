#!/usr/bin/env bash
# Install matrec into .venv (once, or when pyproject.toml changed) and run the CLI with the given arguments.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$root/.venv/bin/matrec" ] || [ "$root/pyproject.toml" -nt "$root/.venv/.installed" ]; then
  python3 -m venv "$root/.venv"
  "$root/.venv/bin/python" -m pip install --quiet --upgrade pip
  "$root/.venv/bin/python" -m pip install --quiet -e "$root"
  touch "$root/.venv/.installed"
fi
exec "$root/.venv/bin/matrec" "$@"
