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
zeno_min_port=18185
source scripts/bench-lib.sh

# --- zeno -------------------------------------------------------------------------------
scripts/bench-db.sh
ZENO_WORKERS__ENV__BENCH_PDO_DSN="pgsql:host=127.0.0.1;port=5432;dbname=zeno_bench" ZENO_DB_DEFAULT="$db_url" \
    ./target/release/zeno serve --worker bench/db-handler.php --workers "$workers" \
    --listen "127.0.0.1:$zeno_db_port" --log-format json 2>"$work/zeno-db.log" &
pids+=($!)
zeno_db_pid=$!
./target/release/zeno serve --worker examples/hello/index.php --workers "$workers" \
    --listen "127.0.0.1:$zeno_port" --log-format json 2>"$work/zeno.log" &
pids+=($!)
zeno_pid=$!
# The hello-world peers publish: a one-line handler, against a one-line PHP file under FPM.
./target/release/zeno serve --worker bench/hello-min.php --workers "$workers" \
    --listen "127.0.0.1:$zeno_min_port" --log-format json 2>"$work/zeno-min.log" &
pids+=($!)
zeno_min_pid=$!
wait_http "http://127.0.0.1:$zeno_port/health"
wait_http "http://127.0.0.1:$zeno_min_port/health"

# --- nginx + PHP-FPM ----------------------------------------------------------------------
start_fpm "$(fpm_binary)" < <(fpm_pool www "$fpm_port" "$workers")
mkdir -p "$work/nginx"
nginx_conf "$(cat <<CONF
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $root/bench/fpm-front.php;
            fastcgi_pass 127.0.0.1:$fpm_port;
        }
        location = /min {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $root/bench/fpm-hello.php;
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
nginx_pid=$!
wait_http "http://127.0.0.1:$nginx_port/?name=bench"

# Same answer from both, or the comparison means nothing.
a=$(curl -fsS "http://127.0.0.1:$zeno_port/?name=bench")
b=$(curl -fsS "http://127.0.0.1:$nginx_port/?name=bench")
[ "$a" = "$b" ] || { echo "bench: zeno and FPM answer differently: '$a' vs '$b'" >&2; exit 1; }

# Same answer from the one-line pair too.
a=$(curl -fsS "http://127.0.0.1:$zeno_min_port/")
b=$(curl -fsS "http://127.0.0.1:$nginx_port/min")
[ "$a" = "$b" ] || { echo "bench: one-line handlers answer differently: '$a' vs '$b'" >&2; exit 1; }

# Warm up, then measure one after the other so noise hits all. Besides req/s and latency, the
# CPU each process spent per request (µs, from /proc): zeno's own, its PHP workers', nginx's
# (master and worker), PHP-FPM's children'.
for url in "http://127.0.0.1:$zeno_port/?name=bench" "http://127.0.0.1:$nginx_port/?name=bench" \
    "http://127.0.0.1:$zeno_min_port/" "http://127.0.0.1:$nginx_port/min"; do
    wrk -t2 -c"$connections" -d2s "$url" >/dev/null
done
zeno_cpu=("$zeno_pid" "$zeno_pid:kids")
zeno_min_cpu=("$zeno_min_pid" "$zeno_min_pid:kids")
fpm_cpu=("$nginx_pid" "$nginx_pid:kids" "$fpm_pid:kids")
read -r fpm_rps fpm_p50 fpm_p99 fpm_nginx fpm_nginx_w fpm_php < <(measure "http://127.0.0.1:$nginx_port/?name=bench" "${fpm_cpu[@]}")
read -r zeno_rps zeno_p50 zeno_p99 zeno_host zeno_php < <(measure "http://127.0.0.1:$zeno_port/?name=bench" "${zeno_cpu[@]}")
read -r minf_rps minf_p50 minf_p99 minf_nginx minf_nginx_w minf_php < <(measure "http://127.0.0.1:$nginx_port/min" "${fpm_cpu[@]}")
read -r minz_rps minz_p50 minz_p99 minz_host minz_php < <(measure "http://127.0.0.1:$zeno_min_port/" "${zeno_min_cpu[@]}")

row() { printf '%-40s %10s %9s %9s %10s %10s\n' "$@"; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a + b }'; }
echo
echo "hello world — wrk -t2 -c$connections -d$duration, $workers PHP workers each, $(nproc) cores"
echo "CPU per request in µs: for zeno the host / its PHP workers; for the peer nginx / PHP-FPM"
row "server" "req/s" "p50" "p99" "CPU a" "CPU b"
row "zeno, examples/hello" "$zeno_rps" "$zeno_p50" "$zeno_p99" "$zeno_host" "$zeno_php"
row "nginx + PHP-FPM, examples/hello per req" "$fpm_rps" "$fpm_p50" "$fpm_p99" "$(sum "$fpm_nginx" "$fpm_nginx_w")" "$fpm_php"
row "zeno, one-line handler" "$minz_rps" "$minz_p50" "$minz_p99" "$minz_host" "$minz_php"
row "nginx + PHP-FPM, one-line PHP file" "$minf_rps" "$minf_p50" "$minf_p99" "$(sum "$minf_nginx" "$minf_nginx_w")" "$minf_php"
awk -v z="$zeno_rps" -v f="$fpm_rps" -v mz="$minz_rps" -v mf="$minf_rps" \
    'BEGIN { printf "ratio zeno / PHP-FPM: %.2fx for examples/hello (FPM boots the handler per request), %.2fx one line against one line\n", z / f, mz / mf }'

echo "the PHP runtime's own CPU per request, without the pipes (php-cgi, median of 5 × 20,000):"
php-cgi -q bench/runtime-cost.php 20000

# --- one query per request, PostgreSQL with SCRAM authentication ---------------------------
wait_http "http://127.0.0.1:$zeno_db_port/health"
a=$(curl -fsS "http://127.0.0.1:$zeno_db_port/db")
b=$(curl -fsS "http://127.0.0.1:$nginx_port/db")
c=$(curl -fsS "http://127.0.0.1:$nginx_port/db?persistent=1")
[ "$a" = "$b" ] && [ "$a" = "$c" ] || { echo "bench: /db answers differ: '$a' '$b' '$c'" >&2; exit 1; }
wrk -t2 -c"$connections" -d2s "http://127.0.0.1:$zeno_db_port/db" >/dev/null
wrk -t2 -c"$connections" -d2s "http://127.0.0.1:$nginx_port/db?persistent=1" >/dev/null
read -r fpmn_rps fpmn_p50 fpmn_p99 fpmn_ng fpmn_ngw fpmn_php < <(measure "http://127.0.0.1:$nginx_port/db" "${fpm_cpu[@]}")
read -r fpmp_rps fpmp_p50 fpmp_p99 fpmp_ng fpmp_ngw fpmp_php < <(measure "http://127.0.0.1:$nginx_port/db?persistent=1" "${fpm_cpu[@]}")
read -r zdb_rps zdb_p50 zdb_p99 zdb_host zdb_php < <(measure "http://127.0.0.1:$zeno_db_port/db" "$zeno_db_pid" "$zeno_db_pid:kids")

echo
echo "GET /db: select count(*) on PostgreSQL (SCRAM auth), one query per request — same settings"
echo "CPU per request in µs (PostgreSQL's own not counted): zeno host / PHP; nginx / PHP-FPM"
row "server" "req/s" "p50" "p99" "CPU a" "CPU b"
row "zeno (host pool)" "$zdb_rps" "$zdb_p50" "$zdb_p99" "$zdb_host" "$zdb_php"
row "nginx + PHP-FPM, new PDO each" "$fpmn_rps" "$fpmn_p50" "$fpmn_p99" "$(sum "$fpmn_ng" "$fpmn_ngw")" "$fpmn_php"
row "nginx + PHP-FPM, persistent PDO" "$fpmp_rps" "$fpmp_p50" "$fpmp_p99" "$(sum "$fpmp_ng" "$fpmp_ngw")" "$fpmp_php"
awk -v z="$zdb_rps" -v n="$fpmn_rps" -v p="$fpmp_rps" 'BEGIN { printf "ratio zeno / FPM new connection: %.1fx; zeno / FPM persistent: %.2fx\n", z / n, z / p }'

echo
echo "per-query latency in one PHP worker: through the host vs a warm PDO connection"
curl -fsS "http://127.0.0.1:$zeno_db_port/latency?n=2000"
echo
