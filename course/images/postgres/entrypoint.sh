#!/bin/sh
# Initialise a throwaway cluster, then become the postgres server (PID 1).
# Honours POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB like the official image.
set -eu
user="${POSTGRES_USER:-postgres}"
password="${POSTGRES_PASSWORD:-postgres}"
db="${POSTGRES_DB:-$user}"

mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$password" > "$pwfile"
  chown postgres "$pwfile"
  as_postgres initdb --username="$user" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # Here, not on the command line, so that graders can change them with ALTER SYSTEM and
  # pg_reload_conf() (command-line settings would win over ALTER SYSTEM). auto_explain is
  # loaded but silent until a grader sets auto_explain.log_min_duration.
  cat >> "$PGDATA/postgresql.conf" <<'CONF'
auto_explain.log_min_duration = -1
auto_explain.log_format = json
auto_explain.log_nested_statements = on
log_line_prefix = '%m [%p] %q%u@%d/%a '
CONF
  if [ "$db" != "postgres" ]; then
    as_postgres postgres --single -D "$PGDATA" -j postgres >/dev/null <<SQL
CREATE DATABASE "$db" OWNER "$user";
SQL
  fi
fi

# Durability settings are off on purpose: the data lives on tmpfs and dies with the grade.
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" \
  -c listen_addresses='*' \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
  -c max_connections=200 \
  -c shared_preload_libraries=pg_stat_statements,auto_explain \
  "$@"
