# What the bench scripts share (sourced from the repository root): the load settings, a work
# directory, the processes to stop on exit, and helpers.
#   BENCH_DURATION (default 8s), BENCH_CONNECTIONS (16), BENCH_WORKERS (4), BENCH_KEEP (keep $work)

duration=${BENCH_DURATION:-8s}
connections=${BENCH_CONNECTIONS:-16}
workers=${BENCH_WORKERS:-4}
# The SCRAM-authenticated database scripts/bench-db.sh sets up.
db_url="postgres://zeno_bench:zeno_bench@127.0.0.1:5432/zeno_bench"
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

# The php-fpm binary of this machine.
fpm_binary() {
    command -v php-fpm8.2 || command -v php-fpm || ls /usr/sbin/php-fpm* | head -n1
}

# The start of an nginx.conf that keeps everything under $work: pass the server blocks.
nginx_conf() {
    cat <<CONF
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
$1
}
CONF
}
