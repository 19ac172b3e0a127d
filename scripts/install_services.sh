#!/usr/bin/env bash
# Install the system services the tests start themselves: the PostgreSQL server.
# Idempotent: does nothing when /usr/lib/postgresql/*/bin/initdb is already there.
# (Python dependencies, including the S3-compatible test server, come from `uv sync`.)
set -euo pipefail

have_postgres() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

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
