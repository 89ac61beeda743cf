#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries (initdb, postgres) are installed.
# storefront runs its own private server from them; nothing is started here.
# On Debian/Ubuntu they are installed with apt-get when absent, without the
# distribution's default cluster (storefront does not use it).
set -euo pipefail

have_server() {
  command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1 && return 0
  if command -v pg_config >/dev/null 2>&1; then
    local bindir
    bindir=$(pg_config --bindir 2>/dev/null || true)
    [ -n "$bindir" ] && [ -x "$bindir/postgres" ] && [ -x "$bindir/initdb" ] && return 0
  fi
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && return 0
  done
  return 1
}

if have_server; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL server binaries not found and apt-get is not available: install PostgreSQL (initdb and postgres) with your package manager" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "PostgreSQL server binaries not found: run 'apt-get install postgresql' as root" >&2
    exit 1
  fi
fi

echo "Installing PostgreSQL server binaries with apt-get..." >&2
# Do not let the package create and start its own cluster.
$SUDO mkdir -p /etc/postgresql-common
if ! grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
  echo "create_main_cluster = false" | $SUDO tee -a /etc/postgresql-common/createcluster.conf >/dev/null
fi
# env: sudo does not pass the caller's environment on.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
have_server || { echo "PostgreSQL was installed but its server binaries were not found" >&2; exit 1; }
