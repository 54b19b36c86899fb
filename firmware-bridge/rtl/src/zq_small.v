// The conv accelerator's core for small parts (the UP5K configuration): one convolution layer per
// start (docs/formats/accelerator.md), computed as docs/formats/fixed-point.md "Convolution" says.
// Architecture: docs/decisions/accelerator-rtl.md.
//
// A microcoded sequencer (the program: src/zq_ucode.cpp) checks the layer, derives its sizes and walks
// groups, chunks of output channels and output rows; its variables and the interface registers live
// in a register file in block RAM. It loads weights, parameters and input rows through the loader
// (zq_bload) and hands each output row to the walker (zq_walk), whose lanes compute it; the output
// stage (zq_post2) and the writer (zq_owr) finish the pixels.
//
// Register reads: the data appears the cycle after the address (block RAM).
`include "zq_config.vh"
`define ZQ_RDATA_T reg
module zq_small (
`include "zq_ports.vh"
);
`undef ZQ_RDATA_T
  localparam N    = `ZQ_LANES;
  localparam KMAX = `ZQ_KMAX;
  localparam LBB  = `ZQ_LB_BYTES;
  localparam WBB  = `ZQ_WB_BYTES;
  localparam PBC  = `ZQ_PB_CH;
  localparam AW   = `ZQ_AW;
  localparam LBA  = $clog2(LBB);
  localparam WBA  = $clog2(WBB);
  localparam PBA  = $clog2(PBC);
  localparam DA   = (LBA > WBA ? LBA : WBA) + 1;   // loader destinations (bytes, or parameter words)
  localparam [15:0] N16   = N;
  localparam [7:0]  KMAX8 = KMAX;
  generate if (AW >= 32) begin : bad_aw
    initial $error("the small core needs ZQ_AW below 32");
  end endgenerate

  reg        st_busy, st_done, st_err;
  reg [7:0]  st_code;
  reg [31:0] cycles;
  assign busy = st_busy;
  wire       start = reg_we && reg_addr == 5'd0 && reg_wdata[0] && !st_busy;
  wire       bus_w = reg_we && !st_busy && reg_addr >= 5'd3 && reg_addr <= 5'd17;

  // ------------------------------------------------------------------ register reads
  // a copy of registers 3-17 for the bus (block RAM), the rest from the status
  reg [31:0] shadow [0:31];
  reg [31:0] sh_q;
  reg [4:0]  ra_q;
  always @(posedge clk) begin
    if (bus_w) shadow[reg_addr] <= reg_wdata;
    sh_q <= shadow[reg_addr];
    ra_q <= reg_addr;
  end
  always @(*) begin
    case (ra_q)
      5'd1:  reg_rdata = {16'd0, st_code, 5'd0, st_err, st_done, st_busy};
      5'd2:  reg_rdata = cycles;
      5'd18: reg_rdata = {N16, KMAX8, 8'd`ZQ_VERSION};
      default: reg_rdata = (ra_q >= 5'd3 && ra_q <= 5'd17) ? sh_q : 32'd0;
    endcase
  end

  // ------------------------------------------------------------------ the sequencer
  // Pipeline: the ROM's output is the decoded instruction (D); the RF word it names is read meanwhile;
  // E executes it with that word. A branch compares in E; the next cycle decides from the registered
  // result and, when it is taken, discards the two instructions fetched after the branch.
  reg [31:0] rom [0:511];
  initial begin
`include "zq_ucode.vh"
  end
  reg  [31:0] ir;                  // D: the instruction read from the ROM
  reg         d_v;
  reg  [31:0] e_ir;                // E
  reg         e_v;
  reg         e_sub, e_ximm, e_xdiv;   // E's ALU controls, decoded in D
  reg  [8:0]  pc;                  // the address of the instruction in D
  reg  [8:0]  ret;
  reg         f_br, f_ret, f_eq, f_borrow, f_lt, f_ov;   // the branch E executed last cycle
  reg  [7:0]  f_g;
  reg  [8:0]  f_tgt;
  reg  [31:0] A;
  reg  [15:0] Q;
  reg         ov;
  reg  [31:0] rf [0:63];
  reg  [31:0] rf_q;                // E's RF word

  // a branch of the last cycle taken: to f_tgt
  wire        br_take = f_br && (f_ret || (f_g[0] && f_eq) || (f_g[1] && !f_eq) || (f_g[2] && f_borrow) ||
                        (f_g[3] && !f_borrow) || (f_g[4] && f_lt) || (f_g[5] && !f_lt) || (f_g[6] && f_ov) ||
                        f_g[7]);
  wire        e_ok = e_v && !br_take;
  wire [4:0]  op   = e_ir[31:27];
  wire [5:0]  rr   = e_ir[26:21];
  wire [8:0]  tgt  = e_ir[20:12];
  wire [31:0] imm  = {{20{e_ir[11]}}, e_ir[11:0]};
  wire [31:0] imm21 = {{11{e_ir[20]}}, e_ir[20:0]};
  wire [4:0]  d_op = ir[31:27];

  // one adder / subtractor: A + rf_q, A + imm, A - rf_q or imm (compare), the division step
  // the division step (non-restoring): the remainder shifted in from Q, less the divisor while it is
  // not negative, plus the divisor while it is; the remainder's sign is the quotient bit
  wire [31:0] dsh  = {A[30:0], Q[15]};
  wire        sub  = e_xdiv ? !A[31] : e_sub;
  wire [31:0] xa   = e_xdiv ? dsh : A;
  wire [31:0] xb   = e_ximm ? imm : rf_q;
  wire [32:0] sum  = {1'b0, xa} + ({1'b0, sub ? ~xb : xb}) + {32'd0, sub};
  wire        borrow = !sum[32];                      // xa < xb unsigned (for a compare)
  wire        eq   = xa == xb;
  wire        lt   = (xa[31] != xb[31]) ? xa[31] : sum[31];
  // E's controls, decoded in D: where A comes from, the branch condition (one-hot)
  reg         e_arith, e_other, e_o_ld, e_o_ldi, e_o_and, e_o_mul, e_o_q, e_ret;
  reg         g_eq, g_ne, g_ltu, g_geu, g_lt, g_ge, g_ov, g_al;
  // MUL: A * RF[r][15:0] in three cycles: the halves' products (DSPs), their sum, A
  reg  [31:0] mul_lo, mul_hi;
  reg  [47:0] prod;
  reg  [1:0]  mul_ph;
  always @(posedge clk) begin
    mul_lo <= A[15:0] * rf_q[15:0];
    mul_hi <= A[31:16] * rf_q[15:0];
    prod <= {16'd0, mul_lo} + {mul_hi, 16'd0};
  end

  // the ports the sequencer drives and the conditions it waits for
  reg  [2:0]    p_k, p_pad, p_kylo, p_kyhi, p_bslot;
  reg  [1:0]    p_s;
  reg  [3:0]    p_flags;
  reg  [15:0]   p_w, p_wo, p_cgkk, p_ln;
  reg  [PBA:0]  p_n1;
  reg  [15:0]   p_cg;
  reg  [LBA:0]  p_sp, p_boff;
  reg  [AW-1:0] p_opb, p_laddr, orp;
  reg  [DA-1:0] p_ldest;
  reg           orp_full;
  wire          orp_take;
  reg           go_ld, go_walk, wr_flush;
  reg  [1:0]    ld_target;     // 0 line buffer, 1 weights, 2 parameters
  reg           ld_cont;
  wire          ld_busy, lanes_idle, all_idle, wr_idle;
  reg           w_ok;
  always @(*) begin
    case (rr[2:0])
      3'd0: w_ok = !ld_busy;
      3'd1: w_ok = lanes_idle;
      3'd2: w_ok = all_idle && !orp_full;
      3'd3: w_ok = wr_idle;
      default: w_ok = !orp_full;
    endcase
  end
  wire        stall = e_ok && ((op == 5'd14 && !w_ok) || (e_o_mul && mul_ph != 2'd2));
  // A's next value: from the adder, or from the rest (which does not wait for the carry)
  wire [31:0] a_other = e_o_ld ? rf_q : (e_o_ldi ? imm21 : (e_o_and ? (A & imm) :
                        (e_o_mul ? prod[31:0] : (e_o_q ? {16'd0, Q} : lim[31:0]))));
  wire [8:0]  pc_n  = br_take ? f_tgt : pc + 1'b1;
  wire [32:0] lim   = {1'b0, mem_bytes} > (33'd1 << AW) ? (33'd1 << AW) : {1'b0, mem_bytes};

  // the ROM (block RAM): its output register is D's instruction
  wire        rom_en = start || (st_busy && !stall);
  wire [8:0]  rom_a  = start ? 9'd0 : pc_n;
  always @(posedge clk) if (rom_en) ir <= rom[rom_a];

  always @(posedge clk) begin
    if (bus_w) rf[{1'b0, reg_addr}] <= reg_wdata;
    else if (e_ok && op == 5'd2) rf[rr] <= A;
    if (!stall) rf_q <= rf[ir[26:21]];
  end

  always @(posedge clk) begin
    go_ld <= 1'b0; go_walk <= 1'b0; wr_flush <= 1'b0;
    if (orp_take) orp_full <= 1'b0;
    if (rst) begin
      st_busy <= 1'b0; st_done <= 1'b0; st_err <= 1'b0; st_code <= 8'd0; cycles <= 32'd0;
      d_v <= 1'b0; e_v <= 1'b0; orp_full <= 1'b0; mul_ph <= 2'd0; f_br <= 1'b0;
    end else if (!st_busy) begin
      if (start) begin
        st_busy <= 1'b1; st_done <= 1'b0; st_err <= 1'b0; st_code <= 8'd0; cycles <= 32'd0;
        pc <= 9'd0; d_v <= 1'b1; e_v <= 1'b0; f_br <= 1'b0;
      end
    end else begin
      cycles <= cycles + 1'b1;
      mul_ph <= (e_ok && e_o_mul && mul_ph != 2'd2) ? mul_ph + 1'b1 : 2'd0;
      if (!stall) begin
        // fetch and decode
        pc <= pc_n;
        e_ir <= ir;
        e_v <= d_v && !br_take;
        e_sub <= d_op == 5'd4 || d_op[4];
        e_ximm <= d_op == 5'd5 || (d_op[4] && d_op[3]);
        e_xdiv <= d_op == 5'd9;
        e_arith <= d_op == 5'd3 || d_op == 5'd4 || d_op == 5'd5 || d_op == 5'd9;
        e_other <= d_op == 5'd1 || d_op == 5'd6 || d_op == 5'd7 || d_op == 5'd8 || d_op == 5'd10 || d_op == 5'd13;
        e_o_ld <= d_op == 5'd1; e_o_ldi <= d_op == 5'd6; e_o_and <= d_op == 5'd7; e_o_mul <= d_op == 5'd8;
        e_o_q <= d_op == 5'd10; e_ret <= d_op == 5'd15;
        g_eq <= d_op[4] && d_op[2:0] == 3'd0; g_ne <= d_op[4] && d_op[2:0] == 3'd1;
        g_ltu <= d_op[4] && d_op[2:0] == 3'd2; g_geu <= d_op[4] && d_op[2:0] == 3'd3;
        g_lt <= d_op[4] && d_op[2:0] == 3'd4; g_ge <= d_op[4] && d_op[2:0] == 3'd5;
        g_ov <= d_op == 5'd22; g_al <= d_op == 5'd23 || d_op == 5'd30 || d_op == 5'd31;
        d_v <= 1'b1;
      end
      f_br <= e_ok && (op[4] || e_ret);
      f_ret <= e_ret; f_eq <= eq; f_borrow <= borrow; f_lt <= lt; f_ov <= ov;
      f_g <= {g_al, g_ov, g_ge, g_lt, g_geu, g_ltu, g_ne, g_eq};
      f_tgt <= e_ret ? ret : tgt;
      if (e_ok && !stall && (e_arith || e_other)) A <= e_arith ? sum[31:0] : a_other;
      if (e_ok && !stall) begin
        case (op)
          5'd3: ov <= sum[32];
          5'd8: ov <= |prod[47:32];
          5'd9: Q <= {Q[14:0], !sum[31]};
          5'd11: Q <= A[15:0];
          5'd12: begin
            case (rr[4:0])
              5'd0:  p_k <= A[2:0];
              5'd1:  p_s <= A[1:0];
              5'd2:  p_pad <= A[2:0];
              5'd3:  p_flags <= A[3:0];
              5'd4:  p_w <= A[15:0];
              5'd5:  p_wo <= A[15:0];
              5'd6:  p_n1 <= A[PBA:0];
              5'd7:  p_sp <= A[LBA:0];
              5'd8:  p_cgkk <= A[15:0];
              5'd9:  p_opb <= A[AW-1:0];
              5'd10: p_kylo <= A[2:0];
              5'd11: p_kyhi <= A[2:0];
              5'd12: p_bslot <= A[2:0];
              5'd13: p_boff <= A[LBA:0];
              5'd14: begin orp <= A[AW-1:0]; orp_full <= 1'b1; end
              5'd15: p_laddr <= A[AW-1:0];
              5'd16: p_ln <= A[15:0];
              5'd17: p_ldest <= A[DA-1:0];
              5'd18: begin go_ld <= 1'b1; ld_target <= 2'd0; ld_cont <= 1'b0; end
              5'd19: begin go_ld <= 1'b1; ld_target <= 2'd0; ld_cont <= 1'b1; end
              5'd20: begin go_ld <= 1'b1; ld_target <= 2'd1; ld_cont <= 1'b0; end
              5'd21: begin go_ld <= 1'b1; ld_target <= 2'd2; ld_cont <= 1'b0; end
              5'd22: go_walk <= 1'b1;
              5'd23: wr_flush <= 1'b1;
              5'd25: p_cg <= A[15:0];
              default: begin   // END: A = 0 done, else the error code
                st_busy <= 1'b0; st_done <= 1'b1; st_err <= A != 32'd0; st_code <= A[7:0];
                d_v <= 1'b0; e_v <= 1'b0;
              end
            endcase
          end
          5'd30: ret <= pc;           // CALL: back to the instruction after it
          default: ;
        endcase
      end
    end
  end

  // ------------------------------------------------------------------ loader
  wire          ld_req, ld_we;
  wire [29:0]   ld_ra;
  wire [DA-1:0] ld_wa;
  wire [31:0]   ld_wd;
  wire          wr_wv;
  wire          ld_take = ld_req && !wr_wv && mem_ready;
  zq_bload #(.AW(AW), .DA(DA), .F(4)) u_ld (
    .clk(clk), .rst(rst), .start(go_ld), .raw(ld_target == 2'd2), .cont(ld_cont), .addr(p_laddr),
    .nbytes(p_ln), .dest(p_ldest), .busy(ld_busy), .req(ld_req), .req_addr(ld_ra),
    .req_take(ld_take), .rvalid(mem_rvalid), .rdata(mem_rdata), .we(ld_we), .waddr(ld_wa),
    .wdata(ld_wd));

  // ------------------------------------------------------------------ walker, lanes, output
  wire        h_v, post_take;
  wire [31:0] h_acc, h_m;
  wire [WBA+9:0] h_s;
  wire [1:0]  h_f;
  zq_walk u_walk (
    .clk(clk), .rst(rst), .go(go_walk), .k(p_k), .s(p_s), .pad(p_pad), .u8(p_flags[0]), .w(p_w),
    .wo(p_wo), .n1(p_n1), .cg(p_cg), .sp(p_sp), .cgkk(p_cgkk[WBA:0]), .kylo(p_kylo), .kyhi(p_kyhi),
    .bslot(p_bslot), .boff(p_boff),
    .ld_we(ld_we), .ld_target(ld_target), .ld_wa(ld_wa), .ld_wd(ld_wd),
    .idle(lanes_idle),
    .h_v(h_v), .h_take(post_take), .h_acc(h_acc), .h_s(h_s), .h_m(h_m), .h_f(h_f));

  wire        p_ov, p_busy, wr_ready;
  wire [15:0] p_data;
  wire [1:0]  p_f;
  zq_post2 #(.SW(WBA + 10)) u_post (
    .clk(clk), .rst(rst), .en(wr_ready), .act(p_flags[2:1]), .o16(p_flags[3]), .iv(h_v),
    .take(post_take), .iacc(h_acc), .is(h_s), .im(h_m[15:0]), .its(h_m[23:16]), .ios(h_m[31:24]),
    .ifl(h_f), .ov(p_ov), .ofl(p_f), .odata(p_data), .busy(p_busy));

  wire [29:0] wr_wa;
  wire [31:0] wr_wd;
  wire [3:0]  wr_ws;
  zq_owr #(.AW(AW)) u_wr (
    .clk(clk), .rst(rst), .iv(p_ov), .ifl(p_f), .idata(p_data), .o16(p_flags[3]), .opb(p_opb),
    .orow(orp), .orow_take(orp_take), .flush(wr_flush), .ready(wr_ready), .wv(wr_wv), .wa(wr_wa),
    .wd(wr_wd), .ws(wr_ws), .wtake(wr_wv && mem_ready), .idle(wr_idle));

  assign all_idle  = lanes_idle && !h_v && !p_busy;
  assign mem_valid = wr_wv || ld_req;
  assign mem_we    = wr_wv;
  assign mem_addr  = wr_wv ? wr_wa : ld_ra;
  assign mem_wdata = wr_wd;
  assign mem_wstrb = wr_wv ? wr_ws : 4'd0;
endmodule
