// The accelerator's build parameters, all in one place.
// Select a configuration with a define: ZQ_CFG_LARGE (a mid-size FPGA); the default fits an iCE40 UP5K.
// The two configurations are two cores behind the same interface (docs/decisions/accelerator-rtl.md):
// the large one fetches row segments into many lanes (zq_wide.v), the UP5K one reads one byte per
// lane and cycle from single-port SPRAM buffers (zq_small.v).
`ifndef ZQ_CONFIG_VH
`define ZQ_CONFIG_VH

`ifdef ZQ_CFG_LARGE
  `define ZQ_LANES     32     // output pixels computed in parallel (one multiplier each)
  `define ZQ_LB_WORDS  1024   // line buffer depth, in LANES-byte words
  `define ZQ_WB_WORDS  1024   // weight buffer depth, in LANES-byte words (LANES*WB_WORDS < 65536)
  `define ZQ_PB_CH     512    // output channels whose parameters one chunk holds
  `define ZQ_AW        32     // external memory address bits
`else
  `define ZQ_SMALL            // the UP5K core (zq_small.v)
  `define ZQ_LANES     2      // output pixels computed in parallel; each lane has its line-buffer copy
  `define ZQ_LB_BYTES  32768  // line buffer bytes (one 256 Kbit SPRAM per lane): k*Cg*W must fit
  `define ZQ_WB_BYTES  32768  // weight buffer bytes (one SPRAM): Cg*k*k must fit
  `define ZQ_PB_CH     256    // output channels whose parameters one chunk holds (block RAM)
  `define ZQ_AW        24     // 16 MiB: the PSRAM of an UP5K board
`endif

`define ZQ_KMAX      5        // largest kernel size (Yolo-Fastest has 5x5 depthwise layers)
`define ZQ_VERSION   1        // interface version (docs/formats/accelerator.md)

`endif
