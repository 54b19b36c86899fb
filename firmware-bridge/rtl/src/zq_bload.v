// Copies a byte range of the external memory into an on-chip buffer: one byte per cycle (byte mode),
// or one word per cycle as it comes (raw mode: the channel parameters; address and length multiples
// of 4). Requests go out back to back while fewer than F words are requested and not yet written;
// the responses wait in an F-word queue. `cont` continues at the buffer address after the last write.
module zq_bload #(
  parameter AW = 24,
  parameter DA = 15,
  parameter F  = 4              // power of two
) (
  input  wire          clk,
  input  wire          rst,
  input  wire          start,
  input  wire          raw,
  input  wire          cont,
  input  wire [AW-1:0] addr,
  input  wire [15:0]   nbytes,   // at least 1
  input  wire [DA-1:0] dest,
  output wire          busy,
  output wire          req,
  output wire [29:0]   req_addr,
  input  wire          req_take,
  input  wire          rvalid,
  input  wire [31:0]   rdata,
  output wire          we,
  output wire [DA-1:0] waddr,
  output wire [31:0]   wdata     // byte mode: the byte in bits 0-7
);
  localparam FB = $clog2(F);
  localparam [FB:0] FF = F;

  reg          active, m_raw;
  reg [AW-3:0] ia;               // next word to request
  reg [14:0]   icnt;             // words left to request
  reg [FB:0]   inq;              // words requested and not yet taken from the queue
  reg [31:0]   fq [0:F-1];
  reg [FB:0]   wp, rp;
  reg [1:0]    bi;               // next byte of the head word
  reg [15:0]   left;             // bytes (raw: words) left to write
  reg [DA-1:0] wa;

  wire        empty = wp == rp;
  wire [31:0] head  = fq[rp[FB-1:0]];
  wire [31:0] hs    = head >> {bi, 3'b000};
  wire [17:0] span  = {16'd0, addr[1:0]} + {2'd0, nbytes} + 18'd3;
  wire        take  = active && !empty;
  wire        pop   = take && (m_raw || bi == 2'd3 || left == 16'd1);
  wire        rtake = req && req_take;

  assign busy     = active;
  assign req      = active && icnt != 15'd0 && inq != FF;
  assign we       = take;
  assign waddr    = wa;
  assign wdata    = m_raw ? head : {24'd0, hs[7:0]};
  assign req_addr = ia;          // zero-extended

  always @(posedge clk) begin
    if (rst) begin
      active <= 1'b0; wp <= 0; rp <= 0; inq <= 0;
    end else begin
      if (start && !active) begin
        active <= 1'b1;
        m_raw  <= raw;
        ia     <= addr[AW-1:2];
        icnt   <= span[16:2];
        bi     <= addr[1:0];
        left   <= raw ? {2'd0, nbytes[15:2]} : nbytes;
        if (!cont) wa <= dest;
      end else if (active) begin
        if (rtake) begin
          ia   <= ia + 1'b1;
          icnt <= icnt - 15'd1;
        end
        if (take) begin
          wa    <= wa + 1'b1;
          left  <= left - 16'd1;
          bi    <= bi + 2'd1;
          if (left == 16'd1) active <= 1'b0;
        end
      end
      if (rvalid) begin
        fq[wp[FB-1:0]] <= rdata;
        wp <= wp + 1'b1;
      end
      if (pop) rp <= rp + 1'b1;
      inq <= inq + {{FB{1'b0}}, rtake} - {{FB{1'b0}}, pop};
    end
  end
endmodule
