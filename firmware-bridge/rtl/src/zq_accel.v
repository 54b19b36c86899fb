// The conv accelerator behind docs/formats/accelerator.md: the core the configuration selects
// (src/zq_config.vh). zq_small fits an iCE40 UP5K; zq_wide is for parts with many multipliers.
`include "zq_config.vh"
module zq_accel (
  input  wire        clk,
  input  wire        rst,
  input  wire        reg_we,
  input  wire [4:0]  reg_addr,
  input  wire [31:0] reg_wdata,
  output wire [31:0] reg_rdata,
  output wire        mem_valid,
  output wire        mem_we,
  output wire [29:0] mem_addr,
  output wire [31:0] mem_wdata,
  output wire [3:0]  mem_wstrb,
  input  wire        mem_ready,
  input  wire        mem_rvalid,
  input  wire [31:0] mem_rdata,
  input  wire [31:0] mem_bytes,
  output wire        busy
);
`ifdef ZQ_SMALL
  zq_small u_core (
`else
  zq_wide u_core (
`endif
    .clk(clk), .rst(rst), .reg_we(reg_we), .reg_addr(reg_addr), .reg_wdata(reg_wdata),
    .reg_rdata(reg_rdata), .mem_valid(mem_valid), .mem_we(mem_we), .mem_addr(mem_addr),
    .mem_wdata(mem_wdata), .mem_wstrb(mem_wstrb), .mem_ready(mem_ready), .mem_rvalid(mem_rvalid),
    .mem_rdata(mem_rdata), .mem_bytes(mem_bytes), .busy(busy));
endmodule
