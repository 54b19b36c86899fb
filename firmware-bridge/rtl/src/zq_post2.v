// Per-pixel output stage of docs/formats/fixed-point.md "Convolution" at one pixel every two cycles,
// with one shifter used in turn:
//   T = rshr(M*S, TS); Y = ACC + T (the lanes started ACC at B); A = act(Y); out = sat(rshr(A, OS)).
// A pixel is taken on an even cycle and moves one stage per cycle (stages a..i, then the output):
//   a: M, S, ACC            b: M*S (DSP)           c: rshr(M*S, TS), on an even cycle
//   d: Y = ACC + T          e: Y*3277 (DSP)        g: A = act(Y), leaky rshr(Y*3277, 15)
//   h: rshr(A, OS), on an odd cycle                i: rounded           out: saturated
// Stage registers are written on alternate cycles, so each holds one pixel at a time. rshr(v, r):
// r > 0 rounds half up, (u >>> 1) + u[0] with u = v >>> (r - 1); r <= 0 shifts left, done by the same
// right shifter on the bit-reversed value. The pixel's flags travel along. `en` low (the writer is
// full) freezes everything. `act` and `o16` are layer constants.
module zq_post2 #(
  parameter SW = 25            // window-sum width
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
  input  wire [1:0]           ifl,
  output reg                  ov,
  output reg  [1:0]           ofl,
  output reg  [15:0]          odata,
  output wire                 busy
);
  localparam PW = SW + 16;             // width of M*S
  reg ph;                              // 0: even cycle
  assign take = en && iv && !ph;

  // a shift amount r in [-32, 63] as the shifter takes it: left (r <= 0) and the right-shift count
  function [6:0] shamt(input [7:0] r);
    reg       l;
    reg [7:0] a;
    begin
      l = r[7] || r == 8'd0;
      a = l ? 8'd0 - r : r - 8'd1;
      shamt = {l, a > 8'd47 ? 6'd47 : a[5:0]};
    end
  endfunction

  reg                 a_v, b_v, c_v, d_v, e_v, g_v, h_v, i_v;
  reg signed [15:0]   a_m;
  reg signed [SW-1:0] a_s;
  reg signed [PW-1:0] b_p;
  reg signed [31:0]   a_acc, b_acc, c_acc, d_y, e_y, g_a;
  reg [6:0]           a_ts, b_ts, e_os, g_os;
  reg [7:0]           a_os, b_os, c_os, d_os;
  reg [31:0]          c_t;
  reg                 c_r, h_r;
  reg signed [47:0]   e_yl;
  reg [47:0]          h_u, i_s;
  reg [1:0]           a_f, b_f, c_f, d_f, e_f, g_f, h_f, i_f;

  // ---- the shared shifter: even cycles (M*S of stage b, TS), odd cycles (A of stage g, OS)
  wire signed [47:0] sx = ph ? {{16{g_a[31]}}, g_a} : {{(48-PW){b_p[PW-1]}}, b_p};
  wire [6:0]         sa = ph ? g_os : b_ts;
  wire               left = sa[6];
  reg  [47:0]        xr, ur;
  integer i;
  always @(*) begin
    for (i = 0; i < 48; i = i + 1) xr[i] = left ? sx[47 - i] : sx[i];
  end
  wire               fill = !left && sx[47];
  wire signed [48:0] shx = $signed({fill, xr}) >>> sa[5:0];
  always @(*) begin
    for (i = 0; i < 48; i = i + 1) ur[i] = left ? shx[47 - i] : shx[i];
  end
  // u >>> 1 (right) or u (left), and the rounding bit
  wire [47:0]        uh   = left ? ur : {ur[47], ur[47:1]};
  wire               rnd  = !left && ur[0];

  // leaky: rshr(Y*3277, 15)
  wire signed [47:0] lu = e_yl >>> 14;
  wire [31:0]        lk = lu[32:1] + {31'd0, lu[0]};
  reg  [31:0]        act_a;
  always @(*) begin
    case (act)
      2'd1:    act_a = e_y[31] ? lk : e_y;
      2'd2:    act_a = e_y[31] ? 32'd0 : e_y;
      default: act_a = e_y;
    endcase
  end

  // the output: i's rounded value, saturated
  wire        fit8  = (&i_s[47:7]) | ~(|i_s[47:7]);
  wire        fit16 = (&i_s[47:15]) | ~(|i_s[47:15]);
  wire [15:0] s8  = fit8 ? {{8{i_s[7]}}, i_s[7:0]} : (i_s[47] ? 16'hff80 : 16'h007f);
  wire [15:0] s16 = fit16 ? i_s[15:0] : (i_s[47] ? 16'h8000 : 16'h7fff);

  always @(posedge clk) begin
    if (rst) begin
      ph <= 1'b0; a_v <= 1'b0; b_v <= 1'b0; c_v <= 1'b0; d_v <= 1'b0; e_v <= 1'b0; g_v <= 1'b0;
      h_v <= 1'b0; i_v <= 1'b0; ov <= 1'b0;
    end else if (en) begin
      ph <= !ph;
      if (!ph) begin
        // even: a takes a pixel; c shifts b's product by TS; e forms Y*3277; i rounds h's value
        a_v <= iv; a_m <= im; a_s <= is; a_acc <= iacc; a_ts <= shamt(its); a_os <= ios; a_f <= ifl;
        c_v <= b_v; c_t <= uh[31:0]; c_r <= rnd; c_acc <= b_acc; c_os <= b_os; c_f <= b_f;
        e_v <= d_v; e_y <= d_y; e_yl <= d_y * 16'sd3277; e_os <= shamt(d_os); e_f <= d_f;
        i_v <= h_v; i_s <= h_u + {47'd0, h_r}; i_f <= h_f;
        ov <= 1'b0;
      end else begin
        // odd: b forms M*S; d = ACC + T; g = act(Y); h shifts A by OS
        b_v <= a_v; b_p <= a_m * a_s; b_acc <= a_acc; b_ts <= a_ts; b_os <= a_os; b_f <= a_f;
        d_v <= c_v; d_y <= c_acc + c_t + {31'd0, c_r}; d_os <= c_os; d_f <= c_f;
        g_v <= e_v; g_a <= act_a; g_os <= e_os; g_f <= e_f;
        h_v <= g_v; h_u <= uh; h_r <= rnd; h_f <= g_f;
        ov <= i_v; ofl <= i_f; odata <= o16 ? s16 : s8;
      end
    end
  end

  assign busy = a_v | b_v | c_v | d_v | e_v | g_v | h_v | i_v | ov;
endmodule
