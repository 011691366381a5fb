#!/usr/bin/env bash
# Loads examples/laravel under `zeno serve --laravel` and, in the same run, the same app on
# nginx + PHP-FPM (4 static children, opcache on), with wrk: GET / (a string) and GET /db
# (one query on PostgreSQL with SCRAM authentication, as deployed). PHP-FPM runs twice for
# /db: a new PDO connection per request (Laravel's default) and persistent PDO.
# With BENCH_LARAVEL=13: Laravel 13 on PHP 8.4 from the Debian sid chroot (scripts/sid.sh),
# the 11-style test app, and sid's php-fpm8.4 for the peer.
#   BENCH_DURATION (default 8s), BENCH_CONNECTIONS (16), BENCH_WORKERS (4), BENCH_LARAVEL (8)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
app=$root/examples/laravel
zeno_port=18191
nginx_port=18192
nginx_persistent_port=18193
fpm_port=18194
fpm_persistent_port=18195
source scripts/bench-lib.sh

php_args=()
framework=/usr/share/php/Illuminate/Foundation/Application.php
fpm_bin=$(fpm_binary)
seed=(--seed)
if [ "${BENCH_LARAVEL:-8}" = 13 ]; then
    sid_cgi=$(scripts/sid.sh)
    sid_root=$(dirname "$sid_cgi")
    sid_root=${sid_root%.bin}
    php_args=(--php "$sid_cgi")
    export ZENO_WORKERS__PHP=$sid_cgi
    framework=$sid_root$framework
    # php-fpm8.4 inside the chroot; its config and logs are under $work (/tmp is mounted).
    printf '#!/bin/sh\nexec /usr/sbin/chroot %s /usr/sbin/php-fpm8.4 "$@"\n' "$sid_root" >"$work/php-fpm8.4"
    chmod +x "$work/php-fpm8.4"
    fpm_bin=$work/php-fpm8.4
    app=$work/laravel13
    modern_app "$app"
    seed=()
fi

scripts/bench-db.sh
ZENO_DB_DEFAULT="$db_url" ./target/release/zeno artisan "$app" -- migrate --force "${seed[@]}" >/dev/null

# --- zeno ---------------------------------------------------------------------------------
# Sessions in memory for both, so neither pays for session files.
ZENO_WORKERS__ENV__SESSION_DRIVER=array ZENO_DB_DEFAULT="$db_url" \
    ./target/release/zeno serve --laravel "$app" "${php_args[@]}" --workers "$workers" \
    --listen "127.0.0.1:$zeno_port" --log-format json 2>"$work/zeno.log" &
pids+=($!)
zeno_pid=$!

# --- nginx + PHP-FPM ------------------------------------------------------------------------
pool() { # name port persistent
    fpm_pool "$1" "$2" "$workers" 'clear_env = yes' 'env[DB_CONNECTION] = pgsql' \
        'env[DB_HOST] = 127.0.0.1' 'env[DB_PORT] = 5432' 'env[DB_DATABASE] = zeno_bench' \
        'env[DB_USERNAME] = zeno_bench' 'env[DB_PASSWORD] = zeno_bench' "env[DB_PERSISTENT] = $3" \
        'env[SESSION_DRIVER] = array' 'env[LOG_CHANNEL] = stderr' \
        'php_admin_value[opcache.validate_timestamps] = 0'
}
start_fpm "$fpm_bin" < <(pool new "$fpm_port" 0; pool persistent "$fpm_persistent_port" 1)
mkdir -p "$work/nginx"
server() { # port fpm_port
    cat <<CONF
    server {
        listen 127.0.0.1:$1;
        root $app/public;
        location / { try_files \$uri /index.php?\$query_string; }
        location = /index.php {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $app/public/index.php;
            fastcgi_pass 127.0.0.1:$2;
        }
    }
CONF
}
nginx_conf "$(cat <<CONF
$(server "$nginx_port" "$fpm_port")
$(server "$nginx_persistent_port" "$fpm_persistent_port")
CONF
)" >"$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)
nginx_pid=$!

zeno=http://127.0.0.1:$zeno_port
fpm=http://127.0.0.1:$nginx_port
fpmp=http://127.0.0.1:$nginx_persistent_port
wait_http "$zeno/health"
wait_http "$fpm/"
wait_http "$fpmp/"
for path in / /db; do
    a=$(curl -fsS "$zeno$path"); b=$(curl -fsS "$fpm$path"); c=$(curl -fsS "$fpmp$path")
    [ "$a" = "$b" ] && [ "$a" = "$c" ] || { echo "bench: $path answers differ: '$a' '$b' '$c'" >&2; exit 1; }
done

for url in "$zeno/" "$fpm/" "$zeno/db" "$fpmp/db"; do
    wrk -t2 -c"$connections" -d2s "$url" >/dev/null
done
# CPU per request (µs, /proc): zeno's host and PHP workers; nginx (master + worker) and the
# PHP-FPM children (both pools share the master).
zcpu=("$zeno_pid" "$zeno_pid:kids")
fcpu=("$nginx_pid" "$nginx_pid:kids" "$fpm_pid:kids")
read -r fh_rps fh_p50 fh_p99 fh_ng fh_ngw fh_php < <(measure "$fpm/" "${fcpu[@]}")
read -r zh_rps zh_p50 zh_p99 zh_host zh_php < <(measure "$zeno/" "${zcpu[@]}")
read -r fn_rps fn_p50 fn_p99 fn_ng fn_ngw fn_php < <(measure "$fpm/db" "${fcpu[@]}")
read -r fp_rps fp_p50 fp_p99 fp_ng fp_ngw fp_php < <(measure "$fpmp/db" "${fcpu[@]}")
read -r zd_rps zd_p50 zd_p99 zd_host zd_php < <(measure "$zeno/db" "${zcpu[@]}")
sum() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a + b }'; }

echo
echo "$(basename "$app") (Laravel $(sed -n "s/.*const VERSION = '\(.*\)';/\1/p" "$framework")) — wrk -t2 -c$connections -d$duration, $workers PHP workers each, $(nproc) cores"
echo "CPU per request in µs: zeno host / PHP workers; nginx / PHP-FPM (PostgreSQL's own not counted)"
row() { printf '%-40s %12s %10s %10s %9s %9s\n' "$@"; }
row "route / server" "req/s" "p50" "p99" "CPU a" "CPU b"
row "GET /   zeno --laravel" "$zh_rps" "$zh_p50" "$zh_p99" "$zh_host" "$zh_php"
row "GET /   nginx + PHP-FPM" "$fh_rps" "$fh_p50" "$fh_p99" "$(sum "$fh_ng" "$fh_ngw")" "$fh_php"
row "GET /db zeno --laravel (zeno_proxy)" "$zd_rps" "$zd_p50" "$zd_p99" "$zd_host" "$zd_php"
row "GET /db nginx + PHP-FPM, new PDO" "$fn_rps" "$fn_p50" "$fn_p99" "$(sum "$fn_ng" "$fn_ngw")" "$fn_php"
row "GET /db nginx + PHP-FPM, persistent PDO" "$fp_rps" "$fp_p50" "$fp_p99" "$(sum "$fp_ng" "$fp_ngw")" "$fp_php"
awk -v z="$zh_rps" -v f="$fh_rps" 'BEGIN { printf "ratio GET /:   zeno / PHP-FPM %.2fx\n", z / f }'
awk -v z="$zd_rps" -v n="$fn_rps" -v p="$fp_rps" 'BEGIN { printf "ratio GET /db: zeno / PHP-FPM new connection %.1fx; zeno / PHP-FPM persistent %.2fx\n", z / n, z / p }'

# Where one query's time goes inside a worker, Laravel 8's example app only (its console
# routes carry the command): the host call alone, zeno_proxy's PDO, Laravel on zeno_proxy,
# Laravel on native pdo_pgsql with a warm connection.
if [ "${BENCH_LARAVEL:-8}" != 13 ]; then
    echo
    echo "one query inside a worker, µs per query (CPU of the PHP process, wall):"
    ZENO_DB_DEFAULT="$db_url" ZENO_WORKERS__ENV__DB_HOST=127.0.0.1 ZENO_WORKERS__ENV__DB_DATABASE=zeno_bench \
        ZENO_WORKERS__ENV__DB_USERNAME=zeno_bench ZENO_WORKERS__ENV__DB_PASSWORD=zeno_bench \
        ./target/release/zeno artisan "$app" -- bench:query-split 2000 2>/dev/null
fi
