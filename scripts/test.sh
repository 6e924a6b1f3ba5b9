#!/usr/bin/env bash
# Install the project and its dev tools into .venv, then run the whole test suite: bash scripts/test.sh [pytest args]
# The install is redone only when pyproject.toml is newer than this script's marker, so repeated
# runs start pytest at once. The marker is separate from install.sh's (.installed) because this
# install adds the dev extras; install.sh accepts it as well, since it covers the runtime too.
set -euo pipefail
cd "$(dirname "$0")/.."
marker=.venv/.installed-dev
if [ ! -f "$marker" ] || [ pyproject.toml -nt "$marker" ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  touch "$marker"  # only after a successful install (set -e), so a failed one is retried next time
fi
exec .venv/bin/python -m pytest "$@"
