#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests of `mlplab tune` on PostgreSQL
# (tests/cli/test_tune_cmd.py). It listens on a Unix socket in a temporary folder only (no
# TCP port, so it never meets another server on the machine) and trusts local connections.
#
#   dir=$(bash .ci/postgres.sh start)   install Debian's postgresql if missing (as root), initdb
#                                       into a new temporary folder, start the server, create
#                                       the database mlplab_test; prints the folder
#   bash .ci/postgres.sh url "$dir"     prints the database URL, for MLPLAB_TEST_POSTGRES_URL
#   bash .ci/postgres.sh stop "$dir"    stops the server and removes the folder
#
# As root the cluster belongs to the postgres user (PostgreSQL refuses to run as root);
# otherwise to the user running this script.
set -euo pipefail

database=mlplab_test

# Debian installs the server's programs in /usr/lib/postgresql/<version>/bin, off the PATH.
bindir() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$found" ] && [ -x "$found/initdb" ]; then echo "$found"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  return 1
}

owner() { if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi; }

# Run a server program as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  if ! bindir >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
      echo "postgres.sh: PostgreSQL is not installed; as root: apt-get install -y postgresql" >&2
      exit 1
    fi
    echo "postgres.sh: apt-get install postgresql (for the PostgreSQL test of mlplab tune)" >&2
    apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
  fi
  local bin dir
  bin=$(bindir)
  dir=$(mktemp -d /tmp/mlplab-pg.XXXXXX)  # short: a socket path has at most 107 characters
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  # A failed start leaves nothing behind: the caller gets no folder to stop.
  give_up() { cat "$dir/$1" >&2 2>/dev/null || true; stop "$dir"; exit 1; }
  as_owner "$bin/initdb" -D "$dir/data" -U "$(owner)" -A trust --no-locale -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
    || give_up initdb.log
  # A throwaway server: no TCP, no fsync.
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses='' -k $dir -c fsync=off -c full_page_writes=off" start >&2 \
    || give_up server.log
  as_owner "$bin/createdb" -h "$dir" -U "$(owner)" "$database" || give_up server.log
  echo "$dir"
}

url() { echo "postgresql://$(owner)@/$database?host=$1"; }

stop() {
  local dir=$1
  [ -d "$dir/data" ] || { rm -rf "$dir"; return 0; }
  as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  url) url "${2:?usage: postgres.sh url DIR}" ;;
  stop) stop "${2:?usage: postgres.sh stop DIR}" ;;
  *) echo "usage: bash .ci/postgres.sh start | url DIR | stop DIR" >&2; exit 2 ;;
esac
