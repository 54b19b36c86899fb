#!/bin/sh
# Installs the zeroq daemon on a Debian-based arm64 or x86-64 board:
#   - ffmpeg (and mosquitto unless --no-mosquitto) from apt,
#   - Node.js 20 from nodejs.org (checksum verified) when the system's is missing or older,
#   - the application under /opt/zeroq (npm ci, build, dev dependencies pruned),
#   - a system user `zeroq` (groups video, dialout), state in /var/lib/zeroq,
#   - /etc/zeroq/zeroq.yaml from the example (an existing one is kept),
#   - the systemd unit, enabled (and started with --start).
# Run from a checkout: sudo deploy/install.sh [--start] [--no-mosquitto] [--data DIR] [--dry-run]
#   --data DIR  copy the Yolo-Fastest model from DIR/models/yolo-fastest (a ZEROQ_DATA folder)
set -eu

PREFIX=/opt/zeroq
CONF_DIR=/etc/zeroq
STATE_DIR=/var/lib/zeroq
UNIT=/etc/systemd/system/zeroq.service
NODE_MAJOR=20
SRC=$(cd "$(dirname "$0")/.." && pwd)

start=0
mosquitto=1
dry=0
data=""
while [ $# -gt 0 ]; do
  case "$1" in
    --start) start=1 ;;
    --no-mosquitto) mosquitto=0 ;;
    --dry-run) dry=1 ;;
    --data) data="$2"; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "install.sh: $*" >&2; }
run() {
  if [ "$dry" = 1 ]; then echo "+ $*"; else "$@"; fi
}

if [ "$dry" = 0 ] && [ "$(id -u)" != 0 ]; then say "run as root (sudo)"; exit 1; fi
command -v apt-get >/dev/null 2>&1 || { say "needs a Debian-based system (apt-get)"; exit 1; }
case "$(uname -m)" in
  aarch64|arm64) node_arch=arm64 ;;
  x86_64|amd64) node_arch=x64 ;;
  *) say "unsupported architecture $(uname -m) (arm64 or x86-64)"; exit 1 ;;
esac
[ -f "$SRC/package.json" ] && [ -f "$SRC/systemd/zeroq.service" ] || { say "run from a zeroq checkout ($SRC)"; exit 1; }

# --- system packages
pkgs="ffmpeg ca-certificates curl xz-utils"
[ "$mosquitto" = 1 ] && pkgs="$pkgs mosquitto"
say "installing $pkgs"
run env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs

# --- Node.js >= 20
node_ok=0
if command -v node >/dev/null 2>&1; then
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  [ "$major" -ge "$NODE_MAJOR" ] && node_ok=1
fi
if [ -x "$PREFIX/node/bin/node" ]; then
  major=$("$PREFIX/node/bin/node" -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge "$NODE_MAJOR" ] && node_ok=1
fi
if [ "$node_ok" = 0 ]; then
  base="https://nodejs.org/dist/latest-v$NODE_MAJOR.x"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  say "fetching Node.js $NODE_MAJOR for linux-$node_arch from nodejs.org"
  run curl -fsSL -o "$tmp/SHASUMS256.txt" "$base/SHASUMS256.txt"
  if [ "$dry" = 0 ]; then
    file=$(grep -o "node-v[0-9.]*-linux-$node_arch.tar.xz" "$tmp/SHASUMS256.txt" | head -n1)
    [ -n "$file" ] || { say "no linux-$node_arch build listed in $base/SHASUMS256.txt"; exit 1; }
    curl -fsSL -o "$tmp/$file" "$base/$file"
    (cd "$tmp" && grep " $file\$" SHASUMS256.txt | sha256sum -c -) >&2
    rm -rf "$PREFIX/node.new"
    mkdir -p "$PREFIX/node.new"
    tar -xJf "$tmp/$file" -C "$PREFIX/node.new" --strip-components=1
    rm -rf "$PREFIX/node"
    mv "$PREFIX/node.new" "$PREFIX/node"
  fi
fi
export PATH="$PREFIX/node/bin:$PATH"

# --- user and folders
if ! id zeroq >/dev/null 2>&1; then
  say "creating system user zeroq"
  run useradd --system --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin --user-group zeroq
fi
for g in video dialout; do
  getent group "$g" >/dev/null 2>&1 && run usermod -a -G "$g" zeroq
done
run install -d -o root -g root -m 0755 "$PREFIX"
run install -d -o zeroq -g zeroq -m 0750 "$STATE_DIR"
run install -d -o root -g zeroq -m 0750 "$CONF_DIR"

# --- application
say "installing the application in $PREFIX"
run tar -C "$SRC" --exclude=./.git --exclude=./node_modules --exclude=./dist --exclude=./node -cf "$PREFIX/.src.tar" .
run tar -C "$PREFIX" -xf "$PREFIX/.src.tar"
run rm -f "$PREFIX/.src.tar"
if [ "$dry" = 1 ]; then
  echo "+ (cd $PREFIX && npm ci && npm run build && npm prune --omit=dev)"
else
  (cd "$PREFIX" && npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev --no-audit --no-fund) >&2
fi
run chmod 0755 "$PREFIX/bin/zeroq"

if [ -n "$data" ]; then
  say "copying the Yolo-Fastest model from $data"
  run install -d -o zeroq -g zeroq "$STATE_DIR/data/models"
  run cp -r "$data/models/yolo-fastest" "$STATE_DIR/data/models/"
  run chown -R zeroq:zeroq "$STATE_DIR/data"
fi

# --- configuration (never overwritten)
if [ ! -f "$CONF_DIR/zeroq.yaml" ]; then
  say "writing $CONF_DIR/zeroq.yaml from the example; edit it (source.url, mqtt.url)"
  run install -o root -g zeroq -m 0640 "$SRC/deploy/zeroq.example.yaml" "$CONF_DIR/zeroq.yaml"
else
  say "keeping the existing $CONF_DIR/zeroq.yaml"
fi
if [ "$mosquitto" = 1 ] && [ -d /etc/mosquitto/conf.d ] && [ ! -f /etc/mosquitto/conf.d/zeroq.conf ]; then
  run install -m 0644 "$SRC/deploy/mosquitto.conf" /etc/mosquitto/conf.d/zeroq.conf
  run systemctl restart mosquitto
fi

# --- systemd
run install -m 0644 "$SRC/systemd/zeroq.service" "$UNIT"
run systemctl daemon-reload
run systemctl enable zeroq.service
if [ "$start" = 1 ]; then
  run systemctl restart zeroq.service
  say "started; follow it with: journalctl -u zeroq -f"
else
  say "installed; start it with: systemctl start zeroq (logs: journalctl -u zeroq -f)"
fi
