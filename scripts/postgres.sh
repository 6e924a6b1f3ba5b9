#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the store tests; the last line of stdout is its URL.
#
#   scripts/postgres.sh [start] [DIR]   install PostgreSQL if missing, start a cluster in DIR
#                                       (default /tmp/matrec-postgres) and print
#                                       postgresql://matrec:PASSWORD@127.0.0.1:PORT/matrec_test
#   scripts/postgres.sh stop [DIR]      stop that cluster (its files stay until DIR is removed)
#
# Idempotent: starting a cluster that is already running prints its URL again. The cluster
# listens on 127.0.0.1 only, on a free port, with its unix socket in DIR; durability is off
# (fsync=off), so never point it at data you want to keep. Progress goes to stderr.
#   export MATREC_TEST_POSTGRES_URL="$(scripts/postgres.sh | tail -n 1)"
set -euo pipefail

DEFAULT_DIR="${TMPDIR:-/tmp}/matrec-postgres"
DB_NAME="matrec_test"
DB_USER="matrec"
START_TIMEOUT_S=60

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
  local candidate
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then
      echo "$candidate"
      return 0
    fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return 0
  fi
  return 1
}

ensure_installed() {
  if find_bindir >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    log "PostgreSQL is not installed; run as root, or: sudo apt-get install -y postgresql"
    exit 1
  fi
  log "installing PostgreSQL from Debian"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  find_bindir >/dev/null || { log "PostgreSQL installed but initdb/pg_ctl not found"; exit 1; }
}

# Postgres refuses to run as root: as root, run the server tools as the `postgres` user.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

is_running() {
  [ -f "$1/data/PG_VERSION" ] && as_owner "$BINDIR/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

init_cluster() {
  local dir="$1" password
  password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  mkdir -p "$dir"
  chmod 700 "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
  fi
  as_owner "$BINDIR/initdb" -D "$dir/data" -U postgres -E UTF8 --no-locale --no-sync \
    --auth-local=trust --auth-host=scram-sha-256 >&2
  as_owner sh -c "umask 077 && echo '$password' > '$dir/password'"
}

start_cluster() {
  local dir="$1" port="$2" attempt
  for attempt in 1 2 3; do
    if as_owner "$BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t "$START_TIMEOUT_S" \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off \
          -c full_page_writes=off" start >&2; then
      as_owner sh -c "echo $port > '$dir/port'"
      return 0
    fi
    log "start on port $port failed (attempt $attempt); see $dir/postgres.log"
    port="$(free_port)"
  done
  exit 1
}

create_database() {
  local dir="$1" port="$2" password
  password="$(as_owner cat "$dir/password")"
  local psql=("$BINDIR/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt)
  if [ "$(as_owner "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != "1" ]; then
    as_owner "${psql[@]}" -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$password'" >&2
  fi
  if [ "$(as_owner "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
    as_owner "${psql[@]}" -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >&2
  fi
}

cmd_start() {
  local dir="$1" port
  ensure_installed
  BINDIR="$(find_bindir)"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "creating a cluster in $dir"
    init_cluster "$dir"
  fi
  if is_running "$dir"; then
    port="$(cat "$dir/port")"
    log "already running on port $port"
  else
    port="$(free_port)"
    start_cluster "$dir" "$port"
    port="$(cat "$dir/port")"
  fi
  create_database "$dir" "$port"
  echo "postgresql://$DB_USER:$(as_owner cat "$dir/password")@127.0.0.1:$port/$DB_NAME"
}

cmd_stop() {
  local dir="$1"
  BINDIR="$(find_bindir)" || { log "PostgreSQL is not installed; nothing to stop"; return 0; }
  if is_running "$dir"; then
    as_owner "$BINDIR/pg_ctl" -D "$dir/data" -m fast -w stop >&2
  else
    log "no cluster running in $dir"
  fi
}

abs_dir() { realpath -m -- "${1:-$DEFAULT_DIR}"; }

case "${1:-start}" in
  start) cmd_start "$(abs_dir "${2:-}")" ;;
  stop) cmd_stop "$(abs_dir "${2:-}")" ;;
  -h | --help)
    echo "usage: $0 [start] [DIR] | $0 stop [DIR]" >&2
    exit 0
    ;;
  *) cmd_start "$(abs_dir "$1")" ;;
esac
