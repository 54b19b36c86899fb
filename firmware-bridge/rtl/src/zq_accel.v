// The conv accelerator behind docs/formats/accelerator.md: the core the configuration selects
// (src/zq_config.vh). zq_small fits an iCE40 UP5K; zq_wide is for parts with many multipliers.
`include "zq_config.vh"
`define ZQ_RDATA_T wire
module zq_accel (
`include "zq_ports.vh"
);
`undef ZQ_RDATA_T
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
