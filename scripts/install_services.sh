#!/usr/bin/env bash
# Install the system services the tests start themselves: the PostgreSQL server.
# Also the Debian package darknet, whose photos the object-detector tests use, and
# Debian's chromium, the browser the web page's tests drive.
# Idempotent: does nothing when /usr/lib/postgresql/*/bin/initdb is already there.
# (Python dependencies, including the S3-compatible test server, come from `uv sync`.)
set -euo pipefail

have_postgres() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

# apt_install_missing PATH PACKAGE WHY: install the Debian package unless PATH exists
# (apt-get update first only when the plain install fails: the lists may be stale).
apt_install_missing() {
    local path="$1" package="$2" why="$3" sudo=""
    if [ -e "$path" ]; then
        echo "install_services: $package already installed"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install_services: $path missing and apt-get not found;" \
            "install the Debian package $package by hand" >&2
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    fi
    echo "install_services: installing the Debian package $package ($why)"
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package"; then
        $sudo apt-get update -qq || true
        if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package"; then
            echo "install_services: apt-get install $package failed" >&2
            exit 1
        fi
    fi
}

# The real photographs the object-detector tests use: Debian's darknet package data.
apt_install_missing /usr/share/darknet/data/dog.jpg darknet "test photos"
# The browser the web page's tests drive (Playwright, executable_path): Debian's chromium.
apt_install_missing /usr/bin/chromium chromium "browser tests"

if have_postgres; then
    echo "install_services: PostgreSQL server already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_services: PostgreSQL server missing and apt-get not found;" \
        "install the PostgreSQL server (initdb, pg_ctl) by hand" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_services: must run as root (or with sudo) to apt-get install postgresql" >&2
        exit 1
    fi
fi

echo "install_services: installing the Debian package postgresql"
if ! $SUDO apt-get update -qq; then
    echo "install_services: apt-get update failed" >&2
    exit 1
fi
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; then
    echo "install_services: apt-get install postgresql failed" >&2
    exit 1
fi
if ! have_postgres; then
    echo "install_services: postgresql installed but no /usr/lib/postgresql/*/bin/initdb" >&2
    exit 1
fi
echo "install_services: PostgreSQL server installed"
