#!/bin/sh
# Builds the integer kernels for arm64 with a cross compiler and runs their self-test under qemu:
# the NEON kernels (with sdot, and plain ARMv8.0) against the portable ones on random networks. Then the darknet resize:
# the arm64 build must give the same bits as this machine's (resize_selftest.cc).
# Needs (Debian): apt-get install g++-aarch64-linux-gnu qemu-user-static
set -e
cd "$(dirname "$0")/../src/kernels"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CXX=${CXX:-aarch64-linux-gnu-g++}
for f in net.cc check.cc pool.cc kernels_scalar.cc kernels_neon.cc selftest.cc; do
  $CXX -O3 -std=c++17 -Wall -Wextra -Wno-unused-parameter -c "$f" -o "$out/${f%.cc}.o"
done
$CXX -O3 -std=c++17 -Wall -Wextra -Wno-unused-parameter -march=armv8.2-a+dotprod -c kernels_dotprod.cc -o "$out/kernels_dotprod.o"
$CXX -static -o "$out/selftest" "$out"/*.o -lpthread
qemu-aarch64-static -cpu max "$out/selftest"
FP="-O3 -std=c++17 -ffp-contract=off -fno-trapping-math"
${HOSTCXX:-g++} $FP resize.cc resize_selftest.cc -o "$out/resize-host"
$CXX -static $FP resize.cc resize_selftest.cc -o "$out/resize-arm64"
host=$("$out/resize-host")
arm=$(qemu-aarch64-static -cpu max "$out/resize-arm64")
if [ "$host" != "$arm" ]; then
  echo "resize: arm64 gives $arm, this machine $host" >&2
  exit 1
fi
echo "resize: arm64 and this machine agree ($host)"
