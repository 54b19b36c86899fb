#!/bin/sh
# Installs the real programs the tests run against (a broker, ffmpeg, a pty bridge, a C compiler
# for the bridge firmware, an arm64 cross compiler and qemu) when missing.
# Needs root and Debian's apt; otherwise says what is missing and fails.
set -e
# The tests run real models on real images: without the data folder they cannot say anything.
data="${ZEROQ_DATA:-$(dirname "$0")/../../shared/data}"
for f in models/yolo-fastest/yolo-fastest-1.1.weights coco-val/dev.txt coco-val/instances.json reference/README.md; do
  if [ ! -f "$data/$f" ]; then
    echo "test/ensure-deps.sh: $data/$f is missing; set ZEROQ_DATA to the shared data folder (models, coco-val, reference)" >&2
    exit 1
  fi
done
need=""
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need="$need mosquitto"
command -v ffmpeg >/dev/null 2>&1 || need="$need ffmpeg"
command -v socat >/dev/null 2>&1 || need="$need socat"
# The live view's test drives Debian's Chromium (puppeteer-core).
[ -x /usr/bin/chromium ] || need="$need chromium"
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
# The bridge firmware's host build and unit tests (make -C firmware-bridge host test).
command -v cc >/dev/null 2>&1 || need="$need gcc"
command -v make >/dev/null 2>&1 || need="$need make"
[ -f /usr/include/stdio.h ] || need="$need libc6-dev"
# the accelerator's RTL is simulated with Verilator (firmware-bridge/rtl)
command -v verilator >/dev/null 2>&1 || need="$need verilator"
command -v g++ >/dev/null 2>&1 || need="$need g++"
command -v make >/dev/null 2>&1 || need="$need make"
# The arm64 kernels (Raspberry Pi, Jetson) are built with a cross compiler and checked under qemu.
if [ "$(uname -m)" = x86_64 ]; then
  command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || need="$need g++-aarch64-linux-gnu"
  command -v qemu-aarch64-static >/dev/null 2>&1 || need="$need qemu-user-static"
fi
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test/ensure-deps.sh: installing$need" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends $need >/dev/null
  exit 0
fi
echo "test/ensure-deps.sh: the tests need$need; install them (Debian: apt-get install$need) and run again" >&2
exit 1
