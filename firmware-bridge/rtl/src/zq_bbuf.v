// A byte buffer on a single-port RAM of 16-bit words (the iCE40 UP5K's SPRAM: 16K x 16 with nibble
// write masks; yosys maps it with synth_ice40 -spram): one byte written or one byte read per cycle.
// The read byte appears the cycle after `re` and holds until the next read, as SPRAM's output does.
module zq_bbuf #(
  parameter BYTES = 32768
) (
  input  wire                     clk,
  input  wire                     we,
  input  wire [$clog2(BYTES)-1:0] wa,
  input  wire [7:0]               wd,
  input  wire                     re,
  input  wire [$clog2(BYTES)-1:0] ra,
  output wire [7:0]               rd
);
  localparam A = $clog2(BYTES);
  reg [15:0] m [0:BYTES/2-1];
  reg [15:0] q;
  reg        hi;
  wire [A-2:0] a = we ? wa[A-1:1] : ra[A-1:1];
  always @(posedge clk) begin
    if (we) begin
      if (wa[0]) m[a][15:8] <= wd;
      else       m[a][7:0]  <= wd;
    end else if (re) begin
      q  <= m[a];
      hi <= ra[0];
    end
  end
  assign rd = hi ? q[15:8] : q[7:0];
endmodule
