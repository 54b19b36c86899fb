// Sequential multiply (32 x 16 -> 48 bits, 16 cycles) and divide (24 / 16 bits, 24 cycles) for the
// layer setup: shapes are multiplied and divided once per layer, so one small shared unit is enough.
module zq_muldiv (
  input  wire        clk,
  input  wire        rst,
  input  wire        start,
  input  wire        op_div,   // 0: res = a * b; 1: res = a[23:0] / b, rem = a[23:0] % b
  input  wire [31:0] a,
  input  wire [15:0] b,
  output reg         busy,
  output reg  [47:0] res,
  output reg  [15:0] rem
);
  reg        div;
  reg [4:0]  n;
  reg [47:0] ma;      // multiplicand shifted left / dividend shifted out
  reg [15:0] mb;      // multiplier shifted right / divisor
  reg [16:0] r;       // partial remainder

  wire [16:0] r_in  = {r[15:0], ma[23]};
  wire [17:0] r_sub = {1'b0, r_in} - {2'b0, mb};

  always @(posedge clk) begin
    if (rst) begin
      busy <= 1'b0;
    end else if (start && !busy) begin
      busy <= 1'b1;
      div  <= op_div;
      ma   <= op_div ? {24'd0, a[23:0]} : {16'd0, a};
      mb   <= b;
      r    <= 17'd0;
      res  <= 48'd0;
      n    <= op_div ? 5'd24 : 5'd16;
    end else if (busy) begin
      if (div) begin
        // restoring division, one quotient bit per cycle (MSB first); b = 0 gives all ones
        if (!r_sub[17]) begin
          r   <= r_sub[16:0];
          res <= {res[46:0], 1'b1};
        end else begin
          r   <= r_in;
          res <= {res[46:0], 1'b0};
        end
        ma <= {ma[46:0], 1'b0};
      end else begin
        if (mb[0]) res <= res + ma;
        ma <= {ma[46:0], 1'b0};
        mb <= {1'b0, mb[15:1]};
      end
      n <= n - 5'd1;
      if (n == 5'd1) busy <= 1'b0;
    end
  end

  always @(*) rem = r[15:0];
endmodule
