// Reads a byte range of the external memory into an on-chip buffer.
// Packed mode: the bytes are packed into N-byte buffer words starting at word `dest`, preceded by `lz`
// don't-care bytes (so a row lands at its column position; the fetch stage masks what is outside the
// input). Raw mode: each memory word is written as it comes (channel parameters).
// Requests are issued back to back; responses come in order, one word per cycle at most.
module zq_loader #(
  parameter N  = 6,
  parameter DA = 16,
  parameter AW = 32
) (
  input  wire          clk,
  input  wire          rst,
  input  wire          start,
  input  wire          raw,
  input  wire [AW-1:0] addr,
  input  wire [23:0]   nbytes,   // at least 1
  input  wire [DA-1:0] dest,
  input  wire [2:0]    lz,
  output wire          busy,
  output wire          req,
  output wire [29:0]   req_addr,
  input  wire          req_take,
  input  wire          rvalid,
  input  wire [31:0]   rdata,
  output reg           we,
  output reg  [DA-1:0] waddr,
  output reg  [N*8-1:0] wdata
);
  localparam PW = $clog2(N + 1);
  localparam [PW:0] NB = N;

  reg          active;
  reg          m_raw;
  reg [AW-3:0] ia;        // next word address to request
  reg [22:0]   icnt;      // words left to request
  reg [22:0]   rcnt;      // words left to receive
  reg          rfirst;
  reg [1:0]    skip;      // bytes to drop from the first word
  reg [1:0]    lastb;     // last byte kept of the last word
  reg          flush;     // emit the partial word next cycle
  reg [PW-1:0] pc;        // bytes held in pk
  reg [N*8-1:0] pk;       // bytes not yet written; bytes at and above pc are zero
  reg [DA-1:0] wa;

  assign busy     = active;
  assign req      = active && (icnt != 23'd0);
  assign req_addr = ia;         // zero-extended

  wire [25:0] span   = {24'd0, addr[1:0]} + {2'd0, nbytes} + 26'd3;

  // bytes of this response
  wire [1:0] lo = rfirst ? skip : 2'd0;
  wire [1:0] hi = (rcnt == 23'd1) ? lastb : 2'd3;
  wire [2:0] nb = {1'b0, hi} - {1'b0, lo} + 3'd1;
  wire [31:0] sh = rdata >> {lo, 3'b000};
  reg  [31:0] inb;
  always @(*) begin
    case (nb)
      3'd1: inb = {24'd0, sh[7:0]};
      3'd2: inb = {16'd0, sh[15:0]};
      3'd3: inb = {8'd0, sh[23:0]};
      default: inb = sh;
    endcase
  end
  // pk followed by the new bytes, N + 4 bytes
  wire [N*8+31:0] cat = {32'd0, pk} | ({{(N*8){1'b0}}, inb} << {pc, 3'b000});
  wire [PW:0]     sum = {1'b0, pc} + {{(PW-2){1'b0}}, nb};

  always @(posedge clk) begin
    we <= 1'b0;
    if (rst) begin
      active <= 1'b0;
      flush  <= 1'b0;
    end else if (start && !active) begin
      active <= 1'b1;
      m_raw  <= raw;
      ia     <= addr[AW-1:2];
      icnt   <= span[24:2];
      rcnt   <= span[24:2];
      rfirst <= 1'b1;
      skip   <= addr[1:0];
      lastb  <= addr[1:0] + nbytes[1:0] - 2'd1;
      pc     <= raw ? {PW{1'b0}} : lz;   // zero-extended when PW > 3
      pk     <= {(N*8){1'b0}};
      wa     <= dest;
      flush  <= 1'b0;
    end else if (active) begin
      if (req && req_take) begin
        ia   <= ia + 1'b1;
        icnt <= icnt - 23'd1;
      end
      if (flush) begin
        flush <= 1'b0;
        active <= 1'b0;
        we    <= 1'b1;
        waddr <= wa;
        wdata <= pk;
      end else if (rvalid) begin
        rfirst <= 1'b0;
        rcnt   <= rcnt - 23'd1;
        if (m_raw) begin
          we    <= 1'b1;
          waddr <= wa;
          wdata <= {{(N*8-32){1'b0}}, rdata};
          wa    <= wa + 1'b1;
          if (rcnt == 23'd1) active <= 1'b0;
        end else begin
          if (sum >= NB) begin
            we    <= 1'b1;
            waddr <= wa;
            wdata <= cat[N*8-1:0];
            wa    <= wa + 1'b1;
            pk    <= {{(N*8-32){1'b0}}, cat[N*8+31:N*8]};
            pc    <= sum[PW-1:0] - NB[PW-1:0];
            if (rcnt == 23'd1) begin
              if (sum != NB) flush <= 1'b1; else active <= 1'b0;
            end
          end else begin
            pk <= cat[N*8-1:0];
            pc <= sum[PW-1:0];
            if (rcnt == 23'd1) flush <= 1'b1;
          end
        end
      end
    end
  end
endmodule
