#!/usr/bin/env bash
# Sourced by matrec.sh and bot.sh: (re)install matrec into .venv when it is missing or stale.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "$root/.venv/.installed" ] || [ "$root/pyproject.toml" -nt "$root/.venv/.installed" ]; then
  python3 -m venv "$root/.venv"
  "$root/.venv/bin/python" -m pip install --quiet --upgrade pip
  "$root/.venv/bin/python" -m pip install --quiet -e "$root"
  touch "$root/.venv/.installed"
fi
