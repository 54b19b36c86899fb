#!/bin/sh
# The whole test suite once with the native addons (integer kernels, training core) built with
# AddressSanitizer and UndefinedBehaviorSanitizer (gcc), in a copy of this checkout so that the
# normal build is left alone:
#   sh scripts/test-sanitized.sh [tap arguments, e.g. test/int-layers.test.ts]
# The ASan runtime is preloaded into every process of the run (node needs it first to load an
# instrumented addon); leak detection is off (node itself keeps memory until exit). Any sanitizer
# report aborts the process that made it, which fails its test. Exit code: tap's.
set -eu
cd "$(dirname "$0")/.."
REPO=$(pwd)
ASAN=$(gcc -print-file-name=libasan.so)
[ -f "$ASAN" ] || { echo "test-sanitized: gcc's libasan is missing (Debian: apt-get install gcc)" >&2; exit 1; }
COPY=$(mktemp -d /tmp/zeroq-sanitized-XXXXXX)
trap 'rm -rf "$COPY"' EXIT
# The working tree as it is (tracked and new files), without build output.
git ls-files -co --exclude-standard -z | xargs -0 -I{} cp --parents {} "$COPY/"
ln -s "$(readlink -f "$REPO/node_modules")" "$COPY/node_modules"
cd "$COPY"
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g"
CFLAGS="$SAN" CXXFLAGS="$SAN" LDFLAGS="-fsanitize=address,undefined" npx node-gyp rebuild >/dev/null
npx tsc -p tsconfig.json
echo "test-sanitized: addons built with $SAN in $COPY; running the tests"
LD_PRELOAD="$ASAN" \
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  npx tap "$@"
