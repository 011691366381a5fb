#!/usr/bin/env bash
# Database servers for the TLS tests (tests/tests/database_tls.rs), beside the ones
# scripts/services.sh runs, each with user `zeno` (password `zeno`) and database `zeno_test`:
#
#   PostgreSQL on 127.0.0.1:5433  TLS only (hostssl; plain connections rejected)
#   PostgreSQL on 127.0.0.1:5434  no TLS at all (ssl = off)
#   MariaDB    on 127.0.0.1:3307  TLS only (require_secure_transport)
#
# Their certificates come from a CA this script makes, in $ZENO_TLS_DIR (default
# ~/.cache/zeno/tls): ca.pem (the CA), other-ca.pem (a CA that signed nothing here), and the
# servers' server.pem / server.key for the name `localhost` only — so a client connecting to
# 127.0.0.1 with full verification must fail on the name — and client.pem / client.key, the
# certificate the PostgreSQL user zeno_cert must log in with on 5433. Safe to run again.
set -euo pipefail

dir="${ZENO_TLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/zeno/tls}"
mkdir -p "$dir"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if [ "$(id -u)" -eq 0 ]; then as_postgres() { su postgres -c "$(printf '%q ' "$@")"; }
else as_postgres() { sudo -u postgres "$@"; }; fi

# The CA, the server's certificate (localhost only), and a second, unrelated CA.
if [ ! -e "$dir/.ready" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Zeno test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Some other CA" \
        -keyout "$dir/other-ca.key" -out "$dir/other-ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > "$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 3650 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
    chmod 644 "$dir"/*.pem
    touch "$dir/.ready"
fi
# A client certificate for the PostgreSQL user zeno_cert, who may log in with nothing else.
if [ ! -e "$dir/client.pem" ]; then
    openssl req -newkey rsa:2048 -nodes -subj "/CN=zeno_cert" \
        -keyout "$dir/client.key" -out "$dir/client.csr" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' > "$dir/client.ext"
    openssl x509 -req -in "$dir/client.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 3650 -extfile "$dir/client.ext" -out "$dir/client.pem" 2>/dev/null
    chmod 644 "$dir/client.pem"
    chmod 600 "$dir/client.key"
fi

# PostgreSQL: two more clusters of the installed version.
version=$(ls /etc/postgresql | sort -V | tail -n1)
pg_cluster() { # name port ssl
    local name=$1 port=$2 ssl=$3 conf="/etc/postgresql/$version/$1"
    if [ ! -d "$conf" ]; then
        $sudo pg_createcluster "$version" "$name" -p "$port" >/dev/null
    fi
    local data
    data=$(awk -F"'" '/^data_directory/ {print $2}' "$conf/postgresql.conf")
    if [ "$ssl" = on ]; then
        $sudo install -o postgres -g postgres -m 600 "$dir/server.key" "$data/zeno-server.key"
        $sudo install -o postgres -g postgres -m 644 "$dir/server.pem" "$data/zeno-server.pem"
        $sudo install -o postgres -g postgres -m 644 "$dir/ca.pem" "$data/zeno-ca.pem"
        $sudo tee "$conf/conf.d/zeno-tls.conf" >/dev/null <<EOF
ssl = on
ssl_cert_file = '$data/zeno-server.pem'
ssl_key_file = '$data/zeno-server.key'
ssl_ca_file = '$data/zeno-ca.pem'
listen_addresses = '127.0.0.1'
EOF
        $sudo tee "$conf/pg_hba.conf" >/dev/null <<'EOF'
local   all all                peer
hostssl all zeno_cert 127.0.0.1/32 cert
hostssl all zeno_cert ::1/128      cert
hostssl all all 127.0.0.1/32   scram-sha-256
hostssl all all ::1/128        scram-sha-256
EOF
    else
        $sudo tee "$conf/conf.d/zeno-tls.conf" >/dev/null <<'EOF'
ssl = off
listen_addresses = '127.0.0.1'
EOF
        $sudo tee "$conf/pg_hba.conf" >/dev/null <<'EOF'
local   all all                peer
host    all all 127.0.0.1/32   scram-sha-256
EOF
    fi
    if pg_isready -q -h 127.0.0.1 -p "$port"; then
        $sudo pg_ctlcluster --skip-systemctl-redirect "$version" "$name" reload
    else
        # A server killed outright (a CI run ends every process it left) leaves its lock
        # files; one naming a pid since reused by another process stops the next start, so
        # a start that fails while nothing answers on the port goes again without them.
        if ! $sudo pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start 2>/dev/null; then
            if pg_isready -q -h 127.0.0.1 -p "$port"; then :; else
                $sudo pkill -9 -f "postgresql/$version/$name" || true
                $sudo rm -f "/var/run/postgresql/.s.PGSQL.$port.lock" "/var/run/postgresql/.s.PGSQL.$port" "$data/postmaster.pid"
                $sudo pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start
            fi
        fi
    fi
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.2; done
    as_postgres psql -q -p "$port" -v ON_ERROR_STOP=1 -tAc "select 1 from pg_roles where rolname = 'zeno'" | grep -q 1 \
        || as_postgres psql -q -p "$port" -c "create role zeno login password 'zeno'"
    as_postgres psql -q -p "$port" -tAc "select 1 from pg_database where datname = 'zeno_test'" | grep -q 1 \
        || as_postgres psql -q -p "$port" -c "create database zeno_test owner zeno"
    as_postgres psql -q -p "$port" -tAc "select 1 from pg_roles where rolname = 'zeno_cert'" | grep -q 1 \
        || as_postgres psql -q -p "$port" -c "create role zeno_cert login"
}
pg_cluster zeno_tls 5433 on
pg_cluster zeno_plain 5434 off

# MariaDB: a second server on its own data directory, where the mysql user can reach it
# (not under a home directory).
my="${ZENO_TLS_MARIADB_DIR:-/var/tmp/zeno-tls-mariadb}"
if [ ! -d "$my/data/mysql" ]; then
    $sudo rm -rf "$my"
    $sudo mkdir -p "$my/data"
    $sudo chown -R mysql:mysql "$my"
    $sudo mariadb-install-db --user=mysql --datadir="$my/data" --auth-root-authentication-method=socket >"$dir/mariadb-install.log" 2>&1 \
        || { echo "tls-services: mariadb-install-db failed; see $dir/mariadb-install.log" >&2; exit 1; }
fi
if ! mariadb-admin --socket="$my/mysqld.sock" ping >/dev/null 2>&1; then
    $sudo install -o mysql -g mysql -m 600 "$dir/server.key" "$my/server.key"
    $sudo install -o mysql -g mysql -m 644 "$dir/server.pem" "$my/server.pem"
    $sudo install -o mysql -g mysql -m 644 "$dir/ca.pem" "$my/ca.pem"
    $sudo chown -R mysql:mysql "$my"
    # Not start-stop-daemon: it would take the main server for this one and do nothing.
    $sudo setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$my/data" \
        --socket="$my/mysqld.sock" --pid-file="$my/mysqld.pid" \
        --port=3307 --bind-address=127.0.0.1 --skip-name-resolve \
        --ssl-ca="$my/ca.pem" --ssl-cert="$my/server.pem" --ssl-key="$my/server.key" \
        --require-secure-transport=ON >"$dir/mariadb.log" 2>&1 </dev/null &
    for _ in $(seq 1 100); do mariadb-admin --socket="$my/mysqld.sock" ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
$sudo mariadb --socket="$my/mysqld.sock" -e "
    CREATE DATABASE IF NOT EXISTS zeno_test;
    CREATE USER IF NOT EXISTS 'zeno'@'127.0.0.1' IDENTIFIED BY 'zeno';
    GRANT ALL ON zeno_test.* TO 'zeno'@'127.0.0.1';"
echo "$dir"
