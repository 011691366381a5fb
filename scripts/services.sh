#!/usr/bin/env bash
# Makes sure the databases the tests use are installed, running and set up: PostgreSQL and
# MariaDB from Debian's packages, each with a user `zeno` (password `zeno`) owning the
# databases `zeno_test` and `zeno_replica_test`, and Redis on 127.0.0.1:6379 (the cluster
# tests' shared sessions and cache). Safe to run again.
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

need=()
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
    echo "services: installing ${need[*]} from Debian's packages" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# PostgreSQL
version=$(ls /etc/postgresql | sort -V | tail -n1)
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "services: starting PostgreSQL $version" >&2
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if [ "$(id -u)" -eq 0 ]; then
    pg() { su postgres -c "psql -q -v ON_ERROR_STOP=1 $(printf '%q ' "$@")"; }
else
    pg() { sudo -u postgres psql -q -v ON_ERROR_STOP=1 "$@"; }
fi
pg -tAc "select 1 from pg_roles where rolname = 'zeno'" | grep -q 1 \
    || pg -c "create role zeno login password 'zeno'"
for db in zeno_test zeno_replica_test; do
    pg -tAc "select 1 from pg_database where datname = '$db'" | grep -q 1 \
        || pg -c "create database $db owner zeno"
    # PostgreSQL 15+ lets only the owner create tables in `public`.
    pg -d "$db" -c "alter database $db owner to zeno" -c "alter schema public owner to zeno"
done

# Redis
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    echo "services: starting Redis" >&2
    $sudo redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' >/dev/null
    for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi

# MariaDB
if ! mariadb-admin ping >/dev/null 2>&1; then
    echo "services: starting MariaDB" >&2
    $sudo mkdir -p /run/mysqld && $sudo chown mysql:mysql /run/mysqld 2>/dev/null || true
    $sudo start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 1 50); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
$sudo mariadb -e "
    CREATE DATABASE IF NOT EXISTS zeno_test;
    CREATE USER IF NOT EXISTS 'zeno'@'127.0.0.1' IDENTIFIED BY 'zeno';
    CREATE USER IF NOT EXISTS 'zeno'@'localhost' IDENTIFIED BY 'zeno';
    GRANT ALL ON zeno_test.* TO 'zeno'@'127.0.0.1';
    GRANT ALL ON zeno_test.* TO 'zeno'@'localhost';"
