#!/usr/bin/env bash
# Makes sure the system packages the tests need are present:
#   - PostgreSQL server binaries >= 14 (initdb, postgres, pg_ctl), on PATH or
#     under /usr/lib/postgresql/*/bin — testenv starts throwaway clusters;
#   - php-cli — tests parse our form bodies with PHP itself;
#   - MariaDB server (mariadbd, mariadb-install-db; 10.5 or newer) and its
#     client — testenv starts throwaway MariaDB servers for the MySQL source.
#   - buildah and the CA bundle — a test builds the container image
#     (make image) and runs deskhook in it;
#   - systemd-analyze — a test verifies the systemd unit;
#   - chromium — the console's browser tests drive it (chromedp).
# Installs what is missing with apt-get when running as root (or with
# password-less sudo); otherwise prints the exact command and fails.
set -euo pipefail

need=()

pg_ok() {
  local dir v
  for dir in $(dirname "$(command -v postgres 2>/dev/null || echo /nonexistent/x)") /usr/lib/postgresql/*/bin; do
    [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] || continue
    v=$("$dir/postgres" --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')
    [ "${v:-0}" -ge 14 ] && return 0
  done
  return 1
}

# mariadbd lives in sbin, which is not on every user's PATH.
have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local dir
  for dir in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
    [ -x "$dir/$1" ] && return 0
  done
  return 1
}
mariadb_ok() { have mariadbd && have mariadb-install-db; }

pg_ok || need+=(postgresql)
command -v php >/dev/null 2>&1 || need+=(php-cli)
mariadb_ok || need+=(mariadb-server)
have mariadb || need+=(mariadb-client)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
chromium_ok() { [ -n "${DESKHOOK_TEST_CHROMIUM:-}" ] || have chromium || have chromium-browser; }
chromium_ok || need+=(chromium)

[ ${#need[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${need[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${need[*]}. Install PostgreSQL server (>= 14), php-cli, MariaDB server (>= 10.5) with its client, buildah, ca-certificates, systemd and chromium with your package manager." >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "missing: ${need[*]}. Run: sudo $cmd" >&2
    exit 1
  fi
fi
echo "installing ${need[*]} ..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! $sudo $cmd >/tmp/deskhook-apt.log 2>&1; then
  $sudo apt-get update >>/tmp/deskhook-apt.log 2>&1 || true
  if ! $sudo $cmd >>/tmp/deskhook-apt.log 2>&1; then
    tail -20 /tmp/deskhook-apt.log >&2
    echo "could not install ${need[*]}; run: sudo apt-get update && sudo $cmd" >&2
    exit 1
  fi
fi
pg_ok || { echo "PostgreSQL >= 14 server binaries still not found after install" >&2; exit 1; }
command -v php >/dev/null 2>&1 || { echo "php still not found after install" >&2; exit 1; }
mariadb_ok || { echo "mariadbd and mariadb-install-db still not found after install" >&2; exit 1; }
for c in buildah systemd-analyze; do
  command -v $c >/dev/null 2>&1 || { echo "$c still not found after install" >&2; exit 1; }
done
chromium_ok || { echo "chromium still not found after install" >&2; exit 1; }
