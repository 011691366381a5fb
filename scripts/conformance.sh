#!/usr/bin/env bash
# Conformance of the zeno_proxy Laravel driver: runs laravel/framework's own
# tests/Integration/Database natively (pdo_sqlite, pdo_pgsql, pdo_mysql) and under
# `zeno artisan` with the documented zeno_proxy connection, against the same database, and
# reports which natively passing tests do not pass under zeno_proxy.
#
#   scripts/conformance.sh [sqlite|pgsql|mariadb]...      (default: all three)
#
# Environment:
#   ZENO            the zeno binary (default target/debug/zeno; copied before use, so a
#                   rebuild during the run does not change it)
#   TESTBENCH_CORE  orchestra/testbench-core 6.x for Laravel 8: a source tree (with src/ and
#                   laravel/), or a git directory of the repository, from which
#                   TESTBENCH_CORE_REF (default v6.29.1) is extracted at run time. Not part
#                   of this repository.
#   CONFORMANCE_WORK  scratch directory (default /tmp/conformance)
#   CONFORMANCE_FILTER  a PHPUnit --filter for both runs
#   CONFORMANCE_CONTROL=1  also run the native drivers inside a Zeno worker, which tells
#                   zeno_proxy's failures apart from those of running in a worker at all
#   CONFORMANCE_ZENO_CONFIG  diagnostics: JSON added to the zeno_proxy connection's config
#                   (e.g. '{"schema":"public"}'), to see which failures a setting explains
#   CONFORMANCE_DRIVER_AS_BACKEND=1  diagnostics: the zeno connection's config says the
#                   backend's driver name (built by zeno_proxy's connector all the same), for
#                   the tests that read config('database.connections.<default>.driver')
#   CONFORMANCE_TAG  results go to $CONFORMANCE_WORK/<backend>-<tag> instead of <backend>
#   LARAVEL_TESTS   a laravel/framework source tree (default: `apt-get source` of the
#                   installed php-laravel-framework)
#
# Output: one line per backend, "<backend>: N of M natively passing tests pass under
# zeno_proxy"; the failing tests with the first line of their error in
# $CONFORMANCE_WORK/<backend>/failures.tsv; every result in <backend>/{native,zeno}.jsonl.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
here="$root/scripts/conformance"
work="${CONFORMANCE_WORK:-/tmp/conformance}"
mkdir -p "$work"

backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(sqlite pgsql mariadb)
for b in "${backends[@]}"; do
    case "$b" in sqlite|pgsql|mariadb) ;; *) echo "conformance: unknown backend '$b' (sqlite, pgsql, mariadb)" >&2; exit 2 ;; esac
done

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# PHP, PHPUnit, Laravel and the PDO drivers (Debian's), Mockery and DBAL for some tests.
packages=(php-cli php-cgi phpunit php-pgsql php-mysql php-sqlite3 php-laravel-framework php-mockery php-doctrine-dbal dpkg-dev)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "conformance: installing ${missing[*]} from Debian's packages" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- laravel/framework's tests ---------------------------------------------------------
if [ -z "${LARAVEL_TESTS:-}" ]; then
    version="$(dpkg-query -W -f='${Version}' php-laravel-framework)"
    upstream="${version%-*}"
    LARAVEL_TESTS="$work/php-laravel-framework-$upstream"
    if [ ! -d "$LARAVEL_TESTS/tests/Integration/Database" ]; then
        if ! apt-get source --print-uris "php-laravel-framework=$version" >/dev/null 2>&1; then
            echo "conformance: adding a deb-src source for Debian bookworm" >&2
            $sudo tee /etc/apt/sources.list.d/zeno-conformance-src.sources >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
            $sudo apt-get update -qq
        fi
        (cd "$work" && apt-get source -qq "php-laravel-framework=$version" >/dev/null)
    fi
fi
[ -d "$LARAVEL_TESTS/tests/Integration/Database" ] || { echo "conformance: no tests/Integration/Database in $LARAVEL_TESTS" >&2; exit 1; }

# --- orchestra/testbench-core ----------------------------------------------------------
tb="${TESTBENCH_CORE:-}"
if [ -z "$tb" ]; then
    echo "conformance: set TESTBENCH_CORE to an orchestra/testbench-core 6.x tree or git directory" >&2
    exit 1
fi
if [ ! -f "$tb/src/TestCase.php" ]; then
    ref="${TESTBENCH_CORE_REF:-v6.29.1}"
    git --git-dir="$tb" rev-parse --verify -q "$ref^{commit}" >/dev/null \
        || { echo "conformance: $tb is neither a testbench-core tree nor a git directory with $ref" >&2; exit 1; }
    dest="$work/testbench-core-$ref"
    if [ ! -f "$dest/src/TestCase.php" ]; then
        rm -rf "$dest" && mkdir -p "$dest"
        git --git-dir="$tb" archive "$ref" | tar -x -C "$dest"
    fi
    tb="$dest"
fi

# The application skeleton the tests boot: testbench's, with config/{app,database}.php
# wrapped to add the zeno connection and, inside a worker, Zeno's service provider.
skeleton="$work/skeleton"
rm -rf "$skeleton"
cp -r "$tb/laravel" "$skeleton"
mkdir -p "$skeleton/config-testbench"
mv "$skeleton/config/app.php" "$skeleton/config/database.php" "$skeleton/config-testbench/"
cp "$here/app/skeleton-config/"*.php "$skeleton/config/"

# The outer app `zeno artisan` boots (copied: Laravel writes bootstrap/cache and storage).
app="$work/app"
rm -rf "$app"
cp -r "$here/app" "$app"
mkdir -p "$app/bootstrap/cache" "$app/storage/framework/"{cache,views,sessions} "$app/storage/logs"

# --- zeno ------------------------------------------------------------------------------
zeno_src="${ZENO:-$root/target/debug/zeno}"
[ -x "$zeno_src" ] || { echo "conformance: no zeno binary at $zeno_src (set ZENO)" >&2; exit 1; }
zeno="$work/zeno-bin"
cp "$zeno_src" "$zeno.tmp" && mv "$zeno.tmp" "$zeno"

# --- databases -------------------------------------------------------------------------
db=zeno_conformance
ensure_database() {
    case "$1" in
    pgsql)
        if ! su postgres -c "psql -tAc \"select 1 from pg_database where datname = '$db'\"" | grep -q 1; then
            su postgres -c "psql -qc 'create database $db owner zeno'"
        fi ;;
    mariadb)
        $sudo mariadb -e "create database if not exists $db"
        local host
        for host in $($sudo mariadb -N -e "select host from mysql.user where user = 'zeno'"); do
            $sudo mariadb -e "grant all on $db.* to 'zeno'@'$host'"
        done ;;
    esac
}

# Writes a run's spec; $1 = backend dir, $2 = run name, $3 = DB_CONNECTION, rest = NAME=VALUE env.
write_spec() {
    local dir="$1" name="$2" connection="$3"
    shift 3
    local args=()
    [ -z "${CONFORMANCE_FILTER:-}" ] || args+=(--filter "$CONFORMANCE_FILTER")
    args+=("$LARAVEL_TESTS/tests/Integration/Database")
    SPEC_DIR="$dir" SPEC_NAME="$name" SPEC_TESTS="$LARAVEL_TESTS" SPEC_TB="$tb" SPEC_BASE="$skeleton" \
    SPEC_XML="$here/app/phpunit.xml" SPEC_CONNECTION="$connection" \
    php -r '
        $env = ["DB_CONNECTION" => getenv("SPEC_CONNECTION")];
        foreach (array_slice($argv, 1) as $a) {
            if ($a === "--") { break; }
            [$k, $v] = explode("=", $a, 2);
            $env[$k] = $v;
        }
        $args = array_slice($argv, array_search("--", $argv, true) + 1);
        $dir = getenv("SPEC_DIR");
        $name = getenv("SPEC_NAME");
        echo json_encode([
            "laravel_tests" => getenv("SPEC_TESTS"), "testbench" => getenv("SPEC_TB"),
            "base_path" => getenv("SPEC_BASE"), "phpunit_xml" => getenv("SPEC_XML"), "env" => $env,
            "results" => "$dir/$name.jsonl", "progress" => "$dir/$name.progress.txt",
            "junit" => "$dir/$name.junit.xml", "args" => $args,
        ], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES), "\n";
    ' -- "$@" -- "${args[@]}" >"$dir/$name.json"
}

fresh_sqlite() { rm -f "$1" "$1-wal" "$1-shm" "$1-journal"; touch "$1"; }

summary=()
for backend in "${backends[@]}"; do
    dir="$work/$backend${CONFORMANCE_TAG:+-$CONFORMANCE_TAG}"
    mkdir -p "$dir"
    ensure_database "$backend"
    case "$backend" in
    sqlite)
        file="$dir/db.sqlite"
        native_connection=sqlite
        env=(DB_DATABASE="$file" DB_FOREIGN_KEYS=true)
        url="sqlite://$file" ;;
    pgsql)
        native_connection=pgsql
        env=(DB_HOST=127.0.0.1 DB_PORT=5432 DB_DATABASE=$db DB_USERNAME=zeno DB_PASSWORD=zeno)
        url="postgres://zeno:zeno@127.0.0.1:5432/$db" ;;
    mariadb)
        native_connection=mysql
        env=(DB_HOST=127.0.0.1 DB_PORT=3306 DB_DATABASE=$db DB_USERNAME=zeno DB_PASSWORD=zeno)
        url="mysql://zeno:zeno@127.0.0.1:3306/$db" ;;
    esac

    write_spec "$dir" native "$native_connection" "${env[@]}"
    zeno_env=("${env[@]}")
    [ -z "${CONFORMANCE_ZENO_CONFIG:-}" ] || zeno_env+=(CONFORMANCE_ZENO_CONFIG="$CONFORMANCE_ZENO_CONFIG")
    [ "${CONFORMANCE_DRIVER_AS_BACKEND:-0}" != 1 ] || zeno_env+=(CONFORMANCE_ZENO_DRIVER_AS_BACKEND="$native_connection")
    write_spec "$dir" zeno zeno "${zeno_env[@]}"
    write_spec "$dir" worker-native "$native_connection" "${env[@]}"

    echo "conformance: $backend natively (php-cli, pdo) …" >&2
    [ "$backend" != sqlite ] || fresh_sqlite "$file"
    php "$app/native.php" "$dir/native.json" >"$dir/native.out" 2>&1 || true
    tail -n 1 "$dir/native.out" >&2

    echo "conformance: $backend under zeno artisan (zeno_proxy) …" >&2
    [ "$backend" != sqlite ] || fresh_sqlite "$file"
    ZENO_DB_DEFAULT="$url" RUST_LOG="${RUST_LOG:-warn}" \
        "$zeno" artisan "$app" -- conformance:phpunit "$dir/zeno.json" >"$dir/zeno.out" 2>"$dir/zeno.log" || true
    tail -n 1 "$dir/zeno.out" >&2

    if [ "${CONFORMANCE_CONTROL:-0}" = 1 ]; then
        echo "conformance: $backend under zeno artisan with the native driver (control) …" >&2
        [ "$backend" != sqlite ] || fresh_sqlite "$file"
        ZENO_DB_DEFAULT="$url" RUST_LOG="${RUST_LOG:-warn}" \
            "$zeno" artisan "$app" -- conformance:phpunit "$dir/worker-native.json" >"$dir/worker-native.out" 2>"$dir/worker-native.log" || true
        tail -n 1 "$dir/worker-native.out" >&2
        php "$here/compare.php" "$backend" "$dir/native.jsonl" "$dir/worker-native.jsonl" "$dir/worker-native-failures.tsv" \
            "the native driver in a Zeno worker (control)" >&2
    fi

    summary+=("$(php "$here/compare.php" "$backend" "$dir/native.jsonl" "$dir/zeno.jsonl" "$dir/failures.tsv")")
    echo "conformance: failures in $dir/failures.tsv" >&2
done

printf '%s\n' "${summary[@]}"
