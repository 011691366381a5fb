#!/usr/bin/env bash
# Sets up the database the bench uses, as a real deployment has it: a PostgreSQL role
# `zeno_bench` that must authenticate with SCRAM over TCP, owning `zeno_bench` with a
# `bench_users` table of 1,000 rows. Adds one pg_hba.conf line for that role (before any
# other) and reloads PostgreSQL. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh

if [ "$(id -u)" -eq 0 ]; then
    pg() { su postgres -c "psql -q -v ON_ERROR_STOP=1 $(printf '%q ' "$@")"; }
else
    pg() { sudo -u postgres psql -q -v ON_ERROR_STOP=1 "$@"; }
fi
version=$(ls /etc/postgresql | sort -V | tail -n1)
hba=/etc/postgresql/$version/main/pg_hba.conf
line="host zeno_bench zeno_bench 127.0.0.1/32 scram-sha-256"
if ! grep -qF "$line" "$hba"; then
    echo "bench: requiring SCRAM for zeno_bench in $hba" >&2
    { echo "$line"; cat "$hba"; } > "$hba.new" && cat "$hba.new" > "$hba" && rm "$hba.new"
    pg -c "select pg_reload_conf()" >/dev/null
fi
pg -tAc "select 1 from pg_roles where rolname = 'zeno_bench'" | grep -q 1 \
    || pg -c "set password_encryption = 'scram-sha-256'" -c "create role zeno_bench login password 'zeno_bench'"
pg -tAc "select 1 from pg_database where datname = 'zeno_bench'" | grep -q 1 \
    || pg -c "create database zeno_bench owner zeno_bench"
PGPASSWORD=zeno_bench psql -q -h 127.0.0.1 -U zeno_bench zeno_bench -v ON_ERROR_STOP=1 <<'SQL'
set client_min_messages = warning;
create table if not exists bench_users (id int primary key, name text not null, email text not null);
insert into bench_users select g, 'user ' || g, 'u' || g || '@example.com' from generate_series(1, 1000) g
    on conflict do nothing;
SQL
