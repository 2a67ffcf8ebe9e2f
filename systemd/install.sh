#!/usr/bin/env bash
# Installs the store edge agent on Raspberry Pi OS (Bookworm, 64-bit) or Debian 12 as a systemd service.
#
#   sudo systemd/install.sh                          # the agent
#   sudo systemd/install.sh --vision                 # with cameras (OpenCV + onnxruntime)
#   sudo systemd/install.sh --kiosk screen-entrance  # also a kiosk browser on this host's display
#
# Run it from a checkout of the repository. It is safe to run again to upgrade: the config and the
# credentials you wrote are kept.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/edge-agent
CONF=/etc/edge-agent
EXTRAS=""
KIOSK=""
while [ $# -gt 0 ]; do
    case "$1" in
        --vision) EXTRAS="[vision]" ;;
        --kiosk) KIOSK="${2:?--kiosk needs a touchpoint id}"; shift ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo)" >&2; exit 1; }

echo "== packages"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv bluez
if [ -n "$KIOSK" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends cage chromium
fi

echo "== the agent in $PREFIX/venv"
python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --upgrade pip
"$PREFIX/venv/bin/pip" install -q "$SRC$EXTRAS"
install -m 0644 "$SRC/README.md" "$PREFIX/README.md"
rm -rf "$PREFIX/firmware_configs" && cp -r "$SRC/firmware_configs" "$PREFIX/firmware_configs"  # device profiles

echo "== configuration in $CONF"
install -d -m 0755 "$CONF"
install -d -m 0700 "$CONF/credentials"
for secret in mqtt-password mqtt-client.key; do
    [ -e "$CONF/credentials/$secret" ] || install -m 0600 /dev/null "$CONF/credentials/$secret"
done
if [ ! -e "$CONF/credentials/device-key.key" ]; then
    # This host's own key: the cloud seals the roster's secrets to it. Register what it prints with the cloud.
    "$PREFIX/venv/bin/edge-agent" keys new --device --dir "$CONF/credentials" --name device-key \
        > "$CONF/device-public.json"
    echo "   new device key; register $CONF/device-public.json with the cloud for this host"
fi
if [ ! -e "$CONF/edge-agent.toml" ]; then
    # State lives under the service's StateDirectory; /etc is read-only to the agent.
    sed 's|^path = "edge-agent.db".*|path = "/var/lib/edge-agent/edge-agent.db"|' \
        "$SRC/systemd/edge-agent.toml" > "$CONF/edge-agent.toml"
    chmod 0644 "$CONF/edge-agent.toml"
    echo "   wrote $CONF/edge-agent.toml: set your store, zones, touchpoints and keys, then restart"
fi
"$PREFIX/venv/bin/edge-agent" check-config "$CONF/edge-agent.toml"

echo "== systemd units"
install -m 0644 "$SRC/systemd/edge-agent.service" /etc/systemd/system/edge-agent.service
if [ -n "$KIOSK" ]; then
    id kiosk >/dev/null 2>&1 || useradd --system --create-home --groups video,render,input kiosk
    install -m 0644 "$SRC/systemd/edge-agent-kiosk@.service" /etc/systemd/system/edge-agent-kiosk@.service
fi
systemd-analyze verify /etc/systemd/system/edge-agent.service
systemctl daemon-reload
systemctl enable --now edge-agent.service
if [ -n "$KIOSK" ]; then
    systemctl enable --now "edge-agent-kiosk@$KIOSK.service"
fi
echo "== done: journalctl -u edge-agent -f   |   curl -s -H \"Authorization: Bearer OPS_TOKEN\" http://127.0.0.1:8080/healthz"
