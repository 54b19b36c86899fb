// The small core's compute walk of one output row, its buffers and lanes (src/zq_small.v).
//
// Started by `go`, the walker visits every output channel j of the chunk, every block of N
// neighbouring pixels of the row and every tap (input channel c, kernel row ky, kernel column kx), one
// tap per cycle. Lane i reads the input byte of pixel x+i from its own copy of the line buffer and all
// lanes share the weight byte. The line buffer holds a ring of k slots, each with the row of every
// input channel of the group: (slot, c, column) at slot*SP + c*W + column. The sequencer gives the ring's
// first slot (bslot, its offset boff) and the kernel rows inside the input, [kylo, kyhi); columns
// outside [0, W) read as 0.
//
// Pipeline: A (buffer addresses; the reads), R (read data), X (lane operands; parameter reads),
// P (products), then the accumulators, which start at B. A block's last tap moves the accumulators and
// window sums to the hold registers, from which the output stage takes one pixel at a time; while the
// hold is full, a finished block waits in P and the pipeline stands still.
`include "zq_config.vh"
module zq_walk #(
  parameter N   = `ZQ_LANES,
  parameter LBB = `ZQ_LB_BYTES,
  parameter WBB = `ZQ_WB_BYTES,
  parameter PBC = `ZQ_PB_CH,
  parameter LBA = $clog2(LBB),
  parameter WBA = $clog2(WBB),
  parameter PBA = $clog2(PBC),
  parameter DA  = (LBA > WBA ? LBA : WBA) + 1,
  parameter SW  = WBA + 10               // window sums: |S| <= 255 * Cg*k*k, Cg*k*k <= WBB
) (
  input  wire           clk,
  input  wire           rst,
  input  wire           go,
  // the layer and the row
  input  wire [2:0]     k,
  input  wire [1:0]     s,
  input  wire [2:0]     pad,
  input  wire           u8,
  input  wire [15:0]    w,
  input  wire [15:0]    wo,
  input  wire [PBA:0]   n1,              // output channels of the chunk, less one
  input  wire [15:0]    cg,              // input channels of the group
  input  wire [LBA:0]   sp,              // a slot: Cg*W bytes
  input  wire [WBA:0]   cgkk,            // weights of an output channel
  input  wire [2:0]     kylo,
  input  wire [2:0]     kyhi,
  input  wire [2:0]     bslot,
  input  wire [LBA:0]   boff,
  // the loader's writes
  input  wire           ld_we,
  input  wire [1:0]     ld_target,       // 0 line buffer, 1 weights, 2 parameters
  input  wire [DA-1:0]  ld_wa,
  input  wire [31:0]    ld_wd,
  output wire           idle,            // no tap issued or in the pipeline
  // the hold registers, one pixel at a time
  output reg            h_v,
  input  wire           h_take,
  output wire [31:0]    h_acc,
  output wire [SW-1:0]  h_s,
  output reg  [31:0]    h_m,             // M, TS, OS of the block's output channel
  output wire [1:0]     h_f              // {first pixel of the row, first pixel of a channel}
);
  localparam CW = 19;                    // signed column coordinates
  localparam NB = $clog2(N + 1);
  localparam [15:0] N16 = N;

  // ------------------------------------------------------------------ the walk
  reg            active;
  reg [PBA-1:0]  j;
  reg [15:0]     xrem;                   // pixels from this block to the end of the row
  reg [LBA:0]    cw, so;                 // c*W; the slot's offset
  reg [15:0]     cleft;                  // input channels from this one to the last
  reg [2:0]      ky, kx, slot;
  reg signed [CW-1:0] colb, col;         // x*s - pad; + kx
  reg [WBA-1:0]  wa, wj;                 // the tap's weight; the channel's first

  wire           lane_stall;
  wire           issue = active && !lane_stall;
  wire signed [CW-1:0] pad_s = {{(CW-3){1'b0}}, pad};
  wire signed [CW-1:0] w_s   = {{(CW-16){1'b0}}, w};
  wire signed [CW-1:0] ns_s  = s == 2'd2 ? 2 * N : N;      // input columns a block steps over
  wire [16:0]    cw_n   = cw + w;
  wire           kx_end = kx == k - 1'b1;
  wire           ky_end = ky == k - 1'b1;
  wire           c_end  = cleft == 16'd1;
  wire           x_end  = xrem <= N16;
  wire           j_end  = {1'b0, j} == n1;
  wire           f_first = cw == 0 && ky == 3'd0 && kx == 3'd0;
  wire           f_last  = c_end && ky_end && kx_end;
  wire [1:0]     f_f     = {xrem == wo && j == 0, xrem == wo};
  wire [NB-1:0]  nv_c    = xrem >= N16 ? N[NB-1:0] : xrem[NB-1:0];
  wire           rowvalid = ky >= kylo && ky < kyhi;
  wire [LBA:0]   rowp    = cw + so;

  always @(posedge clk) begin
    if (rst) begin
      active <= 1'b0;
    end else if (go) begin
      active <= 1'b1; j <= 0; xrem <= wo; cw <= 0; cleft <= cg; ky <= 3'd0; kx <= 3'd0;
      slot <= bslot; so <= boff; colb <= -pad_s; col <= -pad_s; wa <= 0; wj <= 0;
    end else if (issue) begin
      wa <= wa + 1'b1;
      if (!kx_end) begin
        kx <= kx + 1'b1; col <= col + 1;
      end else begin
        kx <= 3'd0; col <= colb;
        if (!ky_end) begin
          ky <= ky + 1'b1;
          if (slot + 1'b1 == k) begin slot <= 3'd0; so <= 0; end
          else begin slot <= slot + 1'b1; so <= so + sp; end
        end else begin
          ky <= 3'd0; slot <= bslot; so <= boff;
          if (!c_end) begin
            cw <= cw_n[LBA:0]; cleft <= cleft - 1'b1;
          end else begin
            cw <= 0; cleft <= cg;
            if (!x_end) begin
              // the next block of the row, the same channel: its weights again
              xrem <= xrem - N16; colb <= colb + ns_s; col <= colb + ns_s; wa <= wj;
            end else begin
              xrem <= wo; colb <= -pad_s; col <= -pad_s;
              if (!j_end) begin
                j <= j + 1'b1; wj <= wj + cgkk[WBA-1:0]; wa <= wj + cgkk[WBA-1:0];
              end else begin
                active <= 1'b0;
              end
            end
          end
        end
      end
    end
  end

  // ------------------------------------------------------------------ stage A and the buffers
  reg            a_v, a_first, a_last;
  reg [N-1:0]    a_cv;
  reg [N*LBA-1:0] a_ra;
  reg [WBA-1:0]  a_wa;
  reg [PBA-1:0]  a_j;
  reg [NB-1:0]   a_nv;
  reg [1:0]      a_f;
  wire [N*8-1:0] lb_rd;
  wire [7:0]     wb_rd;
  reg  [N-1:0]   cvalid;
  reg  [N*LBA-1:0] ra_c;
  genvar gl;
  generate
    for (gl = 0; gl < N; gl = gl + 1) begin : lbc
      wire signed [CW-1:0] coli = col + (s == 2'd2 ? 2 * gl : gl);
      always @(*) begin
        cvalid[gl] = rowvalid && coli >= 0 && coli < w_s;
        ra_c[gl*LBA +: LBA] = rowp[LBA-1:0] + coli[LBA-1:0];
      end
      zq_bbuf #(.BYTES(LBB)) u_lb (
        .clk(clk), .we(ld_we && ld_target == 2'd0), .wa(ld_wa[LBA-1:0]), .wd(ld_wd[7:0]),
        .re(a_v && !lane_stall), .ra(a_ra[gl*LBA +: LBA]), .rd(lb_rd[gl*8 +: 8]));
    end
  endgenerate
  zq_bbuf #(.BYTES(WBB)) u_wb (
    .clk(clk), .we(ld_we && ld_target == 2'd1), .wa(ld_wa[WBA-1:0]), .wd(ld_wd[7:0]),
    .re(a_v && !lane_stall), .ra(a_wa), .rd(wb_rd));

  // parameters: word 0 (B) and word 1 (M, TS, OS) of each channel in two buffers
  wire           pbb_re, pbm_re;
  wire [PBA-1:0] pb_ra;
  wire [31:0]    pb_b, pb_m;
  zq_ram #(.W(32), .D(PBC)) u_pbb (
    .clk(clk), .we(ld_we && ld_target == 2'd2 && !ld_wa[0]), .wa(ld_wa[PBA:1]), .wd(ld_wd),
    .re(pbb_re), .ra(pb_ra), .rd(pb_b));
  zq_ram #(.W(32), .D(PBC)) u_pbm (
    .clk(clk), .we(ld_we && ld_target == 2'd2 && ld_wa[0]), .wa(ld_wa[PBA:1]), .wd(ld_wd),
    .re(pbm_re), .ra(pb_ra), .rd(pb_m));

  // ------------------------------------------------------------------ lane pipeline
  reg            r_v, r_first, r_last;
  reg [N-1:0]    r_cv;
  reg [PBA-1:0]  r_j;
  reg [NB-1:0]   r_nv;
  reg [1:0]      r_f;
  reg            x_v, x_first, x_last;
  reg [N*9-1:0]  x_op;
  reg signed [7:0] x_q;
  reg [PBA-1:0]  x_j;
  reg [NB-1:0]   x_nv;
  reg [1:0]      x_f;
  reg            p_v, p_first, p_last;
  reg [NB-1:0]   p_nv;
  reg [1:0]      p_f;

  reg [NB-1:0]   h_nv, h_cnt;
  reg [1:0]      hf;
  wire [N*32-1:0] h_acc_all;
  wire [N*SW-1:0] h_s_all;
  // a finished block waits while the hold is full (registers only: no path from the output stage)
  wire           h_load = p_v && p_last && !h_v;
  assign lane_stall = p_v && p_last && h_v;
  assign idle = !active && !a_v && !r_v && !x_v && !p_v;

  assign pbb_re = x_v && x_first && !lane_stall;
  assign pbm_re = x_v && x_last && !lane_stall;
  assign pb_ra  = x_j;

  integer li;
  always @(posedge clk) begin
    if (rst) begin
      a_v <= 1'b0; r_v <= 1'b0; x_v <= 1'b0; p_v <= 1'b0;
    end else if (!lane_stall) begin
      a_v <= issue; a_first <= f_first; a_last <= f_last; a_cv <= cvalid; a_ra <= ra_c; a_wa <= wa;
      a_j <= j; a_nv <= nv_c; a_f <= f_f;
      r_v <= a_v; r_first <= a_first; r_last <= a_last; r_cv <= a_cv; r_j <= a_j; r_nv <= a_nv;
      r_f <= a_f;
      x_v <= r_v; x_first <= r_first; x_last <= r_last; x_j <= r_j; x_nv <= r_nv; x_f <= r_f;
      for (li = 0; li < N; li = li + 1)
        x_op[li*9 +: 9] <= r_cv[li] ? {~u8 & lb_rd[li*8 + 7], lb_rd[li*8 +: 8]} : 9'd0;
      x_q <= wb_rd;
      p_v <= x_v; p_first <= x_first; p_last <= x_last; p_nv <= x_nv; p_f <= x_f;
    end
  end

  generate
    for (gl = 0; gl < N; gl = gl + 1) begin : lane
      wire signed [8:0]    xv = x_op[gl*9 +: 9];
      reg  signed [16:0]   pr;
      reg  signed [8:0]    px;
      reg  signed [31:0]   acc, ha;
      reg  signed [SW-1:0] sacc, hs;
      wire signed [31:0]   acc_n = (p_first ? $signed(pb_b) : acc) + {{15{pr[16]}}, pr};
      wire signed [SW-1:0] s_n   = (p_first ? {SW{1'b0}} : sacc) + {{(SW-9){px[8]}}, px};
      always @(posedge clk) begin
        if (!lane_stall) begin
          pr <= xv * x_q;
          px <= xv;
          if (p_v) begin
            acc  <= acc_n;
            sacc <= s_n;
          end
        end
        if (h_load) begin
          ha <= acc_n;
          hs <= s_n;
        end
      end
      assign h_acc_all[gl*32 +: 32] = ha;
      assign h_s_all[gl*SW +: SW] = hs;
    end
  endgenerate

  always @(posedge clk) begin
    if (rst) begin
      h_v <= 1'b0;
    end else if (h_load) begin
      h_v <= 1'b1; h_m <= pb_m; h_nv <= p_nv; h_cnt <= {NB{1'b0}}; hf <= p_f;
    end else if (h_take) begin
      h_cnt <= h_cnt + 1'b1;
      if (h_cnt == h_nv - 1'b1) h_v <= 1'b0;
    end
  end
  assign h_acc = h_acc_all[h_cnt*32 +: 32];
  assign h_s   = h_s_all[h_cnt*SW +: SW];
  assign h_f   = h_cnt == {NB{1'b0}} ? hf : 2'b00;
endmodule
