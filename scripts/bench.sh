#!/usr/bin/env bash
# Loads examples/hello under zeno and, in the same run, the same handler under nginx +
# PHP-FPM (4 static children over TCP, opcache on), with wrk. Prints req/s and p50/p99 latency and
# the ratio. Everything listens on loopback and is stopped at the end.
#   BENCH_DURATION (default 8s), BENCH_CONNECTIONS (16), BENCH_WORKERS (4)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
zeno_port=18181
nginx_port=18182
fpm_port=18183
zeno_db_port=18184
source scripts/bench-lib.sh

# --- zeno -------------------------------------------------------------------------------
scripts/bench-db.sh
ZENO_WORKERS__ENV__BENCH_PDO_DSN="pgsql:host=127.0.0.1;port=5432;dbname=zeno_bench" \
    ./target/release/zeno serve --worker bench/db-handler.php --workers "$workers" \
    --listen "127.0.0.1:$zeno_db_port" --db "default=$db_url" --log-format json 2>"$work/zeno-db.log" &
pids+=($!)
./target/release/zeno serve --worker examples/hello/index.php --workers "$workers" \
    --listen "127.0.0.1:$zeno_port" --log-format json 2>"$work/zeno.log" &
pids+=($!)
wait_http "http://127.0.0.1:$zeno_port/health"

# --- nginx + PHP-FPM ----------------------------------------------------------------------
fpm_bin=$(fpm_binary)
run_as=""
[ "$(id -u)" -eq 0 ] && run_as=$'user = root\ngroup = root'
cat >"$work/fpm.conf" <<CONF
[global]
error_log = $work/fpm.log
daemonize = no
[www]
$run_as
listen = 127.0.0.1:$fpm_port
pm = static
pm.max_children = $workers
php_admin_value[opcache.enable] = 1
CONF
"$fpm_bin" --nodaemonize --allow-to-run-as-root --fpm-config "$work/fpm.conf" &
pids+=($!)
mkdir -p "$work/nginx"
nginx_conf "$(cat <<CONF
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $root/bench/fpm-front.php;
            fastcgi_pass 127.0.0.1:$fpm_port;
        }
        location = /db {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $root/bench/fpm-db.php;
            fastcgi_pass 127.0.0.1:$fpm_port;
        }
    }
CONF
)" >"$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)
wait_http "http://127.0.0.1:$nginx_port/?name=bench"

# Same answer from both, or the comparison means nothing.
a=$(curl -fsS "http://127.0.0.1:$zeno_port/?name=bench")
b=$(curl -fsS "http://127.0.0.1:$nginx_port/?name=bench")
[ "$a" = "$b" ] || { echo "bench: zeno and FPM answer differently: '$a' vs '$b'" >&2; exit 1; }

# Warm both up, then measure alternately so noise hits both.
wrk -t2 -c"$connections" -d2s "http://127.0.0.1:$zeno_port/?name=bench" >/dev/null
wrk -t2 -c"$connections" -d2s "http://127.0.0.1:$nginx_port/?name=bench" >/dev/null
read -r fpm_rps fpm_p50 fpm_p99 < <(measure "http://127.0.0.1:$nginx_port/?name=bench")
read -r zeno_rps zeno_p50 zeno_p99 < <(measure "http://127.0.0.1:$zeno_port/?name=bench")

echo
echo "examples/hello GET /?name=bench — wrk -t2 -c$connections -d$duration, $workers PHP workers each, $(nproc) cores"
printf '%-22s %12s %10s %10s\n' "server" "req/s" "p50" "p99"
printf '%-22s %12s %10s %10s\n' "zeno (php-cgi workers)" "$zeno_rps" "$zeno_p50" "$zeno_p99"
printf '%-22s %12s %10s %10s\n' "nginx + PHP-FPM" "$fpm_rps" "$fpm_p50" "$fpm_p99"
awk -v z="$zeno_rps" -v f="$fpm_rps" 'BEGIN { printf "ratio zeno / PHP-FPM: %.2fx\n", z / f }'

# --- one query per request, PostgreSQL with SCRAM authentication ---------------------------
wait_http "http://127.0.0.1:$zeno_db_port/health"
a=$(curl -fsS "http://127.0.0.1:$zeno_db_port/db")
b=$(curl -fsS "http://127.0.0.1:$nginx_port/db")
c=$(curl -fsS "http://127.0.0.1:$nginx_port/db?persistent=1")
[ "$a" = "$b" ] && [ "$a" = "$c" ] || { echo "bench: /db answers differ: '$a' '$b' '$c'" >&2; exit 1; }
wrk -t2 -c"$connections" -d2s "http://127.0.0.1:$zeno_db_port/db" >/dev/null
wrk -t2 -c"$connections" -d2s "http://127.0.0.1:$nginx_port/db?persistent=1" >/dev/null
read -r fpmn_rps fpmn_p50 fpmn_p99 < <(measure "http://127.0.0.1:$nginx_port/db")
read -r fpmp_rps fpmp_p50 fpmp_p99 < <(measure "http://127.0.0.1:$nginx_port/db?persistent=1")
read -r zdb_rps zdb_p50 zdb_p99 < <(measure "http://127.0.0.1:$zeno_db_port/db")

echo
echo "GET /db: select count(*) on PostgreSQL (SCRAM auth), one query per request — same settings"
printf '%-34s %12s %10s %10s\n' "server" "req/s" "p50" "p99"
printf '%-34s %12s %10s %10s\n' "zeno (host pool)" "$zdb_rps" "$zdb_p50" "$zdb_p99"
printf '%-34s %12s %10s %10s\n' "nginx + PHP-FPM, new PDO each" "$fpmn_rps" "$fpmn_p50" "$fpmn_p99"
printf '%-34s %12s %10s %10s\n' "nginx + PHP-FPM, persistent PDO" "$fpmp_rps" "$fpmp_p50" "$fpmp_p99"
awk -v z="$zdb_rps" -v n="$fpmn_rps" -v p="$fpmp_rps" 'BEGIN { printf "ratio zeno / FPM new connection: %.1fx; zeno / FPM persistent: %.2fx\n", z / n, z / p }'

echo
echo "per-query latency in one PHP worker: through the host vs a warm PDO connection"
curl -fsS "http://127.0.0.1:$zeno_db_port/latency?n=2000"
echo
