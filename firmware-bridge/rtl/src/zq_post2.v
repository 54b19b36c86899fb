// Per-pixel output stage of docs/formats/fixed-point.md "Convolution" at one pixel every two cycles,
// with one multiplier and one shifter used in turn:
//   T = rshr(M*S, TS); Y = ACC + T (the lanes started ACC at B); A = act(Y); out = sat(rshr(A, OS)).
// A pixel is taken on the even phase. Even cycles: the multiplier forms M*S of the pixel taken, the
// shifter rshr(A, OS) of the pixel taken six cycles before. Odd cycles: the shifter forms
// rshr(M*S, TS), the multiplier Y*3277 (leaky) of the pixel taken three cycles before.
// rshr(v, r): r > 0 rounds half up, (u >>> 1) + u[0] with u = v >>> (r - 1); r <= 0 shifts left,
// done by the same right shifter on the bit-reversed value. `en` low (the writer is full) freezes
// everything. `act` and `o16` are layer constants.
module zq_post2 #(
  parameter SW = 25,           // window-sum width
  parameter AW = 24
) (
  input  wire                 clk,
  input  wire                 rst,
  input  wire                 en,
  input  wire [1:0]           act,     // 0 linear, 1 leaky, 2 relu
  input  wire                 o16,
  input  wire                 iv,
  output wire                 take,    // the input pixel is taken this cycle
  input  wire signed [31:0]   iacc,
  input  wire signed [SW-1:0] is,
  input  wire signed [15:0]   im,
  input  wire signed [7:0]    its,
  input  wire signed [7:0]    ios,
  input  wire [AW-1:0]        iaddr,
  output reg                  ov,
  output reg  [AW-1:0]        oaddr,
  output reg  [15:0]          odata,
  output wire                 busy
);
  reg ph;                              // 0: even cycle
  assign take = en && iv && !ph;

  // ---- the shared multiplier: 32 x 16 bits signed, product registered
  reg  signed [47:0] p;
  reg  signed [31:0] c_y;
  wire signed [31:0] ma = ph ? c_y : {{(32-SW){is[SW-1]}}, is};
  wire signed [15:0] mb = ph ? 16'sd3277 : im;

  // ---- the shared shifter: rshr(x, r) for r in [-32, 63], 48 bits
  reg  signed [31:0] e_a;
  reg  signed [7:0]  a_ts, e_os;
  wire signed [47:0] sx = ph ? p : {{16{e_a[31]}}, e_a};
  wire signed [7:0]  sr = ph ? a_ts : e_os;
  wire               left = sr[7] || sr == 8'sd0;
  wire [7:0]         amt0 = left ? 8'd0 - sr : sr - 8'd1;
  wire [5:0]         amt = amt0 > 8'd47 ? 6'd47 : amt0[5:0];
  reg  [47:0]        xr, ur;
  integer i;
  always @(*) begin
    for (i = 0; i < 48; i = i + 1) xr[i] = left ? sx[47 - i] : sx[i];
  end
  wire               fill = !left && sx[47];
  wire signed [48:0] shx = $signed({fill, xr}) >>> amt;
  always @(*) begin
    for (i = 0; i < 48; i = i + 1) ur[i] = left ? shx[47 - i] : shx[i];
  end
  wire [47:0]        sres = left ? ur : {ur[47], ur[47:1]} + {47'd0, ur[0]};

  // ---- saturation of the output shift's result
  wire        fit8  = (&sres[47:7]) | ~(|sres[47:7]);
  wire        fit16 = (&sres[47:15]) | ~(|sres[47:15]);
  wire [15:0] s8  = fit8 ? {{8{sres[7]}}, sres[7:0]} : (sres[47] ? 16'hff80 : 16'h007f);
  wire [15:0] s16 = fit16 ? sres[15:0] : (sres[47] ? 16'h8000 : 16'h7fff);

  // ---- leaky: rshr(Y*3277, 15) from the product
  wire signed [47:0] lu = p >>> 14;
  wire [31:0]        lk = lu[32:1] + {31'd0, lu[0]};

  // pipeline registers (a..e: the stages of one pixel, two cycles each)
  reg                a_v, b_v, c_v, d_v, e_v;
  reg signed [31:0]  a_acc, b_acc, b_t, d_y;
  reg signed [7:0]   a_os, b_os, c_os, d_os;
  reg [AW-1:0]       a_ad, b_ad, c_ad, d_ad, e_ad;
  reg [31:0]         act_a;
  always @(*) begin
    case (act)
      2'd1:    act_a = d_y[31] ? lk : d_y;
      2'd2:    act_a = d_y[31] ? 32'd0 : d_y;
      default: act_a = d_y;
    endcase
  end

  always @(posedge clk) begin
    if (rst) begin
      ph <= 1'b0; a_v <= 1'b0; b_v <= 1'b0; c_v <= 1'b0; d_v <= 1'b0; e_v <= 1'b0; ov <= 1'b0;
    end else if (en) begin
      ph <= !ph;
      p  <= ma * mb;
      if (!ph) begin
        // even: take a pixel; Y of stage b; A of stage d; the output of stage e
        a_v <= iv; a_acc <= iacc; a_ts <= its; a_os <= ios; a_ad <= iaddr;
        c_v <= b_v; c_y <= b_acc + b_t; c_os <= b_os; c_ad <= b_ad;
        e_v <= d_v; e_a <= act_a; e_os <= d_os; e_ad <= d_ad;
        ov <= e_v; odata <= o16 ? s16 : s8; oaddr <= e_ad;
      end else begin
        // odd: T of stage a; stage c on to d (its leaky product forms meanwhile)
        b_v <= a_v; b_t <= sres[31:0]; b_acc <= a_acc; b_os <= a_os; b_ad <= a_ad;
        d_v <= c_v; d_y <= c_y; d_os <= c_os; d_ad <= c_ad;
        ov <= 1'b0;
      end
    end
  end

  assign busy = a_v | b_v | c_v | d_v | e_v | ov;
endmodule
