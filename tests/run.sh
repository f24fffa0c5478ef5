#!/usr/bin/env bash
# The test command (README). Installs what the tests need on a fresh machine, starts the real
# servers they talk to (PostgreSQL), runs every test project, and prints one closing summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '\n== %s\n' "$*"; }

# --- Node packages for the stock gRPC interop peers (@grpc/grpc-js) --------------------------------
if [ -f tests/interop/package-lock.json ]; then
  if ! command -v npm >/dev/null 2>&1; then
    log "installing nodejs + npm (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  log "npm ci (tests/interop)"
  (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- PostgreSQL for the membership/storage tests --------------------------------------------------
pg_bin=""
for v in 17 16 15; do [ -x /usr/lib/postgresql/$v/bin/initdb ] && { pg_bin=/usr/lib/postgresql/$v/bin; break; }; done
if [ -z "$pg_bin" ] && [ "$(id -u)" = 0 ]; then
  log "installing postgresql (apt-get)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  for v in 17 16 15; do [ -x /usr/lib/postgresql/$v/bin/initdb ] && { pg_bin=/usr/lib/postgresql/$v/bin; break; }; done
fi
pg_dir=""
cleanup() {
  if [ -n "$pg_dir" ]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_dir" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
}
trap cleanup EXIT
if [ -n "$pg_bin" ] && [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
  pg_dir=$(mktemp -d /tmp/mf-pg.XXXXXX)
  chown postgres "$pg_dir"
  pg_port=${MF_TEST_PG_PORT:-55432}
  log "starting PostgreSQL on 127.0.0.1:$pg_port"
  runuser -u postgres -- "$pg_bin/initdb" -D "$pg_dir" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_dir" -l "$pg_dir/log" \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" -w start >/dev/null
  export MF_TEST_POSTGRES="Host=127.0.0.1;Port=$pg_port;Username=postgres;Database=postgres"
else
  echo "!!!!! PostgreSQL cannot be started here (needs root and the postgresql package): the PostgreSQL tests will SKIP !!!!!" >&2
fi

# --- build and test --------------------------------------------------------------------------------
log "dotnet build"
dotnet build MigrationFabric.sln -c Release -nologo -v quiet

out=$(mktemp)
status=0
for proj in tests/*/*.Tests.csproj; do
  log "dotnet test $proj"
  dotnet test "$proj" -c Release --no-build -nologo --blame-hang-timeout 4m 2>&1 | tee -a "$out" || status=1
done

passed=$(grep -Eo 'Passed: +[0-9]+' "$out" | awk '{s+=$2} END {print s+0}')
failed=$(grep -Eo 'Failed: +[0-9]+' "$out" | awk '{s+=$2} END {print s+0}')
skipped=$(grep -Eo 'Skipped: +[0-9]+' "$out" | awk '{s+=$2} END {print s+0}')
rm -f "$out"
echo
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] || status=1
exit $status
