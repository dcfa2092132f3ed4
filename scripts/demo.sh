#!/usr/bin/env bash
# The main job, end to end: build, start the managed local PostgreSQL, make a backup of a sample
# database with pg_dump (or take the one in BACKUP=…), seal it and restore it with verification.
#
#   make demo                          sample database at scale 0.02 (about 10 MB of SQL)
#   make demo SCALE=0.2                a larger sample
#   make demo BACKUP=/path/db.sql.gz   your own plain-format dump (plain, gzip or zstd)
#   make demo JOBS=4 TARGET=mydb       workers and target database
set -euo pipefail
cd "$(dirname "$0")/.."

scale=${SCALE:-0.02}
jobs=${JOBS:-4}
target=${TARGET:-demo_restored}
export SECURERESTORE_BACKUP_DIR=${SECURERESTORE_BACKUP_DIR:-$PWD/target/demo-backups}
mkdir -p "$SECURERESTORE_BACKUP_DIR"

echo "== building"
cargo build --release --locked -p restore-cli
cli=$PWD/target/release/securerestore

started_local=
if [[ -z ${SECURERESTORE_DATABASE_URL:-} ]]; then
  started_local=1
  echo "== starting the managed local PostgreSQL"
  SECURERESTORE_DATABASE_URL=$("$cli" local start)
  export SECURERESTORE_DATABASE_URL
fi
echo "server: ${SECURERESTORE_DATABASE_URL%%\?*}"

bindir=${SECURERESTORE_PG_BINDIR:-$(pg_config --bindir 2>/dev/null || true)}
if [[ ! -x $bindir/pg_dump ]]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1)
export PGOPTIONS="-c client_min_messages=warning"
with_db() { printf '%s' "${SECURERESTORE_DATABASE_URL%/*}/$1"; }

if [[ -n ${BACKUP:-} ]]; then
  name=$(basename "$BACKUP")
  cp -f "$BACKUP" "$SECURERESTORE_BACKUP_DIR/$name"
  [[ -f $BACKUP.sha256 ]] && cp -f "$BACKUP.sha256" "$SECURERESTORE_BACKUP_DIR/$name.sha256"
else
  echo "== generating the sample database (scale $scale)"
  "${psql[@]}" -d "$SECURERESTORE_DATABASE_URL" \
    -c "DROP DATABASE IF EXISTS demo_source WITH (FORCE)"
  "${psql[@]}" -d "$SECURERESTORE_DATABASE_URL" -c "CREATE DATABASE demo_source"
  "${psql[@]}" -d "$(with_db demo_source)" -f bench/sample/schema.sql
  "${psql[@]}" -d "$(with_db demo_source)" -v scale="$scale" -f bench/sample/data.sql
  name=backup_$(date -u +%Y%m%d_%H%M%S).sql.gz
  echo "== dumping it with pg_dump into $name"
  "$bindir/pg_dump" -d "$(with_db demo_source)" | gzip -6 > "$SECURERESTORE_BACKUP_DIR/$name"
fi

if [[ ! -f $SECURERESTORE_BACKUP_DIR/$name.sha256 ]]; then
  echo "== sealing"
  "$cli" seal "$name"
fi
"$cli" backups --limit 5

echo "== restoring $name into $target ($jobs workers, verified)"
"$cli" restore "$name" --target "$target" --verify --force --jobs "$jobs"

echo "== what was restored"
"${psql[@]}" -d "$(with_db "$target")" -c "\
  SELECT count(*) AS tables, pg_size_pretty(pg_database_size(current_database())) AS size
  FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"

if [[ -n $started_local ]]; then
  echo
  echo "The managed PostgreSQL keeps running for more restores; \`$cli local stop\` stops it."
fi
