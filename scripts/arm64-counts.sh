#!/bin/sh
# Instructions per layer of the arm64 kernels, where this machine cannot time them: the network of
# a weight set runs once (one thread) under qemu, single-stepped with every executed instruction
# logged; the log is cut into layers at the harness's zq_mark calls (src/kernels/bench_main.cc).
# Deterministic counts of the guest's instructions, not a model of any core's timing.
#   scripts/arm64-counts.sh <set.zqw> [isa ...]     (default: neon-dotprod neon)
# Needs (Debian): apt-get install g++-aarch64-linux-gnu qemu-user-static
set -e
[ -n "$1" ] || { echo "usage: scripts/arm64-counts.sh <set.zqw> [isa ...]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
zqw=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
isas=${*:-neon-dotprod neon}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
(cd "$root" && npx tsx scripts/int-net-dump.ts "$zqw" "$out/net" >&2)
cd "$root/src/kernels"
CXX=${CXX:-aarch64-linux-gnu-g++}
F="-O3 -std=c++17 -fno-strict-aliasing -ffp-contract=off -fno-trapping-math"  # binding.gyp's
for f in net.cc check.cc pool.cc kernels_scalar.cc kernels_neon.cc bench_main.cc; do
  $CXX $F -c "$f" -o "$out/${f%.cc}.o"
done
$CXX $F -march=armv8.2-a+dotprod -c kernels_dotprod.cc -o "$out/kernels_dotprod.o"
$CXX -static -o "$out/bench" "$out"/*.o -lpthread
# Lines of qemu's exec log per segment between entries into zq_mark (the last word of a line is
# the function of the instruction).
cat > "$out/count.c" <<'C'
#include <stdio.h>
#include <string.h>
int main(void) {
  static char line[4096];
  long long n[4096] = {0};
  int seg = 0, inMark = 0;
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "Trace", 5)) continue;
    const char* sym = strrchr(line, ' ');
    const int mark = sym && !strcmp(sym + 1, "zq_mark\n");
    if (mark && !inMark && seg < 4095) seg++;
    inMark = mark;
    if (!mark) n[seg]++;
  }
  for (int i = 1; i <= seg; i++) printf("%lld\n", n[i]);
  return 0;
}
C
${HOSTCC:-cc} -O2 "$out/count.c" -o "$out/count"
for isa in $isas; do
  mkfifo "$out/trace"
  "$out/count" < "$out/trace" > "$out/count-$isa" &
  qemu-aarch64-static -cpu max -singlestep -d exec,nochain -D "$out/trace" "$out/bench" "$out/net" "$isa" --marks > "$out/layers-$isa"
  wait
  rm "$out/trace"
done
# Segments: 1 = the frame's load, 2.. = layers 0.., last = after the last layer.
first=$(echo $isas | cut -d' ' -f1)
printf "layer\tkind"
for isa in $isas; do printf "\t%s" "$isa"; done
printf "\n"
printf "load\t-"
for isa in $isas; do printf "\t%s" "$(sed -n 1p "$out/count-$isa")"; done
printf "\n"
n=$(wc -l < "$out/layers-$first")
i=0
while [ "$i" -lt "$n" ]; do
  kind=$(sed -n "$((i + 1))p" "$out/layers-$first" | cut -f2)
  printf "%d\t%s" "$i" "$kind"
  for isa in $isas; do printf "\t%s" "$(sed -n "$((i + 2))p" "$out/count-$isa")"; done
  printf "\n"
  i=$((i + 1))
done
printf "total\t-"
for isa in $isas; do printf "\t%s" "$(awk -v n="$n" 'NR > 1 && NR <= n + 1 { s += $1 } END { print s }' "$out/count-$isa")"; done
printf "\n"
