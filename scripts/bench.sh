#!/usr/bin/env bash
# Loads examples/hello under zeno and, in the same run, the same handler under nginx +
# PHP-FPM (4 static children over TCP, opcache on), with wrk. Prints req/s and p50/p99 latency and
# the ratio. Everything listens on loopback and is stopped at the end.
#   BENCH_DURATION (default 8s), BENCH_CONNECTIONS (16), BENCH_WORKERS (4)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
duration=${BENCH_DURATION:-8s}
connections=${BENCH_CONNECTIONS:-16}
workers=${BENCH_WORKERS:-4}
zeno_port=18181
nginx_port=18182
fpm_port=18183
work=$(mktemp -d /tmp/zeno-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

wait_http() {
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench: $1 did not come up" >&2
    return 1
}

# wrk's output → "req/s p50 p99"
measure() {
    local out
    out=$(wrk -t2 -c"$connections" -d"$duration" --latency "$1")
    local rps p50 p99 non2xx
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    if [ -n "$non2xx" ]; then
        echo "bench: $1 answered $non2xx non-2xx responses" >&2
        return 1
    fi
    echo "$rps $p50 $p99"
}

# --- zeno -------------------------------------------------------------------------------
./target/release/zeno serve --worker examples/hello/index.php --workers "$workers" \
    --listen "127.0.0.1:$zeno_port" --log-format json 2>"$work/zeno.log" &
pids+=($!)
wait_http "http://127.0.0.1:$zeno_port/health"

# --- nginx + PHP-FPM ----------------------------------------------------------------------
fpm_bin=$(command -v php-fpm8.2 || command -v php-fpm || ls /usr/sbin/php-fpm* | head -n1)
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
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $root/bench/fpm-front.php;
            fastcgi_pass 127.0.0.1:$fpm_port;
        }
    }
}
CONF
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
