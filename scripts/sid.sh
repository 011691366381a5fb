#!/usr/bin/env bash
# Builds once, and reuses, a Debian sid chroot with PHP 8.4 and Laravel 13 from Debian's
# packages, so the tests run the Laravel suites on the newest Laravel beside the system's
# Laravel 8.83 / PHP 8.2. Prints nothing on success but the path of a php-cgi wrapper that
# `zeno serve --php` / `workers.php` accept, and the php-cli wrapper beside it.
#
#   scripts/sid.sh            build (first time, about a minute) and mount; print the wrapper
#   scripts/sid.sh php        print the php-cli wrapper instead
#   scripts/sid.sh umount     undo the bind mounts
#
# The chroot lives in $ZENO_SID_ROOT (default ~/.cache/zeno/sid) so every checkout on the
# machine shares it. The project, /tmp and the PostgreSQL/MariaDB sockets are bind-mounted
# at the same paths, so paths the host hands a worker mean the same thing inside.
set -euo pipefail

root="${ZENO_SID_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/zeno/sid}"
project="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root.bin"
packages=php8.4-cli,php8.4-cgi,php8.4-fpm,php8.4-pgsql,php8.4-mysql,php8.4-sqlite3,php-laravel-framework,php-laravel-serializable-closure

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "sid: need root or sudo to build the chroot" >&2; exit 1; }
    sudo="sudo"
fi

mounts=("$project" /tmp /run/postgresql /run/mysqld /dev /proc)

umount_all() {
    for m in "${mounts[@]}"; do
        if mountpoint -q "$root$m" 2>/dev/null; then $sudo umount -l "$root$m"; fi
    done
}

# One build at a time: test binaries running in parallel may all ask for the chroot.
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9

if [ "${1:-}" = umount ]; then
    umount_all
    exit 0
fi

if [ ! -e "$root/.zeno-ready" ]; then
    if ! command -v debootstrap >/dev/null; then
        echo "sid: installing debootstrap from Debian's packages" >&2
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq debootstrap >/dev/null
    fi
    echo "sid: building a Debian sid chroot with PHP 8.4 and Laravel 13 in $root (about a minute)" >&2
    umount_all
    $sudo rm -rf "$root"
    mkdir -p "$(dirname "$root")"
    mirror="${ZENO_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    $sudo debootstrap --variant=minbase --include="$packages" sid "$root" "$mirror" >"$root.log" 2>&1 \
        || { echo "sid: debootstrap failed; its log is $root.log" >&2; tail -20 "$root.log" >&2; exit 1; }
    # Debian's 13.x package looks for the framework's default config (merged into an app's
    # partial config/) at /usr/share/config; it ships it at /usr/share/php/Illuminate/config.
    if [ ! -e "$root/usr/share/config" ]; then
        $sudo ln -s php/Illuminate/config "$root/usr/share/config"
    fi
    $sudo touch "$root/.zeno-ready"
fi

for m in "${mounts[@]}"; do
    [ -e "$m" ] || continue
    # A checkout under /tmp is already inside the chroot through the /tmp mount; mounting it
    # again would stack a mount on the checkout itself.
    case "$m" in /tmp/*) continue ;; esac
    $sudo mkdir -p "$root$m"
    if ! mountpoint -q "$root$m"; then $sudo mount --bind "$m" "$root$m"; fi
done

mkdir -p "$bin"
for tool in php-cgi php; do
    target=/usr/bin/php-cgi8.4
    [ "$tool" = php ] && target=/usr/bin/php8.4
    {
        echo '#!/bin/sh'
        echo "# $tool from the Debian sid chroot in $root (PHP 8.4, Laravel 13); made by scripts/sid.sh."
        echo "# chroot starts in /: go back to the caller's directory (mounted at the same path)."
        echo "exec /usr/sbin/chroot '$root' /bin/sh -c 'cd \"\$0\" && exec \"\$@\"' \"\$(pwd -P)\" $target \"\$@\""
    } >"$bin/$tool.tmp"
    chmod 755 "$bin/$tool.tmp"
    mv "$bin/$tool.tmp" "$bin/$tool"
done

if [ "${1:-}" = php ]; then echo "$bin/php"; else echo "$bin/php-cgi"; fi
