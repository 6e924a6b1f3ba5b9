#!/usr/bin/env bash
# First run, no API key needed: bash scripts/try.sh [extra `matrec analyze` options, e.g. --json]
#
# Runs the real CLI on the bundled sample photo against the bundled Claude emulator, so a fresh
# clone shows what a consultation looks like (the live table of six branches, then the
# recommendation) before anyone has a key. The emulator's answers are scripted: they say nothing
# about the part, and the output says so before and after. With a key, use scripts/matrec.sh.
# This is a separate script on purpose: `matrec analyze` without a key must keep failing with its
# one-line "no key" message rather than quietly answering from a fake.
set -euo pipefail

# Installs .venv if missing or stale, reusing test.sh's install when fresh; sets $root.
source "$(dirname "$0")/install.sh"

# About a real call's time to the end of a short answer, so the live table visibly fills in.
EMULATOR_LATENCY_S=1.5
EMULATOR_START_TIMEOUT_S=20
SAMPLE_PHOTO="$root/samples/bracket.jpg"
SAMPLE_CONTEXT="pump bracket holding a 20 kg pump, outdoors, -20..60 C, 500 a year"

say() { printf '%s\n' "$@" >&2; }  # stderr, so --json output stays machine-readable

# A random key: the emulator checks it like the real API does, and nothing else can guess it.
emulator_key="try-$("$root/.venv/bin/python" -c 'import secrets; print(secrets.token_hex(16))')"
emulator_log="$(mktemp "${TMPDIR:-/tmp}/matrec-try-emulator.XXXXXX")"
emulator_pid=""

stop_emulator() {
  if [ -n "$emulator_pid" ]; then
    kill "$emulator_pid" 2>/dev/null || true
    wait "$emulator_pid" 2>/dev/null || true
  fi
  rm -f "$emulator_log"
}
trap stop_emulator EXIT
# Turn Ctrl-C and termination into a normal exit, so the EXIT trap always stops the emulator.
trap 'exit 130' INT
trap 'exit 143' TERM

# From the repo root: emulators/ is not part of the installed package. The emulator prints its
# base URL (a free port on 127.0.0.1) on the first line of stdout.
coproc EMULATOR {
  cd "$root" && exec "$root/.venv/bin/python" -m emulators.claude \
    --latency-s "$EMULATOR_LATENCY_S" --api-key "$emulator_key" 2>"$emulator_log"
}
emulator_pid="$EMULATOR_PID"
emulator_url=""
if ! IFS= read -r -t "$EMULATOR_START_TIMEOUT_S" emulator_url <&"${EMULATOR[0]}" || [ -z "$emulator_url" ]; then
  say "try.sh: the Claude emulator did not start within ${EMULATOR_START_TIMEOUT_S} s:"
  cat "$emulator_log" >&2
  exit 1
fi

say "" \
  "=== matrec demo: NO API key, so these are SCRIPTED answers from a local emulator ===" \
  "The Claude API is replaced by emulators/claude.py on ${emulator_url}. Its answers are canned:" \
  "they say nothing about this part. This only shows how a consultation runs and reads." \
  "Photo: samples/bracket.jpg   Context: ${SAMPLE_CONTEXT}" \
  ""

# The key and URL are set for this one command only, never exported to the rest of the script.
status=0
ANTHROPIC_API_KEY="$emulator_key" ANTHROPIC_BASE_URL="$emulator_url" \
  "$root/.venv/bin/matrec" analyze "$SAMPLE_PHOTO" --context "$SAMPLE_CONTEXT" "$@" || status=$?

say "" \
  "=== end of demo: the answers above were SCRIPTED by a local emulator, not Claude; they say nothing about the part ===" \
  "To analyse your own part with Claude, get an API key at https://console.anthropic.com/ and run:" \
  "  ANTHROPIC_API_KEY=sk-ant-... bash scripts/matrec.sh analyze your-part.jpg --context \"what it does, loads, temperature, quantity\""
exit "$status"
