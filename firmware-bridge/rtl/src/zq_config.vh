// The accelerator's build parameters, all in one place.
// Select a configuration with a define: ZQ_CFG_LARGE (a mid-size FPGA); the default fits an iCE40 UP5K.
`ifndef ZQ_CONFIG_VH
`define ZQ_CONFIG_VH

`ifdef ZQ_CFG_LARGE
  `define ZQ_LANES     32     // output pixels computed in parallel (one multiplier each)
  `define ZQ_LB_WORDS  1024   // line buffer depth, in LANES-byte words
  `define ZQ_WB_WORDS  1024   // weight buffer depth, in LANES-byte words (LANES*WB_WORDS < 65536)
  `define ZQ_PB_CH     512    // output channels whose parameters one chunk holds
  `define ZQ_AW        32     // external memory address bits
`else
  `define ZQ_LANES     4      // 4 MAC DSPs + 2 for the window-sum product + 2 for leaky = the UP5K's 8
  `define ZQ_LB_WORDS  1024
  `define ZQ_WB_WORDS  2048
  `define ZQ_PB_CH     256
  `define ZQ_AW        24     // 16 MiB: the PSRAM of an UP5K board
`endif

`define ZQ_KMAX      5        // largest kernel size (Yolo-Fastest has 5x5 depthwise layers)
`define ZQ_VERSION   1        // interface version (docs/formats/accelerator.md)

`endif
