#!/usr/bin/env bash
# Sourced by matrec.sh, bot.sh and try.sh: (re)install matrec into .venv when it is missing or stale.
# A marker is fresh when pyproject.toml (the only file that changes what gets installed) is not
# newer than it. test.sh's marker (.installed-dev) counts too: its install is a superset of this
# one, so a run after test.sh (as in CI) does not pay for a second install.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
matrec_marker_is_fresh() { [ -f "$1" ] && ! [ "$root/pyproject.toml" -nt "$1" ]; }
if ! matrec_marker_is_fresh "$root/.venv/.installed" && ! matrec_marker_is_fresh "$root/.venv/.installed-dev"; then
  python3 -m venv "$root/.venv"
  "$root/.venv/bin/python" -m pip install --quiet --upgrade pip
  "$root/.venv/bin/python" -m pip install --quiet -e "$root"
  touch "$root/.venv/.installed"  # only after a successful install (callers use set -e)
fi
