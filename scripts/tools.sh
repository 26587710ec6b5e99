#!/bin/sh
# The real servers the tests drive, installed from Debian's packages where the machine
# lacks them, so that `make test` works on a fresh machine: nginx and Caddy (the fronts
# of deploy/, for text, wait and SSE through a proxy), Chromium with its driver (the
# web page's browser tests) and PostgreSQL 15 (the replicas' store). Their services are
# not started (policy-rc.d): the tests start their own, on loopback or a socket, and
# stop them.
set -eu
need=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx-light"
command -v caddy >/dev/null 2>&1 || need="$need caddy"
[ -x /usr/bin/chromium ] || need="$need chromium"
[ -x /usr/bin/chromedriver ] || need="$need chromium-driver"
# PostgreSQL 15's server binaries: tests start a throwaway cluster of their own.
[ -x /usr/lib/postgresql/15/bin/postgres ] || need="$need postgresql-15"
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "tools: missing:$need; install them (root) or run as root" >&2
    exit 1
fi
policy=/usr/sbin/policy-rc.d
made=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made=1
fi
trap '[ -n "$made" ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086 # word splitting of the package list is meant
apt-get install -y -q --no-install-recommends $need >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $need >/dev/null; }
echo "tools: installed$need" >&2
