#!/bin/sh
# make synth: the UP5K configuration through yosys + nextpnr-ice40 (placed, routed, timed), and the
# large configuration through yosys for an ECP5 (LUT4 + 18x18 multipliers, the class of a mid-size
# FPGA with ~150 DSPs) for its resource counts.
# Summaries in build/synth/up5k.txt and large.txt. FREQ (MHz, default 24) is the clock nextpnr aims
# for; its Fmax is reported whether or not it reaches it. PARTS="up5k" or "large" runs one of them.
set -e
cd "$(dirname "$0")/.."
out=build/synth
mkdir -p "$out"
for t in yosys nextpnr-ice40 icepack; do
  command -v $t >/dev/null 2>&1 || { echo "synth: $t is missing (Debian: apt-get install yosys nextpnr-ice40 fpga-icestorm)" >&2; exit 1; }
done
# the modules of each configuration's core (src/zq_config.vh)
small="src/zq_accel.v src/zq_small.v src/zq_walk.v src/zq_bload.v src/zq_bbuf.v src/zq_post2.v src/zq_owr.v src/zq_ram.v"
large="src/zq_accel.v src/zq_wide.v src/zq_loader.v src/zq_post.v src/zq_writer.v src/zq_muldiv.v src/zq_ram.v"
freq="${FREQ:-24}"
parts="${PARTS:-up5k large}"
# `define lines of one configuration of src/zq_config.vh: "large" or the default
conf() {
  awk -v want="$1" '/^`ifdef ZQ_CFG_LARGE/ { sec = "large"; next } /^`else/ { sec = "small"; next }
    /^`endif/ { sec = ""; next } sec == want && $1 == "`define" && NF >= 3 && $3 !~ /^\/\// { printf "%s=%s ", $2, $3 }' src/zq_config.vh
}
status=0

case " $parts " in *" up5k "*)
  yosys -q -l "$out/up5k_yosys.log" -p "read_verilog -Isrc $small synth/zq_up5k_top.v; synth_ice40 -top zq_up5k_top -dsp -spram -json $out/up5k.json" >/dev/null
  pnr=0
  nextpnr-ice40 --up5k --package sg48 --json "$out/up5k.json" --pcf synth/up5k.pcf --freq "$freq" \
    --timing-allow-fail --asc "$out/up5k.asc" --seed 1 >"$out/up5k_nextpnr.log" 2>&1 || pnr=$?
  {
    echo "iCE40 UP5K (SG48), configuration: $(conf small)"
    echo "tools: $(yosys -V); $(nextpnr-ice40 --version 2>&1 | head -1)"
    echo "yosys cells:"
    sed -n '/Printing statistics/,$p' "$out/up5k_yosys.log" | grep -E '^\s+SB_' | sort -u
    echo "nextpnr utilisation:"
    grep -E 'ICESTORM_(LC|RAM|DSP|SPRAM):' "$out/up5k_nextpnr.log" | tail -4 | sed 's/^Info: *//'
    if [ "$pnr" = 0 ]; then
      echo "placed and routed; nextpnr timing (target $freq MHz):"
      grep -E 'Max frequency for clock' "$out/up5k_nextpnr.log" | tail -1 | sed 's/^Info: *//; s/^Warning: *//'
    else
      echo "place and route FAILED: $(grep -E '^ERROR' "$out/up5k_nextpnr.log" | head -1)"
    fi
  } >"$out/up5k.txt"
  cat "$out/up5k.txt"
  if [ "$pnr" = 0 ]; then icepack "$out/up5k.asc" "$out/up5k.bin"; else status=$pnr; fi
;; esac

case " $parts " in *" large "*)
  yosys -q -l "$out/large_yosys.log" -p "read_verilog -DZQ_CFG_LARGE -Isrc $large; synth_ecp5 -top zq_accel; stat" >/dev/null
  {
    echo "large configuration (ECP5 mapping): $(conf large)"
    echo "tools: $(yosys -V)"
    sed -n '/Printing statistics/,$p' "$out/large_yosys.log" | grep -E '^\s+(LUT4|TRELLIS|MULT18X18D|ALU54B|DP16KD|PDPW16KD|CCU2C|L6MUX21|PFUMX|FD1|Number of cells)' | sort -u
  } >"$out/large.txt"
  cat "$out/large.txt"
;; esac
exit $status
