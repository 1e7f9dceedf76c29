#!/bin/sh
# A bare-metal install (or upgrade) on Debian 12 as root: `make install` runs it with the
# wheel it built. docs/deploy.md tells the rest.
#   deploy/install.sh WHEEL
# The previous venv is kept as $PREFIX.old (to go back: stop, swap back, start). The
# config, the secrets and the state are never overwritten.
set -eu
wheel=$1
here=$(dirname "$0")
root=$(cd "$here/.." && pwd)
PREFIX=${PREFIX:-/opt/customs-monitor}
ETC=${ETC:-/etc/customs-monitor}
STATE=${STATE:-/var/lib/customs-monitor}
UNITS=${UNITS:-/etc/systemd/system}
USER_NAME=${USER_NAME:-customs-monitor}

if [ "$(id -u)" != 0 ]; then
    echo "error: run as root (sudo make install)" >&2
    exit 1
fi

# The service user: no login, no home of its own but the state directory.
if ! getent passwd "$USER_NAME" >/dev/null; then
    useradd --system --user-group --home-dir "$STATE" --no-create-home \
        --shell /usr/sbin/nologin --comment "Customs telemetry monitor" "$USER_NAME"
    echo "created the system user $USER_NAME"
fi

# The venv, made anew at its place (its scripts name their interpreter by path); the one
# before is kept as $PREFIX.old, and put back if the install fails. A running monitor goes on
# from what it loaded: restart it right after (it loads a few modules only when first used).
rm -rf "$PREFIX.old"
if [ -d "$PREFIX" ]; then
    mv "$PREFIX" "$PREFIX.old"
fi
if ! "$here/install-venv.sh" "$PREFIX" "$wheel" "$root/requirements.lock"; then
    rm -rf "$PREFIX"
    if [ -d "$PREFIX.old" ]; then
        mv "$PREFIX.old" "$PREFIX"
    fi
    echo "error: the install failed; $PREFIX is as it was" >&2
    exit 1
fi
echo "installed $("$PREFIX/bin/monitor" --version) in $PREFIX"

# Config (readable by the service) and secrets (root only): only where there are none yet.
install -d -m 0750 -o root -g "$USER_NAME" "$ETC"
if [ ! -e "$ETC/monitor.yaml" ]; then
    sed "s|^state_dir: \./var |state_dir: $STATE|" "$root/config/monitor.yaml" >"$ETC/monitor.yaml"
    chown "root:$USER_NAME" "$ETC/monitor.yaml"
    chmod 0640 "$ETC/monitor.yaml"
    echo "wrote $ETC/monitor.yaml (the shipped example: edit it)"
fi
if [ ! -e "$ETC/monitor.env" ]; then
    install -m 0600 -o root -g root "$here/monitor.env" "$ETC/monitor.env"
    echo "wrote $ETC/monitor.env (the secrets: edit it)"
fi
# The state directory (systemd's StateDirectory= makes it too): here already, so a backup
# can be restored before the first start.
install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$STATE"
# Where `monitor backup` (run as the service user) puts its copies
install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "${BACKUPS:-/var/backups/customs-monitor}"

install -m 0644 "$here/customs-monitor.service" "$UNITS/customs-monitor.service"
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
cat <<DONE
Next:
  edit $ETC/monitor.yaml and $ETC/monitor.env
  $PREFIX/bin/monitor check-config -c $ETC/monitor.yaml
  systemctl enable --now customs-monitor      (an upgrade: systemctl restart customs-monitor)
  journalctl -u customs-monitor -f
DONE
