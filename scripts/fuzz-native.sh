#!/bin/sh
# The libFuzzer target of the native planner and its input checks (src/kernels/fuzz/plan_fuzz.cc),
# built with clang -fsanitize=fuzzer,address,undefined and run for SECONDS (default 600).
#   sh scripts/fuzz-native.sh [SECONDS]
# Needs clang and its runtime libraries (Debian: clang, libclang-rt-dev). The corpus it grows is
# kept in build/fuzz/corpus (not in the repository); a crash leaves its input in build/fuzz/.
set -eu
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-600}
CXX=${CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "fuzz-native: $CXX is missing (Debian: apt-get install clang libclang-rt-dev)" >&2; exit 1; }
OUT=build/fuzz
mkdir -p "$OUT/obj" "$OUT/corpus"
# clang without its runtime libraries compiles but cannot link a fuzzer: say what to install.
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$OUT/probe.cc"
"$CXX" -fsanitize=fuzzer,address,undefined "$OUT/probe.cc" -o "$OUT/probe" 2>"$OUT/probe.log" || {
  echo "fuzz-native: $CXX cannot link -fsanitize=fuzzer,address,undefined: $(head -1 "$OUT/probe.log") (Debian: apt-get install clang libclang-rt-dev)" >&2
  exit 1
}
FLAGS="-g -O1 -std=c++17 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -Isrc/kernels"
obj() { # obj <source> [extra flags...]
  src=$1
  shift
  "$CXX" $FLAGS -fsanitize=fuzzer-no-link "$@" -c "$src" -o "$OUT/obj/$(basename "$src" .cc).o"
}
obj src/kernels/fuzz/plan_fuzz.cc
obj src/kernels/check.cc
obj src/kernels/net.cc
obj src/kernels/pool.cc
obj src/kernels/kernels_scalar.cc
case "$(uname -m)" in
  x86_64)
    obj src/kernels/kernels_avx2.cc -mavx2 -mfma -mbmi2
    obj src/kernels/kernels_avx512.cc -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512vbmi -mavx2 -mfma -mbmi2
    ;;
  aarch64)
    obj src/kernels/kernels_dotprod.cc -march=armv8.2-a+dotprod
    ;;
esac
"$CXX" $FLAGS -fsanitize=fuzzer "$OUT"/obj/*.o -lpthread -o "$OUT/plan_fuzz"
cd "$OUT"
exec ./plan_fuzz -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 -rss_limit_mb=2048 -timeout=20 corpus
