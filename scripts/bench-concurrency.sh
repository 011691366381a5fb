#!/usr/bin/env bash
# Laravel 13's Concurrency::run of three one-row queries (PostgreSQL with SCRAM), in one run:
# under `zeno serve --laravel` on the task pool, and under `php artisan` with Laravel's process
# driver and native PDO — each timed in PHP, best of N. Then three tasks that each sleep
# 100 ms. PHP 8.4 and Laravel 13 come from the Debian sid chroot (scripts/sid.sh).
#   BENCH_RUNS (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/bench-lib.sh
runs=${BENCH_RUNS:-20}
port=18196

scripts/bench-db.sh
php_cgi=$(scripts/sid.sh)
php_cli=$(scripts/sid.sh php)
app=$work/laravel13
modern_app "$app"
printf "\nrequire '%s';\n" "$root/tests/fixtures/laravel/concurrency.php" >>"$app/routes/web.php"

ZENO_DB_DEFAULT="$db_url" ./target/release/zeno serve --laravel "$app" --php "$php_cgi" \
    --workers "$workers" --task-workers 4 --listen "127.0.0.1:$port" --log-format json 2>"$work/zeno.log" &
pids+=($!)
wait_http "http://127.0.0.1:$port/up"
curl -fsS "http://127.0.0.1:$port/_conc/setup" >/dev/null

zeno_ms=$(curl -fsS "http://127.0.0.1:$port/_conc/bench?runs=$runs" | sed -E 's/.*"best_ms":([0-9.]+).*/\1/')
sleep_ms=$(for _ in 1 2 3 4 5; do curl -fsS "http://127.0.0.1:$port/_conc/sleep" | sed -E 's/.*"ms":([0-9.]+).*/\1/'; echo; done | sort -n | head -1)
process_ms=$(cd "$app" && DB_CONNECTION=pgsql DB_HOST=127.0.0.1 DB_PORT=5432 DB_DATABASE=zeno_bench \
    DB_USERNAME=zeno_bench DB_PASSWORD=zeno_bench LOG_CHANNEL=stderr \
    "$php_cli" artisan conc:bench process --runs=5 | sed -E 's/.*"best_ms":([0-9.]+).*/\1/')

echo
echo "Laravel 13 Concurrency::run, three one-row queries (PostgreSQL, SCRAM), best time in PHP"
printf '%-58s %10s\n' "runner" "best ms"
printf '%-58s %10s\n' "zeno serve --laravel (task pool, zeno_proxy)" "$zeno_ms"
printf '%-58s %10s\n' "php artisan, Laravel's process driver, native pdo_pgsql" "$process_ms"
awk -v z="$zeno_ms" -v p="$process_ms" 'BEGIN { printf "zeno is %.0fx faster\n", p / z }'
echo "three tasks sleeping 100 ms each, under zeno: ${sleep_ms} ms (best of 5)"
