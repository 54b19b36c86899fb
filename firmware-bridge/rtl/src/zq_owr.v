// The small core's writer: gives each output pixel its address and gathers the bytes (1 or 2 per
// pixel) into 32-bit words with byte strobes for the memory port.
// Pixels come in the walker's order: for an output row, channel after channel, each channel's pixels
// left to right. A pixel flagged first-of-row starts at `orow` (the sequencer's pending row address,
// taken here), first-of-channel one channel plane (opb bytes) after the previous channel's first;
// any other pixel follows the one before. A word goes out when the next pixel falls into another word
// or starts a row or channel, or on `flush` (kept until done).
module zq_owr #(
  parameter AW = 24
) (
  input  wire          clk,
  input  wire          rst,
  input  wire          iv,
  input  wire [1:0]    ifl,        // {first of the row, first of a channel}
  input  wire [15:0]   idata,
  input  wire          o16,
  input  wire [AW-1:0] opb,
  input  wire [AW-1:0] orow,
  output wire          orow_take,
  input  wire          flush,
  output wire          ready,      // an input pixel is taken this cycle when iv
  output reg           wv,
  output reg  [29:0]   wa,
  output reg  [31:0]   wd,
  output reg  [3:0]    ws,
  input  wire          wtake,
  output wire          idle
);
  reg [AW-1:0] cur, jn;           // the next pixel's address; the next channel's first
  reg          cv, fl;            // a word is being gathered; a flush is pending
  reg [AW-3:0] ca;
  reg [31:0]   cd;
  reg [3:0]    cs;

  wire [AW-1:0] addr = ifl[1] ? orow : (ifl[0] ? jn : cur);
  wire [1:0]    lane = addr[1:0];
  wire [31:0]   nd   = o16 ? ({16'd0, idata} << {lane, 3'b000}) : ({24'd0, idata[7:0]} << {lane, 3'b000});
  wire [3:0]    ns   = o16 ? (4'b0011 << lane) : (4'b0001 << lane);
  // the pixel starts another word: it follows the one before into the next word, or it starts a row
  // or a channel (then the gathered word goes out even if the pixel would have joined it: two
  // writes with their own strobes)
  wire          other = cv && (ifl != 2'b00 || addr[1:0] == 2'b00);
  // the output register is free, or its word goes out this cycle (conservative: the pixel might
  // have joined the gathered word, but this keeps the address compare off the stall path)
  wire          out_free = !wv || wtake;
  assign ready     = out_free;
  assign orow_take = iv && ready && ifl[1];
  wire          push = (iv && other && out_free) || (!iv && fl && cv && out_free);
  assign idle      = !cv && !wv && !fl;

  always @(posedge clk) begin
    if (rst) begin
      wv <= 1'b0; cv <= 1'b0; fl <= 1'b0;
    end else begin
      if (flush) fl <= 1'b1;
      if (wv && wtake) wv <= 1'b0;
      if (push) begin
        wv <= 1'b1; wa <= ca; wd <= cd; ws <= cs;   // wa zero-extended
      end
      if (iv && ready) begin
        if (ifl[1]) jn <= orow + opb;
        else if (ifl[0]) jn <= jn + opb;
        cur <= addr + (o16 ? 2'd2 : 2'd1);
        if (other || !cv) begin
          cv <= 1'b1; ca <= addr[AW-1:2]; cd <= nd; cs <= ns;
        end else begin
          cd <= cd | nd; cs <= cs | ns;
        end
      end else if (!iv && fl) begin
        if (!cv) fl <= 1'b0;
        else if (out_free) cv <= 1'b0;
      end
    end
  end
endmodule
