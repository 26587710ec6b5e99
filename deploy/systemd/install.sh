#!/bin/sh
# Install runner as a systemd service: the wheel into a virtualenv under /opt, a
# commented production runner.toml, the hardened unit, a system user.
#
#   sudo sh deploy/systemd/install.sh runner-0.1.0-py3-none-any.whl
#
# ROOT (default /) installs into another root, as a package build or a test does; the
# user is made only when ROOT is /. PYTHON picks the interpreter (default python3);
# PIP_ARGS are passed to pip (a private index, --no-index, …). An existing runner.toml
# is kept; the unit and the virtualenv are replaced.
set -eu
wheel=${1:?usage: install.sh RUNNER_WHEEL}
ROOT=${ROOT:-/}
PYTHON=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
root=${ROOT%/}

venv="$root/opt/runner/venv"
rm -rf "$venv"
"$PYTHON" -m venv "$venv"
# shellcheck disable=SC2086 # PIP_ARGS are words on purpose
"$venv/bin/pip" install --quiet --disable-pip-version-check ${PIP_ARGS:-} "$wheel"

install -d -m 0755 "$root/etc/runner" "$root/etc/runner/jobs" "$root/etc/systemd/system"
if [ ! -e "$root/etc/runner/runner.toml" ]; then
    install -m 0644 "$here/runner.toml" "$root/etc/runner/runner.toml"
fi
install -m 0644 "$here/runner.service" "$root/etc/systemd/system/runner.service"

if [ "$ROOT" = / ]; then
    id runner >/dev/null 2>&1 ||
        useradd --system --home-dir /var/lib/runner --shell /usr/sbin/nologin runner
    systemctl daemon-reload 2>/dev/null || true
fi
echo "installed: $venv/bin/runner; next: systemctl enable --now runner" >&2
