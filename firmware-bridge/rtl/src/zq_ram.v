// On-chip buffer: one write port, one read port with read enable (the output holds while re is low).
// SINGLE = 1 shares one address between them (the buffers are never written and read in the same
// cycle), which lets yosys map a large buffer to iCE40 SPRAM.
module zq_ram #(
  parameter W = 8,
  parameter D = 256,
  parameter SINGLE = 0
) (
  input  wire                 clk,
  input  wire                 we,
  input  wire [$clog2(D)-1:0] wa,
  input  wire [W-1:0]         wd,
  input  wire                 re,
  input  wire [$clog2(D)-1:0] ra,
  output reg  [W-1:0]         rd
);
  reg [W-1:0] m [0:D-1];
  generate
    if (SINGLE) begin : sp
      wire [$clog2(D)-1:0] a = we ? wa : ra;
      always @(posedge clk) begin
        if (we) m[a] <= wd;
        else if (re) rd <= m[a];
      end
    end else begin : dp
      always @(posedge clk) begin
        if (we) m[wa] <= wd;
        if (re) rd <= m[ra];
      end
    end
  endgenerate
endmodule
