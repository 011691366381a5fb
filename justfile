# Zeno's tasks. `./dev <recipe>` installs what is missing first; `just <recipe>` assumes it is there.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Serve examples/hello on http://127.0.0.1:8080
demo:
    cargo build --release -p zeno-cli
    @echo "Serving examples/hello on http://127.0.0.1:8080 — try: curl 'http://127.0.0.1:8080/?name=you'"
    ./target/release/zeno serve --worker examples/hello/index.php --listen 127.0.0.1:8080 --log-format text

# Serve examples/laravel on http://127.0.0.1:8080, migrated and seeded; SQLite unless DB_URL is set (postgres://… or mysql://…)
laravel:
    cargo build --release -p zeno-cli
    ./target/release/zeno artisan examples/laravel --db "default=${DB_URL:-sqlite://examples/laravel/database/demo.sqlite}" -- migrate --force --seed
    @echo "Serving examples/laravel on http://127.0.0.1:8080 — try /posts, /scope, /db"
    ./target/release/zeno serve --laravel examples/laravel --db "default=${DB_URL:-sqlite://examples/laravel/database/demo.sqlite}" --listen 127.0.0.1:8080 --log-format text

# Run every test: Rust unit and end-to-end tests (real PHP, Laravel 8 and 13, PostgreSQL, MariaDB, SQLite), the examples, PHPUnit
test:
    scripts/services.sh
    scripts/tls-services.sh >/dev/null
    scripts/sid.sh >/dev/null
    cargo build --workspace --bins
    cargo test --workspace --no-fail-fast
    cargo run -q -p zeno-example-embed
    cd php-client && phpunit
    just micro-bench --quick

# Micro-benchmarks (criterion) of the hot path: codec, HTTP mapping, placeholder rewriting; `--quick` for a fast pass
micro-bench *args:
    cargo bench -q -p zeno-protocol -p zeno-http -p zeno-db --bench codec --bench mapping --bench placeholders -- {{args}} 2>&1 | grep -E '^[a-z].*|time:|thrpt:' | grep -v '^Benchmarking'


# Formatting, clippy and docs, warnings as errors; every crate packageable
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
    for f in $(find php-client examples tests/fixtures -name '*.php' ! -name 'syntax-error.php'); do php -l "$f" >/dev/null; done
    # The library crates package on their own (zeno-host carries the PHP runtime inside). Not
    # the binaries: cargo's verification build would replace target/debug/zeno and the examples.
    cargo package --allow-dirty --quiet -p zeno-config -p zeno-protocol -p zeno-worker -p zeno-pool -p zeno-db -p zeno-host -p zeno-http

# Flame graph of the host's CPU on hello-world (target/profile/hello.svg), sampled with Linux perf
profile:
    scripts/setup.sh wrk linux-perf
    command -v inferno-flamegraph >/dev/null || cargo install inferno --locked --quiet
    cargo build --release -p zeno-cli
    scripts/profile.sh

# Load test examples/hello and examples/laravel under zeno and under nginx + PHP-FPM, in one run
bench:
    scripts/setup.sh wrk nginx php-fpm
    cargo build --release -p zeno-cli
    scripts/bench.sh
    scripts/bench-laravel.sh
    BENCH_LARAVEL=13 scripts/bench-laravel.sh
    scripts/bench-concurrency.sh
    scripts/bench-stream.sh
    just micro-bench
