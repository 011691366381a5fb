#!/usr/bin/env bash
# Installs what building, running and testing Zeno needs, and nothing if it is all there:
# PHP (php-cgi runs the workers, php-cli and phpunit the PHP tests, the PDO drivers and
# Laravel 8.83 for the Laravel tests and example) from Debian's packages,
# and `just` from crates.io. Extra Debian packages can be named as arguments.
set -euo pipefail

packages=(php-cli php-cgi phpunit php-pgsql php-mysql php-sqlite3 php-redis php-laravel-framework nginx haproxy openssl "$@")
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]} from Debian's packages" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v just >/dev/null; then
    echo "setup: installing just from crates.io" >&2
    cargo install just --locked --quiet
fi
