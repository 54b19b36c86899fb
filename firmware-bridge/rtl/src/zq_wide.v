// The conv accelerator's core for parts with many multipliers (the large configuration): one
// convolution layer per start (docs/formats/accelerator.md), computed as docs/formats/fixed-point.md
// "Convolution" says. Architecture: docs/decisions/accelerator-rtl.md.
//
// Data flow: input rows of one group go from the external memory into a ring of k line-buffer rows
// per input channel; the weights and parameters of a chunk of output channels into their buffers.
// For each output row, each output channel of the chunk and each block of N output pixels, the fetch
// stage reads one segment per (input channel, kernel row) - the N*s+k-1 input bytes the block needs -
// with the k weights of that kernel row; the N lanes then take one tap per cycle (kx), each lane
// multiplying its own input byte by the shared weight. At the end of a block the N accumulators and
// window sums go to the hold registers, from which the output stage takes one pixel per cycle.
`include "zq_config.vh"
`define ZQ_RDATA_T reg
module zq_wide (
`include "zq_ports.vh"
);
`undef ZQ_RDATA_T
  localparam N    = `ZQ_LANES;
  localparam KMAX = `ZQ_KMAX;
  localparam LBW  = `ZQ_LB_WORDS;
  localparam WBW  = `ZQ_WB_WORDS;
  localparam PBC  = `ZQ_PB_CH;
  localparam AW   = `ZQ_AW;
  localparam LBA  = $clog2(LBW);
  localparam WBA  = $clog2(WBW);
  localparam PBA  = $clog2(PBC);
  localparam WBB  = WBW * N;             // weight buffer bytes
  localparam SW   = $clog2(WBB) + 10;    // window sums: |S| <= 255 * Cg*k*k, Cg*k*k <= WBB
  localparam SEGB = 3 * N;               // bytes of a segment: N*s + k - 1 <= 3N
  localparam HB   = $clog2(SEGB + 1);
  localparam NB   = $clog2(N + 1);
  localparam DA   = (LBA > WBA ? LBA : WBA) + 1;
  localparam CW   = 19;                  // signed row and column coordinates
  localparam [15:0]   N16    = N;
  localparam [7:0]    KMAX8  = KMAX;
  localparam [HB-1:0] SEGB_H = SEGB;
  localparam [NB-1:0] N_NB   = N;
  localparam [PBA:0]  PBC_P  = PBC;
  localparam [32:0]   AMAX   = (AW >= 32) ? 33'h1_0000_0000 : (33'd1 << AW);
  // a segment (N*s + k - 1 bytes) spans s + 1 words and k weights two words: N >= KMAX - 1
  generate if (N < KMAX - 1) begin : bad_config
    initial $error("ZQ_LANES must be at least ZQ_KMAX - 1");
  end endgenerate

  // ------------------------------------------------------------------ registers
  reg [31:0] r_in, r_out, r_wt, r_par;
  // dimension registers keep 16 bits; bit 16 records that a larger value was written (error 1)
  reg [16:0] r_c, r_h, r_w, r_o, r_ho, r_wo, r_k, r_s, r_pad, r_g;
  reg [3:0]  r_flags;
  reg        st_busy, st_done, st_err;
  reg [7:0]  st_code;
  reg [31:0] cycles;

  assign busy = st_busy;

  wire [16:0] dimw = {|reg_wdata[31:16], reg_wdata[15:0]};
  wire        start = reg_we && reg_addr == 5'd0 && reg_wdata[0] && !st_busy;

  always @(*) begin
    case (reg_addr)
      5'd1:  reg_rdata = {16'd0, st_code, 5'd0, st_err, st_done, st_busy};
      5'd2:  reg_rdata = cycles;
      5'd3:  reg_rdata = r_in;
      5'd4:  reg_rdata = r_out;
      5'd5:  reg_rdata = r_wt;
      5'd6:  reg_rdata = r_par;
      5'd7:  reg_rdata = {15'd0, r_c};
      5'd8:  reg_rdata = {15'd0, r_h};
      5'd9:  reg_rdata = {15'd0, r_w};
      5'd10: reg_rdata = {15'd0, r_o};
      5'd11: reg_rdata = {15'd0, r_ho};
      5'd12: reg_rdata = {15'd0, r_wo};
      5'd13: reg_rdata = {15'd0, r_k};
      5'd14: reg_rdata = {15'd0, r_s};
      5'd15: reg_rdata = {15'd0, r_pad};
      5'd16: reg_rdata = {15'd0, r_g};
      5'd17: reg_rdata = {28'd0, r_flags};
      5'd18: reg_rdata = {N16, KMAX8, 8'd`ZQ_VERSION};
      default: reg_rdata = 32'd0;
    endcase
  end

  always @(posedge clk) begin
    if (rst) begin
      r_in <= 0; r_out <= 0; r_wt <= 0; r_par <= 0;
      r_c <= 0; r_h <= 0; r_w <= 0; r_o <= 0; r_ho <= 0; r_wo <= 0;
      r_k <= 0; r_s <= 0; r_pad <= 0; r_g <= 0; r_flags <= 0;
    end else if (reg_we && !st_busy) begin
      // the layer description is not changed while a layer runs
      case (reg_addr)
        5'd3:  r_in <= reg_wdata;
        5'd4:  r_out <= reg_wdata;
        5'd5:  r_wt <= reg_wdata;
        5'd6:  r_par <= reg_wdata;
        5'd7:  r_c <= dimw;
        5'd8:  r_h <= dimw;
        5'd9:  r_w <= dimw;
        5'd10: r_o <= dimw;
        5'd11: r_ho <= dimw;
        5'd12: r_wo <= dimw;
        5'd13: r_k <= dimw;
        5'd14: r_s <= dimw;
        5'd15: r_pad <= dimw;
        5'd16: r_g <= dimw;
        5'd17: r_flags <= reg_wdata[3:0];
        default: ;
      endcase
    end
  end

  // layer constants (valid once the checks passed)
  wire [2:0] k    = r_k[2:0];
  wire [1:0] s    = r_s[1:0];
  wire [2:0] pad  = r_pad[2:0];
  wire       u8   = r_flags[0];
  wire [1:0] act  = r_flags[2:1];
  wire       o16  = r_flags[3];
  wire       e    = k != 3'd1;          // a segment spans one word more than N*s bytes
  reg  [4:0] kk;
  always @(*) begin
    case (k)
      3'd1: kk = 5'd1;  3'd2: kk = 5'd4;  3'd3: kk = 5'd9;  3'd4: kk = 5'd16;
      default: kk = 5'd25;
    endcase
  end
  wire [32:0] lim = {1'b0, mem_bytes} > AMAX ? AMAX : {1'b0, mem_bytes};

  // ------------------------------------------------------------------ shared multiply / divide
  reg         md_start, md_div;
  reg  [31:0] md_a;
  reg  [15:0] md_b;
  wire        md_busy;
  wire [47:0] md_res;
  wire [15:0] md_rem;
  zq_muldiv u_md (.clk(clk), .rst(rst), .start(md_start), .op_div(md_div), .a(md_a), .b(md_b),
                  .busy(md_busy), .res(md_res), .rem(md_rem));
  wire        md_done = !md_busy && !md_start;

  // ------------------------------------------------------------------ sequencer state
  localparam S_IDLE = 5'd0, S_SETUP = 5'd1, S_CHUNK = 5'd2, S_CHMUL = 5'd3, S_LDW = 5'd4,
             S_LDP = 5'd5, S_TILE = 5'd6, S_ROW = 5'd7, S_RLD = 5'd8, S_CINIT = 5'd9,
             S_COMP = 5'd10, S_RNEXT = 5'd11, S_TNEXT = 5'd12, S_KNEXT = 5'd13, S_KMUL = 5'd14,
             S_GNEXT = 5'd15, S_DRAIN = 5'd16, S_FLUSH = 5'd17;
  reg [4:0]  st;
  reg [4:0]  su;          // setup step
  reg        md_wait;

  // setup results
  reg [15:0] cg, og, cgkk, heff, weff, hoeff, woeff, nbtot, nb, nbN;
  reg [PBA:0] chmax;
  reg [AW-1:0] plane, oplane, cgplane, opb, padw, orow;
  reg [LBA:0] pitch, kp;
  reg [WBA:0] cgkk_w;
  reg [NB-1:0] cgkk_b;
  wire [15:0] nbNs = s == 2'd2 ? {nbN[14:0], 1'b0} : nbN;   // input columns a tile steps over
  wire [LBA:0] ps  = s == 2'd2 ? {pitch[LBA-1:0], 1'b0} : pitch;
  wire [31:0] opb_32 = opb;            // zero-extended

  // run state
  reg [15:0] g, og_left, n;
  reg [AW-1:0] in_g, w_ptr, p_ptr, o_ptr;
  reg        ld_issued;
  reg [15:0] tb, nbt, x0;
  reg signed [CW-1:0] cx0, colstart, colend;
  reg [2:0]  lz;
  reg [15:0] y;
  reg signed [CW-1:0] iy0, next_row;
  reg [2:0]  base_slot, next_slot;
  reg [LBA:0] base_off, next_off;
  reg [AW-1:0] row_ext, l_ext, orowoff;
  reg [15:0] lc;
  reg [LBA:0] l_dst;
  // compute loop
  reg [15:0] j, b, c;
  reg [2:0]  ky, slot;
  reg [1:0]  wi;
  reg [LBA:0] lb_c, b_off, slot_off;
  reg signed [CW-1:0] iy, col0;
  reg [WBA:0] wp_w, wc_w;
  reg [NB-1:0] wp_b, wc_b;
  reg [AW-1:0] oaddr_j, oaddr_b;
  reg signed [CW-1:0] rem;

  wire [15:0] ld_nbytes = colend - colstart;

  // ------------------------------------------------------------------ loader and buffers
  wire         ld_busy, ld_req, ld_we;
  wire [29:0]  ld_ra;
  wire [DA-1:0] ld_wa;
  wire [N*8-1:0] ld_wd;
  reg          ld_start, ld_raw;
  reg  [AW-1:0] ld_addr;
  reg  [23:0]  ld_n;
  reg  [DA-1:0] ld_dest;
  reg  [2:0]   ld_lz;
  reg  [1:0]   ld_target;   // 0 line buffer, 1 weights, 2 parameters
  reg  [1:0]   ld_tgt_q;
  wire         wr_wv;
  wire         ld_take = ld_req && !wr_wv && mem_ready;

  zq_loader #(.N(N), .DA(DA), .AW(AW)) u_ld (
    .clk(clk), .rst(rst), .start(ld_start), .raw(ld_raw), .addr(ld_addr), .nbytes(ld_n),
    .dest(ld_dest), .lz(ld_lz), .busy(ld_busy), .req(ld_req), .req_addr(ld_ra), .req_take(ld_take),
    .rvalid(mem_rvalid), .rdata(mem_rdata), .we(ld_we), .waddr(ld_wa), .wdata(ld_wd));

  always @(posedge clk) if (ld_start) ld_tgt_q <= ld_target;

  // fetch-stage read ports
  reg            lb_re, wb_re;
  reg  [LBA-1:0] lb_ra;
  reg  [WBA-1:0] wb_ra;
  wire [N*8-1:0] lb_rd, wb_rd;
  zq_ram #(.W(N*8), .D(LBW), .SINGLE(1)) u_lb (
    .clk(clk), .we(ld_we && ld_tgt_q == 2'd0), .wa(ld_wa[LBA-1:0]), .wd(ld_wd),
    .re(lb_re), .ra(lb_ra), .rd(lb_rd));
  zq_ram #(.W(N*8), .D(WBW), .SINGLE(1)) u_wb (
    .clk(clk), .we(ld_we && ld_tgt_q == 2'd1), .wa(ld_wa[WBA-1:0]), .wd(ld_wd),
    .re(wb_re), .ra(wb_ra), .rd(wb_rd));
  // parameters: word 0 (B) and word 1 (M, TS, OS) of each channel in two buffers
  wire           pb_re;
  wire [PBA-1:0] pb_ra;
  wire [31:0]    pb_b, pb_m;
  zq_ram #(.W(32), .D(PBC)) u_pbb (
    .clk(clk), .we(ld_we && ld_tgt_q == 2'd2 && !ld_wa[0]), .wa(ld_wa[PBA:1]), .wd(ld_wd[31:0]),
    .re(pb_re), .ra(pb_ra), .rd(pb_b));
  zq_ram #(.W(32), .D(PBC)) u_pbm (
    .clk(clk), .we(ld_we && ld_tgt_q == 2'd2 && ld_wa[0]), .wa(ld_wa[PBA:1]), .wd(ld_wd[31:0]),
    .re(pb_re), .ra(pb_ra), .rd(pb_m));

  // ------------------------------------------------------------------ fetch (F2), segment, lanes
  // F2: the read issued last cycle
  reg            f2_v, f2_final, f2_rv, f2_first, f2_last;
  reg [1:0]      f2_wi;
  reg [2:0]      f2_lo;
  reg [HB-1:0]   f2_hi;
  reg [NB-1:0]   f2_wb;
  reg [PBA-1:0]  f2_j;
  reg [AW-1:0]   f2_oaddr;
  reg [NB-1:0]   f2_nv;
  reg [N*8-1:0]  pw0, pw1, wpw0, wpw1;

  // the segment the lanes consume, one tap (kx) per cycle
  reg            cur_v, cur_first, cur_last;
  reg [SEGB*8-1:0] cur_d;
  reg [KMAX*8-1:0] cur_w;
  reg [2:0]      cur_kx;
  reg [PBA-1:0]  cur_j;
  reg [AW-1:0]   cur_oaddr;
  reg [NB-1:0]   cur_nv;

  // lane pipeline: L1 operands, L2 accumulators (l2_last: they hold a finished block, which the
  // hold registers take at the end of this cycle)
  reg            l1_v, l1_first, l1_last;
  reg [N*9-1:0]  l1_x;
  reg signed [7:0] l1_q;
  reg [PBA-1:0]  l1_j;
  reg [AW-1:0]   l1_oaddr, l2_oaddr;
  reg [NB-1:0]   l1_nv, l2_nv;
  reg            l2_last;

  // hold registers feeding the output stage, one lane per cycle
  reg            h_v;
  wire [N*32-1:0]     h_acc_all;      // lane i in bits 32i..
  wire [N*SW-1:0]     h_s_all;
  reg [31:0]     h_b;
  reg [31:0]     h_m;
  reg [AW-1:0]   h_addr;
  reg [NB-1:0]   h_nv, h_cnt;

  wire           wr_ready;
  wire           post_en = wr_ready;
  wire           h_free = !h_v || (post_en && h_cnt == h_nv - 1'b1);
  wire           lane_stall = l2_last && !h_free;
  wire           consume = cur_v && cur_kx == k - 1'b1 && !lane_stall;
  wire           cur_free = !cur_v || consume;
  wire           f2_stuck = f2_v && f2_final && !cur_free;
  wire           lanes_idle = !f2_v && !cur_v && !l1_v && !l2_last;

  assign pb_re = l1_v && l1_last && !lane_stall;
  assign pb_ra = l1_j;

  // F1 issue (the S_COMP state), combinational
  wire signed [CW-1:0] heff_s = {{(CW-16){1'b0}}, heff};
  wire signed [CW-1:0] weff_s = {{(CW-16){1'b0}}, weff};
  wire        rowvalid = iy >= 0 && iy < heff_s;
  wire [1:0]  nseg = rowvalid ? (s + {1'b0, e}) : 2'd1;
  wire        fin  = wi == nseg - 1'b1;
  wire        issue = st == S_COMP && !f2_stuck;
  wire signed [CW-1:0] hi_raw = weff_s - col0;
  wire [HB-1:0] hi_c = hi_raw < 0 ? {HB{1'b0}} : (hi_raw > SEGB ? SEGB_H : hi_raw[HB-1:0]);
  wire [2:0]  lo_c = col0 < 0 ? 3'd0 - col0[2:0] : 3'd0;
  wire [NB-1:0] nv_c = rem >= N ? N_NB : rem[NB-1:0];

  always @(*) begin
    lb_re = issue;
    wb_re = issue;
    lb_ra = lb_c[LBA-1:0] + slot_off[LBA-1:0] + b_off[LBA-1:0] + {{(LBA-2){1'b0}}, wi};
    wb_ra = wp_w[WBA-1:0] + {{(WBA-2){1'b0}}, wi};
  end

  // segment assembly from the partial words and this cycle's read data
  wire [N*8-1:0] seg0 = f2_wi == 2'd0 ? lb_rd : pw0;
  wire [N*8-1:0] seg1 = f2_wi == 2'd1 ? lb_rd : pw1;
  wire [SEGB*8-1:0] seg_raw = {lb_rd, seg1, seg0};
  reg  [SEGB*8-1:0] seg_m;
  integer bi;
  always @(*) begin
    for (bi = 0; bi < SEGB; bi = bi + 1)
      seg_m[bi*8 +: 8] = (f2_rv && bi >= f2_lo && bi < f2_hi) ? seg_raw[bi*8 +: 8] : 8'd0;
  end
  wire [N*8-1:0]   ww0 = f2_wi == 2'd0 ? wb_rd : wpw0;
  wire [N*8-1:0]   ww1 = f2_wi == 2'd1 ? wb_rd : wpw1;
  wire [N*16-1:0]  wcat = {ww1, ww0} >> {f2_wb, 3'b000};
  // lane operands of the current tap
  reg  [N*9-1:0]   xop;
  integer li;
  always @(*) begin
    for (li = 0; li < N; li = li + 1) begin
      xop[li*9 +: 9] = s == 2'd2 ? {~u8 & cur_d[li*16 + 7], cur_d[li*16 +: 8]}
                                 : {~u8 & cur_d[li*8 + 7], cur_d[li*8 +: 8]};
    end
  end

  always @(posedge clk) begin
    if (rst) begin
      f2_v <= 1'b0; cur_v <= 1'b0; l1_v <= 1'b0; l2_last <= 1'b0;
    end else begin
      // F2
      if (f2_v && !f2_final) begin
        if (f2_wi == 2'd0) begin pw0 <= lb_rd; wpw0 <= wb_rd; end
        if (f2_wi == 2'd1) begin pw1 <= lb_rd; wpw1 <= wb_rd; end
      end
      if (issue) begin
        f2_v <= 1'b1; f2_final <= fin; f2_wi <= wi; f2_rv <= rowvalid; f2_lo <= lo_c; f2_hi <= hi_c;
        f2_wb <= wp_b; f2_first <= c == 16'd0 && ky == 3'd0; f2_last <= c == cg - 1'b1 && ky == k - 1'b1;
        f2_j <= j[PBA-1:0]; f2_oaddr <= oaddr_b; f2_nv <= nv_c;
      end else if (!f2_stuck) begin
        f2_v <= 1'b0;
      end
      // current segment
      if (f2_v && f2_final && cur_free) begin
        cur_v <= 1'b1; cur_d <= seg_m; cur_w <= wcat[KMAX*8-1:0]; cur_kx <= 3'd0;
        cur_first <= f2_first; cur_last <= f2_last; cur_j <= f2_j; cur_oaddr <= f2_oaddr; cur_nv <= f2_nv;
      end else if (cur_v && !lane_stall) begin
        cur_d <= cur_d >> 8; cur_w <= cur_w >> 8; cur_kx <= cur_kx + 1'b1;
        if (consume) cur_v <= 1'b0;
      end
      if (!lane_stall) begin
        // L1
        l1_v <= cur_v;
        l1_x <= xop;
        l1_q <= cur_w[7:0];
        l1_first <= cur_first && cur_kx == 3'd0;
        l1_last <= cur_last && cur_kx == k - 1'b1;
        l1_j <= cur_j; l1_oaddr <= cur_oaddr; l1_nv <= cur_nv;
        // L2 bookkeeping
        l2_last <= l1_v && l1_last;
        l2_oaddr <= l1_oaddr; l2_nv <= l1_nv;
      end
    end
  end

  // the multiply-accumulate lanes (the accumulator sits in the DSP) and their hold registers,
  // loaded at the end of a block
  wire h_load = l2_last && h_free;
  genvar gl;
  generate
    for (gl = 0; gl < N; gl = gl + 1) begin : lane
      wire signed [8:0]  xv = l1_x[gl*9 +: 9];
      wire signed [31:0] pr = xv * l1_q;
      wire signed [SW-1:0] xe = {{(SW-9){xv[8]}}, xv};
      reg  signed [31:0] acc;
      reg  signed [SW-1:0] sacc, hs;
      reg  signed [31:0] ha;
      always @(posedge clk) begin
        if (!lane_stall && l1_v) begin
          acc  <= (l1_first ? 32'sd0 : acc) + pr;
          sacc <= l1_first ? xe : sacc + xe;
        end
        if (h_load) begin
          ha <= acc;
          hs <= sacc;
        end
      end
      assign h_acc_all[gl*32 +: 32] = ha;
      assign h_s_all[gl*SW +: SW] = hs;
    end
  endgenerate

  always @(posedge clk) begin
    if (rst) begin
      h_v <= 1'b0;
    end else begin
      if (h_load) begin
        h_v <= 1'b1;
        h_b <= pb_b; h_m <= pb_m; h_addr <= l2_oaddr; h_nv <= l2_nv; h_cnt <= {NB{1'b0}};
      end else if (h_v && post_en) begin
        h_addr <= h_addr + {{(AW-2){1'b0}}, o16, ~o16};
        h_cnt <= h_cnt + 1'b1;
        if (h_cnt == h_nv - 1'b1) h_v <= 1'b0;
      end
    end
  end

  // ------------------------------------------------------------------ output stage and writer
  wire          p_ov, p_busy;
  wire [AW-1:0] p_addr;
  wire [15:0]   p_data;
  zq_post #(.SW(SW), .AW(AW), .LEAKY_DSP(N <= 4)) u_post (
    .clk(clk), .rst(rst), .en(post_en), .act(act), .o16(o16), .iv(h_v), .iacc(h_acc_all[h_cnt*32 +: 32]),
    .is(h_s_all[h_cnt*SW +: SW]), .im(h_m[15:0]), .its(h_m[23:16]), .ios(h_m[31:24]), .ib(h_b),
    .iaddr(h_addr), .ov(p_ov), .oaddr(p_addr), .odata(p_data), .busy(p_busy));

  reg         wr_flush;
  wire [29:0] wr_wa;
  wire [31:0] wr_wd;
  wire [3:0]  wr_ws;
  wire        wr_idle;
  zq_writer #(.DEPTH(2), .AW(AW)) u_wr (
    .clk(clk), .rst(rst), .iv(p_ov), .iaddr(p_addr), .idata(p_data), .i16(o16), .flush(wr_flush),
    .ready(wr_ready), .wv(wr_wv), .wa(wr_wa), .wd(wr_wd), .ws(wr_ws), .wtake(wr_wv && mem_ready),
    .idle(wr_idle));

  assign mem_valid = wr_wv || ld_req;
  assign mem_we    = wr_wv;
  assign mem_addr  = wr_wv ? wr_wa : ld_ra;
  assign mem_wdata = wr_wd;
  assign mem_wstrb = wr_wv ? wr_ws : 4'd0;

  wire all_idle = lanes_idle && !h_v && !p_busy;

  // ------------------------------------------------------------------ the sequencer
  wire signed [CW-1:0] k_s   = {{(CW-3){1'b0}}, k};
  wire signed [CW-1:0] pad_s = {{(CW-3){1'b0}}, pad};
  wire signed [CW-1:0] ns_s  = s == 2'd2 ? 2 * N : N;       // input columns a block steps over
  // next output row: the ring's first slot moves on by the stride (modulo k)
  reg  [2:0]  bs_n;
  reg  [LBA:0] bo_n;
  always @(*) begin
    bs_n = base_slot + {1'b0, s};
    bo_n = base_off + ps;
    if (bs_n >= k) begin bs_n = bs_n - k; bo_n = bo_n - kp; end
    if (bs_n >= k) begin bs_n = bs_n - k; bo_n = bo_n - kp; end
  end
  wire [15:0] nbt_c = (nbtot - tb) < nb ? (nbtot - tb) : nb;
  // the weights of the next kernel row: k bytes on (k may exceed N by one)
  wire [NB:0]  wpk   = {1'b0, wp_b} + k;
  wire         wpk2  = wpk >= 2 * N;
  wire         wpk1  = wpk >= N;
  wire [NB-1:0] wpk_b = wpk2 ? wpk - 2 * N : (wpk1 ? wpk - N : wpk);
  wire [WBA:0] wpk_w = wp_w + (wpk2 ? 2'd2 : {1'b0, wpk1});
  wire signed [CW-1:0] cend = cx0 + $signed({{(CW-16){1'b0}}, nbNs}) + k_s - 1;
  // range checks of the tensors (error 2), one adder for all four
  wire [31:0] chk_base = su == 5'd15 ? r_in : (su == 5'd16 ? r_out : (su == 5'd17 ? r_wt : r_par));
  wire [47:0] chk_add  = (su == 5'd16 && o16) ? {md_res[46:0], 1'b0} : md_res;
  wire        chk_bad  = {16'd0, chk_base} + chk_add > {15'd0, lim};

  task fail(input [7:0] code);
    begin
      st <= S_IDLE; st_busy <= 1'b0; st_done <= 1'b1; st_err <= 1'b1; st_code <= code;
    end
  endtask

  task md(input is_div, input [31:0] a, input [15:0] bb);
    begin
      md_start <= 1'b1; md_wait <= 1'b1; md_div <= is_div; md_a <= a; md_b <= bb;
    end
  endtask

  always @(posedge clk) begin
    md_start <= 1'b0;
    ld_start <= 1'b0;
    wr_flush <= 1'b0;
    if (rst) begin
      st <= S_IDLE; st_busy <= 1'b0; st_done <= 1'b0; st_err <= 1'b0; st_code <= 8'd0;
      cycles <= 32'd0; md_wait <= 1'b0;
    end else begin
      if (st_busy) cycles <= cycles + 1'b1;
      case (st)
        S_IDLE: if (start) begin
          st <= S_SETUP; su <= 5'd0; md_wait <= 1'b0;
          st_busy <= 1'b1; st_done <= 1'b0; st_err <= 1'b0; st_code <= 8'd0; cycles <= 32'd0;
        end

        // ---- setup: checks and the derived sizes, one multiply or divide per step
        S_SETUP: if (md_wait) begin
          if (md_done) begin
            md_wait <= 1'b0;
            su <= su + 1'b1;
            case (su)
              5'd1: if (md_rem != 0) fail(8'd1); else cg <= md_res[15:0];
              5'd2: if (md_rem != 0) fail(8'd1); else og <= md_res[15:0];
              5'd3: if (md_res > WBB) fail(8'd1); else cgkk <= md_res[15:0];
              5'd4: chmax <= md_res > PBC ? PBC_P : md_res[PBA:0];
              5'd5: plane <= md_res[AW-1:0];
              5'd6: oplane <= md_res[AW-1:0];
              5'd7: nbtot <= md_res[15:0];
              5'd8: if (md_res > LBW) fail(8'd1); else md_a <= md_res[31:0];   // ck, for step 9
              5'd9: begin
                // a row slot of pitch = nb*s + e words per (channel, kernel row) must fit LBW / ck
                if (md_res[23:0] < {22'd0, s} + {23'd0, e}) fail(8'd1);
                else begin
                  nb <= ((md_res[15:0] - {15'd0, e}) >> (s - 1'b1)) < nbtot ?
                        ((md_res[15:0] - {15'd0, e}) >> (s - 1'b1)) : nbtot;
                end
              end
              5'd10: kp <= md_res[LBA:0];
              5'd11: begin cgkk_w <= md_res[WBA:0]; cgkk_b <= md_rem[NB-1:0]; end
              5'd12: cgplane <= md_res[AW-1:0];
              5'd13: nbN <= md_res[15:0];
              5'd14: padw <= md_res[AW-1:0];
              5'd15: if (chk_bad || |(r_in[1:0] | r_out[1:0] | r_wt[1:0] | r_par[1:0])) fail(8'd2);
              5'd17: if (chk_bad) fail(8'd2);
              5'd16: if (chk_bad) fail(8'd2); else opb <= o16 ? {oplane[AW-2:0], 1'b0} : oplane;
              5'd18: if (chk_bad) fail(8'd2);
                     else begin
                       g <= 16'd0; og_left <= og; in_g <= r_in[AW-1:0]; w_ptr <= r_wt[AW-1:0];
                       p_ptr <= r_par[AW-1:0]; o_ptr <= r_out[AW-1:0];
                       st <= S_CHUNK;
                     end
              default: ;
            endcase
          end
        end else begin
          case (su)
            5'd0: begin
              if (r_k == 0 || r_k > KMAX || r_s == 0 || r_s > 2 || r_pad >= r_k || r_g == 0 ||
                  r_c == 0 || r_h == 0 || r_w == 0 || r_o == 0 || r_ho == 0 || r_wo == 0 ||
                  r_c[16] || r_h[16] || r_w[16] || r_o[16] || r_ho[16] || r_wo[16] || r_g[16] ||
                  act == 2'd3)
                fail(8'd1);
              else su <= 5'd1;
            end
            5'd1: md(1'b1, {16'd0, r_c[15:0]}, r_g[15:0]);
            5'd2: md(1'b1, {16'd0, r_o[15:0]}, r_g[15:0]);
            5'd3: md(1'b0, {16'd0, cg}, {11'd0, kk});
            5'd4: md(1'b1, WBB, cgkk);
            5'd5: md(1'b0, {16'd0, r_h[15:0]}, r_w[15:0]);
            5'd6: md(1'b0, {16'd0, r_ho[15:0]}, r_wo[15:0]);
            5'd7: begin
              // a 1x1 stride-1 layer without padding is one long row: full lanes on small planes
              if (k == 3'd1 && s == 2'd1 && pad == 3'd0 && r_ho == r_h && r_wo == r_w && plane < 32'h10000) begin
                heff <= 16'd1; weff <= plane[15:0]; hoeff <= 16'd1; woeff <= plane[15:0];
                orow <= {{(AW-16){1'b0}}, plane[15:0]} << o16;
                md(1'b1, plane + N - 1, N16);
              end else begin
                heff <= r_h[15:0]; weff <= r_w[15:0]; hoeff <= r_ho[15:0]; woeff <= r_wo[15:0];
                orow <= {{(AW-16){1'b0}}, r_wo[15:0]} << o16;
                md(1'b1, {16'd0, r_wo[15:0]} + N - 1, N16);
              end
            end
            5'd8: md(1'b0, {16'd0, cg}, {13'd0, k});
            5'd9: md(1'b1, LBW, md_a[15:0]);
            5'd10: begin
              pitch <= (s == 2'd2 ? {nb[LBA-1:0], 1'b0} : nb[LBA:0]) + {{LBA{1'b0}}, e};
              md(1'b0, (s == 2'd2 ? {15'd0, nb, 1'b0} : {16'd0, nb}) + {31'd0, e}, {13'd0, k});
            end
            5'd11: md(1'b1, {16'd0, cgkk}, N16);
            5'd12: md(1'b0, plane, cg);
            5'd13: md(1'b0, {16'd0, nb}, N16);
            5'd14: md(1'b0, {16'd0, weff}, {13'd0, pad});
            5'd15: md(1'b0, plane, r_c[15:0]);
            5'd16: md(1'b0, oplane, r_o[15:0]);
            5'd17: md(1'b0, {16'd0, cgkk}, r_o[15:0]);
            5'd18: md(1'b0, 32'd8, r_o[15:0]);
            default: ;
          endcase
        end

        // ---- a chunk of output channels: weights and parameters into their buffers
        S_CHUNK: if (lanes_idle) begin
          n <= og_left < {{(15-PBA){1'b0}}, chmax} ? og_left : {{(15-PBA){1'b0}}, chmax};
          st <= S_CHMUL;
        end
        S_CHMUL: if (!md_wait) begin
          md(1'b0, {16'd0, cgkk}, n);
        end else if (md_done) begin
          md_wait <= 1'b0;
          ld_n <= md_res[23:0];
          st <= S_LDW; ld_issued <= 1'b0;
        end
        S_LDW: if (!ld_issued) begin
          ld_start <= 1'b1; ld_issued <= 1'b1; ld_raw <= 1'b0; ld_addr <= w_ptr; ld_dest <= 0;
          ld_lz <= 3'd0; ld_target <= 2'd1;
        end else if (!ld_busy && !ld_start) begin
          w_ptr <= w_ptr + ld_n;
          ld_n <= {5'd0, n, 3'd0};
          st <= S_LDP; ld_issued <= 1'b0;
        end
        S_LDP: if (!ld_issued) begin
          ld_start <= 1'b1; ld_issued <= 1'b1; ld_raw <= 1'b1; ld_addr <= p_ptr; ld_dest <= 0;
          ld_lz <= 3'd0; ld_target <= 2'd2;
        end else if (!ld_busy && !ld_start) begin
          p_ptr <= p_ptr + {n, 3'd0};
          tb <= 16'd0; x0 <= 16'd0; cx0 <= -pad_s;
          st <= S_TILE;
        end

        // ---- a tile of output columns: restart the ring of input rows
        S_TILE: begin
          nbt <= nbt_c;
          st <= S_ROW;
          y <= 16'd0; iy0 <= -pad_s; next_row <= -pad_s;
          next_slot <= 3'd0; next_off <= 0; base_slot <= 3'd0; base_off <= 0;
          orowoff <= {{(AW-16){1'b0}}, x0} << o16;
          colstart <= cx0 < 0 ? 0 : cx0;
          // columns [cx0, cx0 + nb*N*s + k - 1) are read; those inside the input are loaded
          colend <= cend < weff_s ? cend : weff_s;
          lz <= cx0 < 0 ? 3'd0 - cx0[2:0] : 3'd0;
          row_ext <= in_g + (cx0 < 0 ? {AW{1'b0}} : {{(AW-CW){1'b0}}, cx0}) - padw;
        end

        // ---- an output row: load the input rows it needs that are not in the ring yet
        S_ROW: begin
          if (next_row <= iy0 + k_s - 1) begin
            if (next_row >= iy0 && next_row >= 0 && next_row < heff_s && colend > colstart) begin
              st <= S_RLD; lc <= 16'd0; l_ext <= row_ext; l_dst <= next_off;
            end else begin
              next_row <= next_row + 1;
              if (next_slot + 1'b1 == k) begin next_slot <= 3'd0; next_off <= 0; end
              else begin next_slot <= next_slot + 1'b1; next_off <= next_off + pitch; end
              row_ext <= row_ext + weff;
            end
          end else begin
            st <= S_CINIT;
          end
        end
        S_RLD: if (!ld_busy && !ld_start) begin
          if (lc == cg) begin
            next_row <= next_row + 1;
            if (next_slot + 1'b1 == k) begin next_slot <= 3'd0; next_off <= 0; end
            else begin next_slot <= next_slot + 1'b1; next_off <= next_off + pitch; end
            row_ext <= row_ext + weff;
            st <= S_ROW;
          end else begin
            ld_start <= 1'b1; ld_raw <= 1'b0; ld_addr <= l_ext; ld_n <= {8'd0, ld_nbytes};
            ld_dest <= {{(DA-LBA-1){1'b0}}, l_dst}; ld_lz <= lz; ld_target <= 2'd0;
            lc <= lc + 1'b1; l_ext <= l_ext + plane; l_dst <= l_dst + kp;
          end
        end

        // ---- compute the output row: every channel of the chunk, every block of the tile
        S_CINIT: begin
          j <= 16'd0; b <= 16'd0; c <= 16'd0; ky <= 3'd0; wi <= 2'd0;
          lb_c <= 0; slot <= base_slot; slot_off <= base_off; b_off <= 0; iy <= iy0; col0 <= cx0;
          wp_w <= 0; wp_b <= 0; wc_w <= 0; wc_b <= 0;
          oaddr_j <= o_ptr + orowoff; oaddr_b <= o_ptr + orowoff;
          rem <= $signed({{(CW-16){1'b0}}, woeff}) - $signed({{(CW-16){1'b0}}, x0});
          st <= S_COMP;
        end
        S_COMP: if (issue) begin
          if (!fin) begin
            wi <= wi + 1'b1;
          end else begin
            wi <= 2'd0;
            if (ky != k - 1'b1) begin
              ky <= ky + 1'b1; iy <= iy + 1;
              if (slot + 1'b1 == k) begin slot <= 3'd0; slot_off <= 0; end
              else begin slot <= slot + 1'b1; slot_off <= slot_off + pitch; end
              wp_b <= wpk_b; wp_w <= wpk_w;
            end else begin
              ky <= 3'd0; iy <= iy0; slot <= base_slot; slot_off <= base_off;
              if (c != cg - 1'b1) begin
                c <= c + 1'b1; lb_c <= lb_c + kp;
                wp_b <= wpk_b; wp_w <= wpk_w;
              end else begin
                c <= 16'd0; lb_c <= 0;
                if (b != nbt - 1'b1) begin
                  b <= b + 1'b1; b_off <= b_off + s; col0 <= col0 + ns_s;
                  oaddr_b <= oaddr_b + (o16 ? 2 * N : N); rem <= rem - N;
                  wp_w <= wc_w; wp_b <= wc_b;
                end else begin
                  b <= 16'd0; b_off <= 0; col0 <= cx0;
                  rem <= $signed({{(CW-16){1'b0}}, woeff}) - $signed({{(CW-16){1'b0}}, x0});
                  if (j != n - 1'b1) begin
                    j <= j + 1'b1;
                    if ({1'b0, wc_b} + cgkk_b >= N) begin
                      wc_b <= wc_b + cgkk_b - N; wc_w <= wc_w + cgkk_w + 1'b1;
                      wp_b <= wc_b + cgkk_b - N; wp_w <= wc_w + cgkk_w + 1'b1;
                    end else begin
                      wc_b <= wc_b + cgkk_b; wc_w <= wc_w + cgkk_w;
                      wp_b <= wc_b + cgkk_b; wp_w <= wc_w + cgkk_w;
                    end
                    oaddr_j <= oaddr_j + opb; oaddr_b <= oaddr_j + opb;
                  end else begin
                    st <= S_RNEXT;
                  end
                end
              end
            end
          end
        end
        S_RNEXT: begin
          if (y + 1'b1 == hoeff) begin
            st <= S_TNEXT;
          end else begin
            y <= y + 1'b1; iy0 <= iy0 + $signed({{(CW-2){1'b0}}, s}); base_slot <= bs_n; base_off <= bo_n;
            orowoff <= orowoff + orow;
            st <= S_ROW;
          end
        end
        S_TNEXT: begin
          if (tb + nbt == nbtot) begin
            st <= S_KNEXT;
          end else begin
            tb <= tb + nb; x0 <= x0 + nbN; cx0 <= cx0 + $signed({{(CW-16){1'b0}}, nbNs});
            st <= S_TILE;
          end
        end
        S_KNEXT: begin
          og_left <= og_left - n;
          md(1'b0, opb_32, n);
          st <= S_KMUL;
        end
        S_KMUL: if (md_done) begin
          md_wait <= 1'b0;
          o_ptr <= o_ptr + md_res[AW-1:0];
          if (og_left != 16'd0) st <= S_CHUNK;
          else st <= S_GNEXT;
        end
        S_GNEXT: begin
          if (g + 1'b1 == r_g[15:0]) begin
            st <= S_DRAIN;
          end else begin
            g <= g + 1'b1; in_g <= in_g + cgplane; og_left <= og;
            st <= S_CHUNK;
          end
        end
        S_DRAIN: if (all_idle) begin
          wr_flush <= 1'b1;
          st <= S_FLUSH;
        end
        S_FLUSH: if (wr_idle && !wr_flush) begin
          st <= S_IDLE; st_busy <= 1'b0; st_done <= 1'b1;
        end else if (!wr_idle && !wr_flush) begin
          wr_flush <= 1'b1;
        end
        default: st <= S_IDLE;
      endcase
    end
  end
endmodule
