#!/usr/bin/env bash
# Where the host's CPU goes on hello-world: serves bench/hello-min.php with the release
# binary (4 workers), loads it with wrk, samples the zeno process (not PHP, not wrk) with
# Linux perf for 5 s and writes a flame graph, plus the share of the samples in the kernel
# and in the host's own code. With PROFILE_PEER=1 the same for the peer: nginx's worker in
# front of PHP-FPM serving the one-line bench/fpm-hello.php; with PROFILE_DB=1 the host on
# one query per request (bench/db-handler.php, PostgreSQL with SCRAM as in scripts/bench-db.sh). Needs perf (Debian's
# linux-perf) and inferno (crates.io); `just profile` installs both.
#   profile.sh [OUT.svg] [TITLE]    PROFILE_BIN: another zeno binary (default the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/profile/hello.svg}
title=${2:-"zeno host, hello-world ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))"}
port=18196
source scripts/bench-lib.sh
mkdir -p "$(dirname "$out")"

if [ -n "${PROFILE_PEER:-}" ]; then
    start_fpm "$(fpm_binary)" < <(fpm_pool www "$((port + 1))" "$workers")
    nginx_conf "server { listen 127.0.0.1:$port; location / { include /etc/nginx/fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $PWD/bench/fpm-hello.php; fastcgi_pass 127.0.0.1:$((port + 1)); } }" \
        >"$work/nginx.conf"
    nginx -c "$work/nginx.conf" -p "$work" &
    pids+=($!)
    wait_http "http://127.0.0.1:$port/"
    # The one nginx worker process serves every request.
    target_pid=$(pgrep -P "$!" nginx | head -n1)
else
    handler=bench/hello-min.php path=/
    if [ -n "${PROFILE_DB:-}" ]; then
        scripts/bench-db.sh
        handler=bench/db-handler.php path=/db
        export ZENO_DB_DEFAULT=$db_url
    fi
    "${PROFILE_BIN:-./target/release/zeno}" serve --worker "$handler" --workers "$workers" \
        --listen "127.0.0.1:$port" --log-format json 2>"$work/zeno.log" &
    pids+=($!)
    target_pid=$!
    wait_http "http://127.0.0.1:$port$path"
fi
wrk -t2 -c"$connections" -d2s "http://127.0.0.1:$port${path:-/}" >/dev/null
wrk -t2 -c"$connections" -d8s "http://127.0.0.1:$port${path:-/}" >"$work/wrk.txt" &
wrk_pid=$!
sleep 1
perf record -q -F 2000 --call-graph dwarf,32768 -o "$work/perf.data" -p "$target_pid" -- sleep 5 \
    >/dev/null 2>&1
wait "$wrk_pid"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf --kernel >"$work/folded"
inferno-flamegraph --title "$title" --width 1600 --minwidth 1 <"$work/folded" >"$out"
echo "flame graph: $out ($(awk '/^Requests\/sec/ {print $2}' "$work/wrk.txt") req/s while sampled)"
# The share of samples whose innermost frame is in the kernel, and the largest user frames.
awk '{ n = $NF; total += n; stack = $0; sub(/ [0-9]+$/, "", stack);
       k = split(stack, f, ";"); leaf = f[k];
       if (leaf ~ /_\[k\]$/) kernel += n }
     END { printf "samples in the kernel: %.0f%%, in the process itself: %.0f%%\n",
           100 * kernel / total, 100 * (total - kernel) / total }' "$work/folded"
# Inclusive shares of what the host asks of the kernel (a sample can count in two rows).
for pair in "TCP send (with loopback delivery to the client):;tcp_sendmsg_\\[k\\]" \
    "pipe write (waking a PHP worker):;(anon_)?pipe_write_\\[k\\]" \
    "socket and pipe reads:;sock_recvmsg_\\[k\\]|;(anon_)?pipe_read_\\[k\\]" \
    "waiting for events (epoll_wait):;do_epoll_wait_\\[k\\]"; do
    label=${pair%%:*} pat=${pair#*:} awk '{ n = $NF; total += n; if ($0 ~ ENVIRON["pat"]) hit += n }
        END { printf "  %-50s %3.0f%%\n", ENVIRON["label"], 100 * hit / total }' "$work/folded"
done
