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

# CPU time (utime + stime, clock ticks) of a process ("PID") or of its children ("PID:kids").
ticks() {
    local pid=${1%%:*} total=0 p
    if [ "$1" != "$pid" ]; then
        for p in $(pgrep -P "$pid"); do
            total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
        done
    else
        total=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    fi
    echo "$total"
}

# Loads URL with wrk → "req/s p50 p99", then for each process spec given ("PID" or
# "PID:kids", see ticks) the CPU it spent per request, in µs.
measure() {
    local url=$1 out spec
    shift
    local before=() after=()
    for spec in "$@"; do before+=("$(ticks "$spec")"); done
    out=$(wrk -t2 -c"$connections" -d"$duration" --latency "$url")
    for spec in "$@"; do after+=("$(ticks "$spec")"); done
    local rps p50 p99 non2xx requests
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    if [ -n "$non2xx" ]; then
        echo "bench: $url answered $non2xx non-2xx responses" >&2
        return 1
    fi
    local line="$rps $p50 $p99" i hz
    hz=$(getconf CLK_TCK)
    for i in "${!before[@]}"; do
        line+=" $(awk -v t=$((after[i] - before[i])) -v n="$requests" -v hz="$hz" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')"
    done
    echo "$line"
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

# A PHP-FPM pool section: NAME PORT CHILDREN [EXTRA LINE…] — static children, opcache on,
# run as root when the bench runs as root.
fpm_pool() {
    local name=$1 port=$2 children=$3
    shift 3
    printf '[%s]\n' "$name"
    if [ "$(id -u)" -eq 0 ]; then printf 'user = root\ngroup = root\n'; fi
    printf 'listen = 127.0.0.1:%s\npm = static\npm.max_children = %s\nphp_admin_value[opcache.enable] = 1\n' "$port" "$children"
    if [ $# -gt 0 ]; then printf '%s\n' "$@"; fi
}

# Starts the php-fpm BINARY with the pool sections read from stdin (see fpm_pool); sets fpm_pid.
start_fpm() { # binary
    { printf '[global]\nerror_log = %s\ndaemonize = no\n' "$work/fpm.log"; cat; } >"$work/fpm.conf"
    "$1" --nodaemonize --allow-to-run-as-root --fpm-config "$work/fpm.conf" &
    pids+=($!)
    fpm_pid=$!
}

# A copy of the Laravel 11-style test app in DIR, with what it shares with examples/laravel —
# the app the tests run on Laravel 13 (LaravelApp::modern).
modern_app() { # dir
    cp -r tests/fixtures/laravel-modern "$1"
    mkdir -p "$1/app/Models" "$1/database/migrations"
    cp examples/laravel/app/Models/*.php "$1/app/Models/"
    cp examples/laravel/database/migrations/*.php "$1/database/migrations/"
    cp examples/laravel/bootstrap/autoload.php "$1/bootstrap/"
    cp examples/laravel/config/database.php "$1/config/"
}
