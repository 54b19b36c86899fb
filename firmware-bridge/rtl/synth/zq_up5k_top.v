// Synthesis shell for the iCE40 UP5K: the accelerator's register bus and memory port are far wider
// than the package's pins, so a 32-bit LFSR drives its inputs and its outputs are folded by XOR into
// one pin (nothing is constant, so nothing is optimized away). The shell measures the accelerator
// alone; on a board the same ports attach to the CPU's bus and a PSRAM controller. The shell itself
// costs about 70 logic cells (32 LFSR flip-flops, the XOR tree).
module zq_up5k_top (
  input  wire clk,
  input  wire rst_n,
  output reg  dout
);
  reg [31:0] r;
  reg rst_q;
  always @(posedge clk) begin
    rst_q <= !rst_n;
    r <= rst_q ? 32'h1 : {r[30:0], r[31] ^ r[21] ^ r[1] ^ r[0]};
  end

  wire [31:0] reg_rdata, mem_wdata;
  wire [29:0] mem_addr;
  wire [3:0]  mem_wstrb;
  wire        mem_valid, mem_we, busy;
  zq_accel u_acc (
    .clk(clk), .rst(rst_q),
    .reg_we(r[7] & r[3]), .reg_addr(r[12:8]), .reg_wdata(r), .reg_rdata(reg_rdata),
    .mem_valid(mem_valid), .mem_we(mem_we), .mem_addr(mem_addr), .mem_wdata(mem_wdata),
    .mem_wstrb(mem_wstrb), .mem_ready(r[5]), .mem_rvalid(r[9]), .mem_rdata({r[15:0], r[31:16]}),
    .mem_bytes(32'h0080_0000),   // 8 MiB of PSRAM
    .busy(busy));
  always @(posedge clk) dout <= ^{reg_rdata, mem_wdata, mem_addr, mem_wstrb, mem_valid, mem_we, busy};
endmodule
