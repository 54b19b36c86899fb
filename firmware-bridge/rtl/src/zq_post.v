// Per-pixel output stage of docs/formats/fixed-point.md "Convolution", one pixel per cycle:
//   T = rshr(M*S, TS); Y = ACC + T + B; A = act(Y); out = sat(rshr(A, OS)).
// Five pipeline stages; `en` low freezes all of them (the writer is full).
module zq_post #(
  parameter SW = 24            // window-sum width
) (
  input  wire                 clk,
  input  wire                 rst,
  input  wire                 en,
  input  wire                 iv,
  input  wire signed [31:0]   iacc,
  input  wire signed [SW-1:0] is,
  input  wire signed [15:0]   im,
  input  wire signed [7:0]    its,
  input  wire signed [7:0]    ios,
  input  wire signed [31:0]   ib,
  input  wire [1:0]           iact,   // 0 linear, 1 leaky, 2 relu
  input  wire                 i16,    // 16-bit output
  input  wire [31:0]          iaddr,
  output reg                  ov,
  output reg  [31:0]          oaddr,
  output reg  [15:0]          odata,
  output reg                  o16,
  output wire                 busy    // a pixel is in the pipeline
);
  localparam PW = SW + 16;

  // ---- stage 1: M*S (the only multiplier here)
  reg                 v1, b16_1;
  reg signed [PW-1:0] p1;
  reg signed [31:0]   acc1, b1;
  reg signed [7:0]    ts1, os1;
  reg [1:0]           act1;
  reg [31:0]          a1;
  always @(posedge clk) begin
    if (rst) v1 <= 1'b0;
    else if (en) begin
      v1 <= iv; p1 <= im * is; acc1 <= iacc; b1 <= ib; ts1 <= its; os1 <= ios;
      act1 <= iact; b16_1 <= i16; a1 <= iaddr;
    end
  end

  // ---- stage 2: T = rshr(P, TS), Y = ACC + T + B
  wire                tpos = ts1 > 8'sd0;
  wire [7:0]          trm1 = ts1 - 8'sd1;
  wire [7:0]          tr   = (tpos && trm1 < PW - 1) ? trm1 : PW - 1;
  wire signed [PW-1:0] tu  = p1 >>> tr;
  wire signed [PW-1:0] tu1 = tu >>> 1;
  wire [31:0]         tp   = tu1[31:0] + {31'd0, tu[0]};
  wire [7:0]          tl   = 8'd0 - ts1;               // left shift when TS <= 0
  wire [31:0]         tn   = (tl >= 8'd32) ? 32'd0 : (p1[31:0] << tl[4:0]);
  wire [31:0]         t2   = tpos ? tp : tn;
  reg                 v2, b16_2;
  reg signed [31:0]   y2;
  reg signed [7:0]    os2;
  reg [1:0]           act2;
  reg [31:0]          a2;
  always @(posedge clk) begin
    if (rst) v2 <= 1'b0;
    else if (en) begin
      v2 <= v1; y2 <= acc1 + $signed(t2) + b1; os2 <= os1; act2 <= act1; b16_2 <= b16_1; a2 <= a1;
    end
  end

  // ---- stage 3: Y*3277 = (Y*273)*12 + Y, shifts and adds
  wire signed [43:0]  ye  = {{12{y2[31]}}, y2};
  wire signed [43:0]  z   = (ye <<< 8) + (ye <<< 4) + ye;
  wire signed [43:0]  yl  = (z <<< 3) + (z <<< 2) + ye;
  reg                 v3, b16_3;
  reg signed [31:0]   y3;
  reg signed [43:0]   yl3;
  reg signed [7:0]    os3;
  reg [1:0]           act3;
  reg [31:0]          a3;
  always @(posedge clk) begin
    if (rst) v3 <= 1'b0;
    else if (en) begin
      v3 <= v2; y3 <= y2; yl3 <= yl; os3 <= os2; act3 <= act2; b16_3 <= b16_2; a3 <= a2;
    end
  end

  // ---- stage 4: activation
  wire signed [43:0]  lu  = yl3 >>> 14;
  wire signed [43:0]  lu1 = lu >>> 1;
  wire [31:0]         lk  = lu1[31:0] + {31'd0, lu[0]};   // rshr(Y*3277, 15)
  wire                neg = y3[31];
  reg  [31:0]         a4n;
  always @(*) begin
    case (act3)
      2'd1:    a4n = neg ? lk : y3;
      2'd2:    a4n = neg ? 32'd0 : y3;
      default: a4n = y3;
    endcase
  end
  reg                 v4, b16_4;
  reg signed [31:0]   a4;
  reg signed [7:0]    os4;
  reg [31:0]          ad4;
  always @(posedge clk) begin
    if (rst) v4 <= 1'b0;
    else if (en) begin
      v4 <= v3; a4 <= a4n; os4 <= os3; b16_4 <= b16_3; ad4 <= a3;
    end
  end

  // ---- stage 5: rshr(A, OS) in 48 bits, saturation
  wire                opos = os4 > 8'sd0;
  wire [7:0]          orm1 = os4 - 8'sd1;
  wire [7:0]          orr  = (opos && orm1 < 8'd31) ? orm1 : 8'd31;
  wire signed [31:0]  ou   = a4 >>> orr[4:0];
  wire signed [31:0]  ou1  = ou >>> 1;
  wire [31:0]         op   = ou1 + {31'd0, ou[0]};
  wire [7:0]          ol0  = 8'd0 - os4;
  wire [4:0]          ol   = (ol0 > 8'd16) ? 5'd16 : ol0[4:0];
  wire signed [47:0]  ae   = {{16{a4[31]}}, a4};
  wire signed [47:0]  on   = ae <<< ol;
  wire signed [47:0]  r5   = opos ? {{16{op[31]}}, op} : on;
  wire signed [47:0]  hi   = b16_4 ? 48'sd32767 : 48'sd127;
  wire signed [47:0]  lo   = b16_4 ? -48'sd32768 : -48'sd128;
  wire signed [47:0]  sat  = (r5 > hi) ? hi : ((r5 < lo) ? lo : r5);
  always @(posedge clk) begin
    if (rst) ov <= 1'b0;
    else if (en) begin
      ov <= v4; odata <= sat[15:0]; o16 <= b16_4; oaddr <= ad4;
    end
  end

  assign busy = v1 | v2 | v3 | v4 | ov;
endmodule
