#!/usr/bin/env bash
# Install the system services the tests start themselves: the PostgreSQL server.
# Also the Debian package darknet, whose photos the object-detector tests use.
# Idempotent: does nothing when /usr/lib/postgresql/*/bin/initdb is already there.
# (Python dependencies, including the S3-compatible test server, come from `uv sync`.)
set -euo pipefail

have_postgres() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

# The real photographs the object-detector tests use: Debian's darknet package data.
if [ -f /usr/share/darknet/data/dog.jpg ]; then
    echo "install_services: darknet photos already installed"
elif command -v apt-get >/dev/null 2>&1; then
    PHOTO_SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
        PHOTO_SUDO="sudo"
    fi
    echo "install_services: installing the Debian package darknet (test photos)"
    if ! $PHOTO_SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq darknet; then
        $PHOTO_SUDO apt-get update -qq || true
        if ! $PHOTO_SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq darknet; then
            echo "install_services: apt-get install darknet failed" >&2
            exit 1
        fi
    fi
else
    echo "install_services: /usr/share/darknet/data missing and apt-get not found;" \
        "install the Debian package darknet by hand" >&2
    exit 1
fi

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
