// The ports of the accelerator core (docs/formats/accelerator.md): one list for the two cores and for
// zq_accel, the wrapper that selects between them. The includer defines ZQ_RDATA_T first: reg in a
// core (a combinational process drives reg_rdata), wire in the wrapper.
  input  wire        clk,
  input  wire        rst,
  // register file (word offsets of docs/formats/accelerator.md)
  input  wire        reg_we,
  input  wire [4:0]  reg_addr,
  input  wire [31:0] reg_wdata,
  output `ZQ_RDATA_T [31:0] reg_rdata,
  // external memory: 32-bit words, requests accepted when ready, read data returned in order
  output wire        mem_valid,
  output wire        mem_we,
  output wire [29:0] mem_addr,
  output wire [31:0] mem_wdata,
  output wire [3:0]  mem_wstrb,
  input  wire        mem_ready,
  input  wire        mem_rvalid,
  input  wire [31:0] mem_rdata,
  input  wire [31:0] mem_bytes,    // size of the external memory (error 2 past it)
  output wire        busy
