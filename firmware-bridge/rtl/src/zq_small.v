// The conv accelerator's core for small parts (the UP5K configuration): one convolution layer per
// start (docs/formats/accelerator.md), computed as docs/formats/fixed-point.md "Convolution" says.
// Architecture: docs/decisions/accelerator-rtl.md.
//
// N lanes compute N neighbouring output pixels of one output channel, one tap per cycle each. Every
// lane reads its input byte from its own copy of the line buffer (single-port SPRAM, one byte a
// cycle), all lanes share the weight byte read from the weight buffer. The line buffer holds, for a
// ring of k input rows, every input channel of the group in full width (k*Cg*W bytes); the weight
// buffer the weights of a chunk of output channels, the parameter buffer their B, M, TS, OS. The
// lanes start each accumulator at B; at the end of a block of pixels the accumulators and window sums
// go to the hold registers, from which the output stage takes one pixel every two cycles.
`include "zq_config.vh"
module zq_small (
  input  wire        clk,
  input  wire        rst,
  // register file (word offsets of docs/formats/accelerator.md)
  input  wire        reg_we,
  input  wire [4:0]  reg_addr,
  input  wire [31:0] reg_wdata,
  output reg  [31:0] reg_rdata,
  // external memory: 32-bit words, requests accepted when ready, read data returned in order
  output wire        mem_valid,
  output wire        mem_we,
  output wire [29:0] mem_addr,
  output wire [31:0] mem_wdata,
  output wire [3:0]  mem_wstrb,
  input  wire        mem_ready,
  input  wire        mem_rvalid,
  input  wire [31:0] mem_rdata,
  input  wire [31:0] mem_bytes,    // size of the external memory (error 2 past it)
  output wire        busy
);
  localparam N    = `ZQ_LANES;
  localparam KMAX = `ZQ_KMAX;
  localparam LBB  = `ZQ_LB_BYTES;
  localparam WBB  = `ZQ_WB_BYTES;
  localparam PBC  = `ZQ_PB_CH;
  localparam AW   = `ZQ_AW;
  localparam LBA  = $clog2(LBB);
  localparam WBA  = $clog2(WBB);
  localparam PBA  = $clog2(PBC);
  localparam SW   = WBA + 10;            // window sums: |S| <= 255 * Cg*k*k, Cg*k*k <= WBB
  localparam NB   = $clog2(N + 1);
  localparam DA   = (LBA > WBA ? LBA : WBA) + 1;   // loader destinations (bytes, or parameter words)
  localparam CW   = 19;                  // signed row and column coordinates
  localparam [15:0]   N16   = N;
  localparam [7:0]    KMAX8 = KMAX;
  localparam [PBA:0]  PBC_P = PBC;
  localparam [32:0]   AMAX  = (AW >= 32) ? 33'h1_0000_0000 : (33'd1 << AW);

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
  wire [2:0]  k    = r_k[2:0];
  wire [1:0]  s    = r_s[1:0];
  wire [2:0]  pad  = r_pad[2:0];
  wire        u8   = r_flags[0];
  wire [1:0]  act  = r_flags[2:1];
  wire        o16  = r_flags[3];
  reg  [4:0]  kk;
  always @(*) begin
    case (k)
      3'd1: kk = 5'd1;  3'd2: kk = 5'd4;  3'd3: kk = 5'd9;  3'd4: kk = 5'd16;
      default: kk = 5'd25;
    endcase
  end
  wire [32:0] lim = {1'b0, mem_bytes} > AMAX ? AMAX : {1'b0, mem_bytes};
  wire signed [CW-1:0] k_s   = {{(CW-3){1'b0}}, k};
  wire signed [CW-1:0] pad_s = {{(CW-3){1'b0}}, pad};
  wire signed [CW-1:0] h_s   = {{(CW-16){1'b0}}, r_h[15:0]};
  wire signed [CW-1:0] w_s   = {{(CW-16){1'b0}}, r_w[15:0]};

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
  localparam S_IDLE = 4'd0, S_SETUP = 4'd1, S_CHUNK = 4'd2, S_CHMUL = 4'd3, S_LDW = 4'd4,
             S_LDP = 4'd5, S_ROW = 4'd6, S_RLD = 4'd7, S_CINIT = 4'd8, S_COMP = 4'd9,
             S_RNEXT = 4'd10, S_KNEXT = 4'd11, S_KMUL = 4'd12, S_GNEXT = 4'd13, S_DRAIN = 4'd14,
             S_FLUSH = 4'd15;
  reg [3:0]  st;
  reg [3:0]  su;          // setup step
  reg        md_wait;

  // setup results
  reg [15:0]   cg, og;
  reg [WBA:0]  cgkk;
  reg [PBA:0]  chmax;
  reg [31:0]   plane, oplane;
  reg [AW-1:0] opb, padw, cgplane;
  reg [LBA:0]  sp;        // slot pitch: Cg*W bytes
  reg [16:0]   owb;       // bytes of an output row: Wo * (1 or 2)

  // run state: groups, chunks, rows
  reg [15:0]   g, og_left;
  reg [PBA:0]  n;
  reg [AW-1:0] in_g, w_ptr, p_ptr, o_ptr;
  reg          ld_issued;
  reg [15:0]   y;
  reg [1:0]    rstep;
  reg signed [CW-1:0] iy0, next_row;
  reg [2:0]    base_slot, next_slot;
  reg [LBA:0]  base_off, next_off;
  reg [AW-1:0] row_ext, l_ext, orow;
  reg [15:0]   lc;
  // compute loop (issue stage)
  reg [PBA-1:0] j;
  reg [15:0]   x, c;
  reg [2:0]    ky, kx, slot;
  reg [LBA:0]  so, cw;
  reg signed [CW-1:0] iy, colb, col;
  reg [WBA-1:0] wa, wj;
  reg [AW-1:0] oj, ox;

  // ------------------------------------------------------------------ loader and buffers
  wire          ld_busy, ld_req, ld_we;
  wire [29:0]   ld_ra;
  wire [DA-1:0] ld_wa;
  wire [31:0]   ld_wd;
  reg           ld_start, ld_raw, ld_cont;
  reg  [AW-1:0] ld_addr;
  reg  [23:0]   ld_n;
  reg  [DA-1:0] ld_dest;
  reg  [1:0]    ld_target;   // 0 line buffer, 1 weights, 2 parameters
  reg  [1:0]    ld_tgt_q;
  wire          wr_wv;
  wire          ld_take = ld_req && !wr_wv && mem_ready;

  zq_bload #(.AW(AW), .DA(DA), .F(4)) u_ld (
    .clk(clk), .rst(rst), .start(ld_start), .raw(ld_raw), .cont(ld_cont), .addr(ld_addr),
    .nbytes(ld_n), .dest(ld_dest), .busy(ld_busy), .req(ld_req), .req_addr(ld_ra),
    .req_take(ld_take), .rvalid(mem_rvalid), .rdata(mem_rdata), .we(ld_we), .waddr(ld_wa),
    .wdata(ld_wd));

  always @(posedge clk) if (ld_start) ld_tgt_q <= ld_target;

  // issue-stage reads: one line-buffer copy per lane, the weight buffer
  wire          issue;
  wire [N*8-1:0] lb_rd;
  wire [7:0]    wb_rd;
  wire [LBA:0]  rowp = cw + so;
  wire          rowvalid = iy >= 0 && iy < h_s;
  wire signed [CW-1:0] ns_s = s == 2'd2 ? 2 * N : N;        // input columns a block steps over
  reg  [N-1:0]  cvalid;
  genvar gl;
  generate
    for (gl = 0; gl < N; gl = gl + 1) begin : lbc
      wire signed [CW-1:0] coli = col + (s == 2'd2 ? 2 * gl : gl);
      wire [LBA-1:0] ra = rowp[LBA-1:0] + coli[LBA-1:0];
      always @(*) cvalid[gl] = rowvalid && coli >= 0 && coli < w_s;
      zq_bbuf #(.BYTES(LBB)) u_lb (
        .clk(clk), .we(ld_we && ld_tgt_q == 2'd0), .wa(ld_wa[LBA-1:0]), .wd(ld_wd[7:0]),
        .re(issue), .ra(ra), .rd(lb_rd[gl*8 +: 8]));
    end
  endgenerate
  zq_bbuf #(.BYTES(WBB)) u_wb (
    .clk(clk), .we(ld_we && ld_tgt_q == 2'd1), .wa(ld_wa[WBA-1:0]), .wd(ld_wd[7:0]),
    .re(issue), .ra(wa), .rd(wb_rd));

  // parameters: word 0 (B) and word 1 (M, TS, OS) of each channel in two buffers
  wire           pbb_re, pbm_re;
  wire [PBA-1:0] pb_ra;
  wire [31:0]    pb_b, pb_m;
  zq_ram #(.W(32), .D(PBC)) u_pbb (
    .clk(clk), .we(ld_we && ld_tgt_q == 2'd2 && !ld_wa[0]), .wa(ld_wa[PBA:1]), .wd(ld_wd),
    .re(pbb_re), .ra(pb_ra), .rd(pb_b));
  zq_ram #(.W(32), .D(PBC)) u_pbm (
    .clk(clk), .we(ld_we && ld_tgt_q == 2'd2 && ld_wa[0]), .wa(ld_wa[PBA:1]), .wd(ld_wd),
    .re(pbm_re), .ra(pb_ra), .rd(pb_m));

  // ------------------------------------------------------------------ lane pipeline
  // R: the buffers' read data; X: lane operands (parameter reads issued); P: products; then the
  // accumulators. A finished block (P holding its last tap) waits there while the hold registers
  // are full: lane_stall freezes the pipeline and stops issue.
  reg            r_v, r_first, r_last;
  reg [N-1:0]    r_cv;
  reg [PBA-1:0]  r_j;
  reg [AW-1:0]   r_ox;
  reg [NB-1:0]   r_nv;
  reg            x_v, x_first, x_last;
  reg [N*9-1:0]  x_op;
  reg signed [7:0] x_q;
  reg [PBA-1:0]  x_j;
  reg [AW-1:0]   x_ox;
  reg [NB-1:0]   x_nv;
  reg            p_v, p_first, p_last;
  reg [AW-1:0]   p_ox;
  reg [NB-1:0]   p_nv;

  reg            h_v;
  reg [31:0]     h_m;
  reg [AW-1:0]   h_addr;
  reg [NB-1:0]   h_nv, h_cnt;
  wire [N*32-1:0] h_acc_all;
  wire [N*SW-1:0] h_s_all;
  wire           post_take;
  wire           h_free = !h_v || (post_take && h_cnt == h_nv - 1'b1);
  wire           lane_stall = p_v && p_last && !h_free;
  wire           h_load = p_v && p_last && h_free;
  wire           lanes_idle = !r_v && !x_v && !p_v;

  assign pbb_re = x_v && x_first && !lane_stall;
  assign pbm_re = x_v && x_last && !lane_stall;
  assign pb_ra  = x_j;

  // the block the issue stage is on: output address and valid lanes
  wire [16:0]   wleft = {1'b0, r_wo[15:0]} - {1'b0, x};
  wire [NB-1:0] nv_c = wleft >= N ? N[NB-1:0] : wleft[NB-1:0];
  wire          f_first = c == 16'd0 && ky == 3'd0 && kx == 3'd0;
  wire          f_last  = c == cg - 1'b1 && ky == k - 1'b1 && kx == k - 1'b1;

  integer li;
  always @(posedge clk) begin
    if (rst) begin
      r_v <= 1'b0; x_v <= 1'b0; p_v <= 1'b0;
    end else if (!lane_stall) begin
      r_v <= issue; r_first <= f_first; r_last <= f_last; r_cv <= cvalid;
      r_j <= j; r_ox <= ox; r_nv <= nv_c;
      x_v <= r_v; x_first <= r_first; x_last <= r_last; x_j <= r_j; x_ox <= r_ox; x_nv <= r_nv;
      for (li = 0; li < N; li = li + 1)
        x_op[li*9 +: 9] <= r_cv[li] ? {~u8 & lb_rd[li*8 + 7], lb_rd[li*8 +: 8]} : 9'd0;
      x_q <= wb_rd;
      p_v <= x_v; p_first <= x_first; p_last <= x_last; p_ox <= x_ox; p_nv <= x_nv;
    end
  end

  generate
    for (gl = 0; gl < N; gl = gl + 1) begin : lane
      wire signed [8:0]    xv = x_op[gl*9 +: 9];
      wire signed [SW-1:0] xe = {{(SW-9){xv[8]}}, xv};
      reg  signed [16:0]   pr;
      reg  signed [SW-1:0] px;
      reg  signed [31:0]   acc, ha;
      reg  signed [SW-1:0] sacc, hs;
      wire signed [31:0]   acc_n = (p_first ? $signed(pb_b) : acc) + {{15{pr[16]}}, pr};
      wire signed [SW-1:0] s_n   = (p_first ? {SW{1'b0}} : sacc) + px;
      always @(posedge clk) begin
        if (!lane_stall) begin
          pr <= xv * x_q;
          px <= xe;
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
      h_v <= 1'b1; h_m <= pb_m; h_addr <= p_ox; h_nv <= p_nv; h_cnt <= {NB{1'b0}};
    end else if (post_take) begin
      h_addr <= h_addr + {{(AW-2){1'b0}}, o16, ~o16};
      h_cnt <= h_cnt + 1'b1;
      if (h_cnt == h_nv - 1'b1) h_v <= 1'b0;
    end
  end

  // ------------------------------------------------------------------ output stage and writer
  wire          p_ov, p_busy, wr_ready;
  wire [AW-1:0] p_addr;
  wire [15:0]   p_data;
  zq_post2 #(.SW(SW), .AW(AW)) u_post (
    .clk(clk), .rst(rst), .en(wr_ready), .act(act), .o16(o16), .iv(h_v), .take(post_take),
    .iacc(h_acc_all[h_cnt*32 +: 32]), .is(h_s_all[h_cnt*SW +: SW]), .im(h_m[15:0]),
    .its(h_m[23:16]), .ios(h_m[31:24]), .iaddr(h_addr), .ov(p_ov), .oaddr(p_addr), .odata(p_data),
    .busy(p_busy));

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
  // range checks of the tensors (error 2), one adder for all four
  wire [31:0] chk_base = su == 4'd9 ? r_in : (su == 4'd10 ? r_out : (su == 4'd11 ? r_wt : r_par));
  wire [47:0] chk_add  = (su == 4'd10 && o16) ? {md_res[46:0], 1'b0} : md_res;
  wire        chk_bad  = {16'd0, chk_base} + chk_add > {15'd0, lim};

  // the compute loop's next step
  wire        kx_end = kx == k - 1'b1;
  wire        ky_end = ky == k - 1'b1;
  wire        c_end  = c == cg - 1'b1;
  wire        x_end  = {1'b0, x} + N >= {1'b0, r_wo[15:0]};
  wire        j_end  = {1'b0, j} == n - 1'b1;
  assign issue = st == S_COMP && !lane_stall;

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
          st <= S_SETUP; su <= 4'd0; md_wait <= 1'b0;
          st_busy <= 1'b1; st_done <= 1'b0; st_err <= 1'b0; st_code <= 8'd0; cycles <= 32'd0;
        end

        // ---- setup: checks and the derived sizes, one multiply or divide per step
        S_SETUP: if (md_wait) begin
          if (md_done) begin
            md_wait <= 1'b0;
            su <= su + 1'b1;
            case (su)
              4'd1: if (md_rem != 0) fail(8'd1); else cg <= md_res[15:0];
              4'd2: if (md_rem != 0) fail(8'd1); else og <= md_res[15:0];
              4'd3: if (md_res > WBB) fail(8'd1); else cgkk <= md_res[WBA:0];
              4'd4: chmax <= md_res > PBC ? PBC_P : md_res[PBA:0];
              4'd5: plane <= md_res[31:0];
              4'd6: oplane <= md_res[31:0];
              4'd7: md_a <= md_res[31:0];                 // Cg*W, for step 8
              4'd8: if (md_res > LBB) fail(8'd1); else sp <= md_a[LBA:0];
              4'd9: if (chk_bad || |(r_in[1:0] | r_out[1:0] | r_wt[1:0] | r_par[1:0])) fail(8'd2);
              4'd10: if (chk_bad) fail(8'd2); else opb <= o16 ? {oplane[AW-2:0], 1'b0} : oplane[AW-1:0];
              4'd11: if (chk_bad) fail(8'd2);
              4'd12: if (chk_bad) fail(8'd2);
              4'd13: cgplane <= md_res[AW-1:0];
              4'd14: begin
                padw <= md_res[AW-1:0];
                owb <= o16 ? {r_wo[15:0], 1'b0} : {1'b0, r_wo[15:0]};
                g <= 16'd0; og_left <= og; in_g <= r_in[AW-1:0]; w_ptr <= r_wt[AW-1:0];
                p_ptr <= r_par[AW-1:0]; o_ptr <= r_out[AW-1:0];
                st <= S_CHUNK;
              end
              default: ;
            endcase
          end
        end else begin
          case (su)
            4'd0: begin
              if (r_k == 0 || r_k > KMAX || r_s == 0 || r_s > 2 || r_pad >= r_k || r_g == 0 ||
                  r_c == 0 || r_h == 0 || r_w == 0 || r_o == 0 || r_ho == 0 || r_wo == 0 ||
                  r_c[16] || r_h[16] || r_w[16] || r_o[16] || r_ho[16] || r_wo[16] || r_g[16] ||
                  act == 2'd3)
                fail(8'd1);
              else su <= 4'd1;
            end
            4'd1: md(1'b1, {16'd0, r_c[15:0]}, r_g[15:0]);
            4'd2: md(1'b1, {16'd0, r_o[15:0]}, r_g[15:0]);
            4'd3: md(1'b0, {16'd0, cg}, {11'd0, kk});
            4'd4: md(1'b1, WBB, cgkk);
            4'd5: md(1'b0, {16'd0, r_h[15:0]}, r_w[15:0]);
            4'd6: md(1'b0, {16'd0, r_ho[15:0]}, r_wo[15:0]);
            4'd7: md(1'b0, {16'd0, cg}, r_w[15:0]);
            4'd8: md(1'b0, md_a, {13'd0, k});
            4'd9: md(1'b0, plane, r_c[15:0]);
            4'd10: md(1'b0, oplane, r_o[15:0]);
            4'd11: md(1'b0, {{(31-WBA){1'b0}}, cgkk}, r_o[15:0]);
            4'd12: md(1'b0, 32'd8, r_o[15:0]);
            4'd13: md(1'b0, plane, cg);
            4'd14: md(1'b0, {16'd0, r_w[15:0]}, {13'd0, pad});
            default: ;
          endcase
        end

        // ---- a chunk of output channels: weights and parameters into their buffers
        S_CHUNK: if (lanes_idle) begin
          n <= og_left < {{(15-PBA){1'b0}}, chmax} ? og_left[PBA:0] : chmax;
          st <= S_CHMUL;
        end
        S_CHMUL: if (!md_wait) begin
          md(1'b0, {{(31-WBA){1'b0}}, cgkk}, {{(15-PBA){1'b0}}, n});
        end else if (md_done) begin
          md_wait <= 1'b0;
          ld_n <= md_res[23:0];
          st <= S_LDW; ld_issued <= 1'b0;
        end
        S_LDW: if (!ld_issued) begin
          ld_start <= 1'b1; ld_issued <= 1'b1; ld_raw <= 1'b0; ld_cont <= 1'b0; ld_addr <= w_ptr;
          ld_dest <= 0; ld_target <= 2'd1;
        end else if (!ld_busy && !ld_start) begin
          w_ptr <= w_ptr + ld_n;
          ld_n <= {{(20-PBA){1'b0}}, n, 3'd0};
          st <= S_LDP; ld_issued <= 1'b0;
        end
        S_LDP: if (!ld_issued) begin
          ld_start <= 1'b1; ld_issued <= 1'b1; ld_raw <= 1'b1; ld_cont <= 1'b0; ld_addr <= p_ptr;
          ld_dest <= 0; ld_target <= 2'd2;
        end else if (!ld_busy && !ld_start) begin
          p_ptr <= p_ptr + {n, 3'd0};
          // restart the ring of input rows
          y <= 16'd0; iy0 <= -pad_s; next_row <= -pad_s;
          next_slot <= 3'd0; next_off <= 0; base_slot <= 3'd0; base_off <= 0;
          row_ext <= in_g - padw;
          orow <= o_ptr;
          st <= S_ROW;
        end

        // ---- an output row: load the input rows it needs that are not in the ring yet
        S_ROW: if (lanes_idle) begin
          if (next_row <= iy0 + k_s - 1) begin
            if (next_row >= 0 && next_row < h_s) begin
              st <= S_RLD; lc <= 16'd0; l_ext <= row_ext;
            end else begin
              next_row <= next_row + 1;
              if (next_slot + 1'b1 == k) begin next_slot <= 3'd0; next_off <= 0; end
              else begin next_slot <= next_slot + 1'b1; next_off <= next_off + sp; end
              row_ext <= row_ext + r_w[15:0];
            end
          end else begin
            st <= S_CINIT;
          end
        end
        S_RLD: if (!ld_busy && !ld_start) begin
          if (lc == cg) begin
            next_row <= next_row + 1;
            if (next_slot + 1'b1 == k) begin next_slot <= 3'd0; next_off <= 0; end
            else begin next_slot <= next_slot + 1'b1; next_off <= next_off + sp; end
            row_ext <= row_ext + r_w[15:0];
            st <= S_ROW;
          end else begin
            // the row of every input channel of the group, one after the other in the slot
            ld_start <= 1'b1; ld_raw <= 1'b0; ld_cont <= lc != 16'd0; ld_addr <= l_ext;
            ld_n <= {8'd0, r_w[15:0]}; ld_dest <= next_off; ld_target <= 2'd0;
            lc <= lc + 1'b1; l_ext <= l_ext + plane[AW-1:0];
          end
        end

        // ---- compute the output row: every channel of the chunk, every block of the row
        S_CINIT: begin
          j <= 0; x <= 16'd0; c <= 16'd0; ky <= 3'd0; kx <= 3'd0;
          slot <= base_slot; so <= base_off; cw <= 0; iy <= iy0; colb <= -pad_s; col <= -pad_s;
          wa <= 0; wj <= 0; oj <= orow; ox <= orow;
          st <= S_COMP;
        end
        S_COMP: if (issue) begin
          wa <= wa + 1'b1;
          if (!kx_end) begin
            kx <= kx + 1'b1; col <= col + 1;
          end else begin
            kx <= 3'd0; col <= colb;
            if (!ky_end) begin
              ky <= ky + 1'b1; iy <= iy + 1;
              if (slot + 1'b1 == k) begin slot <= 3'd0; so <= 0; end
              else begin slot <= slot + 1'b1; so <= so + sp; end
            end else begin
              ky <= 3'd0; iy <= iy0; slot <= base_slot; so <= base_off;
              if (!c_end) begin
                c <= c + 1'b1; cw <= cw + r_w[LBA:0];
              end else begin
                c <= 16'd0; cw <= 0;
                if (!x_end) begin
                  // the next block of pixels, same channel: its weights again
                  x <= x + N16; colb <= colb + ns_s; col <= colb + ns_s;
                  ox <= ox + (o16 ? 2 * N : N); wa <= wj;
                end else begin
                  x <= 16'd0; colb <= -pad_s; col <= -pad_s;
                  if (!j_end) begin
                    j <= j + 1'b1; wj <= wj + cgkk[WBA-1:0]; wa <= wj + cgkk[WBA-1:0];
                    oj <= oj + opb; ox <= oj + opb;
                  end else begin
                    st <= S_RNEXT; rstep <= s;
                  end
                end
              end
            end
          end
        end
        S_RNEXT: begin
          // the ring's first slot moves on by the stride, one row per cycle
          if (rstep != 2'd0) begin
            rstep <= rstep - 1'b1;
            if (base_slot + 1'b1 == k) begin base_slot <= 3'd0; base_off <= 0; end
            else begin base_slot <= base_slot + 1'b1; base_off <= base_off + sp; end
          end else if (y + 1'b1 == r_ho[15:0]) begin
            st <= S_KNEXT;
          end else begin
            y <= y + 1'b1; iy0 <= iy0 + $signed({{(CW-2){1'b0}}, s});
            orow <= orow + owb;
            st <= S_ROW;
          end
        end
        S_KNEXT: begin
          og_left <= og_left - n;
          md(1'b0, opb, {{(15-PBA){1'b0}}, n});
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
