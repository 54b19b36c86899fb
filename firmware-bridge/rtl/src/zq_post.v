// Per-pixel output stage of docs/formats/fixed-point.md "Convolution", one pixel per cycle:
//   T = rshr(M*S, TS); Y = ACC + T + B; A = act(Y); out = sat(rshr(A, OS)).
// rshr(v, r) for r > 0 is (u >>> 1) + u[0] with u = v >>> (r - 1). The output shift takes both
// directions in one right shifter: u = (v << L) >>> (L - 1 + r), L one more than the largest left
// shift that matters (the bits shifted in below v are zero, so no rounding happens for r <= 0).
// Five pipeline stages; `en` low freezes them (the writer is full). `act` and `o16` are layer
// constants.
module zq_post #(
  parameter SW = 24,           // window-sum width
  parameter AW = 32,           // address width
  parameter LEAKY_DSP = 0      // the leaky product in DSPs
) (
  input  wire                 clk,
  input  wire                 rst,
  input  wire                 en,
  input  wire [1:0]           act,    // 0 linear, 1 leaky, 2 relu
  input  wire                 o16,    // 16-bit output
  input  wire                 iv,
  input  wire signed [31:0]   iacc,
  input  wire signed [SW-1:0] is,
  input  wire signed [15:0]   im,
  input  wire signed [7:0]    its,
  input  wire signed [7:0]    ios,
  input  wire signed [31:0]   ib,
  input  wire [AW-1:0]        iaddr,
  output reg                  ov,
  output reg  [AW-1:0]        oaddr,
  output reg  [15:0]          odata,
  output wire                 busy    // a pixel is in the pipeline
);
  localparam PW = SW + 16;            // width of M*S

  // ---- stage 1: M*S
  reg                 v1;
  reg signed [PW-1:0] p1;
  reg signed [31:0]   acc1, b1;
  reg signed [7:0]    ts1, os1;
  reg [AW-1:0]        a1;
  always @(posedge clk) begin
    if (rst) v1 <= 1'b0;
    else if (en) begin
      v1 <= iv; p1 <= im * is; acc1 <= iacc; b1 <= ib; ts1 <= its; os1 <= ios; a1 <= iaddr;
    end
  end

  // ---- stage 2: T = rshr(P, TS), Y = ACC + T + B. |T| < 2^31 by validation, so 32 bits of the
  // result are enough, and a left shift by 32 or more gives 0.
  wire                tpos = ts1 > 8'sd0;
  wire [7:0]          trm1 = ts1 - 8'sd1;
  wire [5:0]          tr   = (tpos && trm1 < PW - 1) ? trm1[5:0] : PW - 1;
  wire signed [PW-1:0] tu  = p1 >>> tr;
  wire signed [32:0]  tu1 = tu[33:1];
  wire [31:0]         tp   = tu1[31:0] + {31'd0, tu[0]};
  wire [7:0]          tl   = 8'd0 - ts1;
  wire [31:0]         tn   = tl[7:5] != 3'd0 ? 32'd0 : (p1[31:0] << tl[4:0]);
  wire [31:0]         t2   = tpos ? tp : tn;
  reg                 v2;
  reg signed [31:0]   y2;
  reg signed [7:0]    os2;
  reg [AW-1:0]        a2;
  always @(posedge clk) begin
    if (rst) v2 <= 1'b0;
    else if (en) begin
      v2 <= v1; y2 <= acc1 + $signed(t2) + b1; os2 <= os1; a2 <= a1;
    end
  end

  // ---- stage 3: Y*3277 (a DSP product, or (Y*273)*12 + Y in shifts and adds)
  wire signed [43:0]  ye  = {{12{y2[31]}}, y2};
  wire signed [43:0]  yl;
  generate
    if (LEAKY_DSP) begin : lk_dsp
      assign yl = y2 * 14'sd3277;
    end else begin : lk_lut
      wire signed [43:0] z = (ye <<< 8) + (ye <<< 4) + ye;
      assign yl = (z <<< 3) + (z <<< 2) + ye;
    end
  endgenerate
  reg                 v3;
  reg signed [31:0]   y3;
  reg signed [43:0]   yl3;
  reg signed [7:0]    os3;
  reg [AW-1:0]        a3;
  always @(posedge clk) begin
    if (rst) v3 <= 1'b0;
    else if (en) begin
      v3 <= v2; y3 <= y2; yl3 <= yl; os3 <= os2; a3 <= a2;
    end
  end

  // ---- stage 4: activation
  wire signed [43:0]  lu  = yl3 >>> 14;
  wire signed [43:0]  lu1 = lu >>> 1;
  wire [31:0]         lk  = lu1[31:0] + {31'd0, lu[0]};   // rshr(Y*3277, 15)
  wire                neg = y3[31];
  reg  [31:0]         a4n;
  always @(*) begin
    case (act)
      2'd1:    a4n = neg ? lk : y3;
      2'd2:    a4n = neg ? 32'd0 : y3;
      default: a4n = y3;
    endcase
  end
  reg                 v4;
  reg signed [31:0]   a4;
  reg signed [7:0]    os4;
  reg [AW-1:0]        ad4;
  always @(posedge clk) begin
    if (rst) v4 <= 1'b0;
    else if (en) begin
      v4 <= v3; a4 <= a4n; os4 <= os3; ad4 <= a3;
    end
  end

  // ---- stage 5: rshr(A, OS) (a left shift by 16 or more saturates any non-zero A), saturation
  localparam OL = 17;
  wire signed [48:0]  al  = {a4, {OL{1'b0}}};
  wire signed [9:0]   or0 = $signed({{2{os4[7]}}, os4}) + (OL - 1);
  wire [5:0]          orr = or0 < 0 ? 6'd0 : (or0 > 48 ? 6'd48 : or0[5:0]);
  wire signed [48:0]  ou  = al >>> orr;
  wire signed [48:0]  ou1 = ou >>> 1;
  wire [48:0]         r5  = ou1 + {48'd0, ou[0]};
  wire                fit8  = (&r5[48:7]) | ~(|r5[48:7]);
  wire                fit16 = (&r5[48:15]) | ~(|r5[48:15]);
  wire [15:0]         s8  = fit8 ? {{8{r5[7]}}, r5[7:0]} : (r5[48] ? 16'hff80 : 16'h007f);
  wire [15:0]         s16 = fit16 ? r5[15:0] : (r5[48] ? 16'h8000 : 16'h7fff);
  always @(posedge clk) begin
    if (rst) ov <= 1'b0;
    else if (en) begin
      ov <= v4; odata <= o16 ? s16 : s8; oaddr <= ad4;
    end
  end

  assign busy = v1 | v2 | v3 | v4 | ov;
endmodule
