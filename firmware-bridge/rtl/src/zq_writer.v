// Gathers output bytes (in address order, 1 or 2 per pixel) into 32-bit words with byte strobes and
// queues them for the memory port. A word is queued when the next pixel falls into another word or on
// `flush`.
module zq_writer #(
  parameter DEPTH = 4,           // power of two
  parameter AW    = 32
) (
  input  wire        clk,
  input  wire        rst,
  input  wire        iv,
  input  wire [AW-1:0] iaddr,
  input  wire [15:0] idata,
  input  wire        i16,
  input  wire        flush,
  output wire        ready,      // an input (or flush) is accepted this cycle
  output wire        wv,
  output wire [29:0] wa,
  output wire [31:0] wd,
  output wire [3:0]  ws,
  input  wire        wtake,
  output wire        idle
);
  localparam AB = $clog2(DEPTH);
  reg [AW-3:0] qa [0:DEPTH-1];
  reg [31:0] qd [0:DEPTH-1];
  reg [3:0]  qs [0:DEPTH-1];
  reg [AB:0] head, tail;        // read / write positions
  wire [AB:0] count = tail - head;
  wire full  = count == DEPTH;

  reg        cv;                // a word is being gathered
  reg [AW-3:0] ca;
  reg [31:0] cd;
  reg [3:0]  cs;

  assign ready = !full;
  assign wv    = count != 0;
  assign wa    = qa[head[AB-1:0]];   // zero-extended
  assign wd    = qd[head[AB-1:0]];
  assign ws    = qs[head[AB-1:0]];
  assign idle  = !cv && count == 0;

  // the new pixel's bytes placed in a word
  wire [1:0]  lane = iaddr[1:0];
  wire [31:0] nd   = i16 ? ({16'd0, idata} << {lane, 3'b000}) : ({24'd0, idata[7:0]} << {lane, 3'b000});
  wire [3:0]  ns   = i16 ? (4'b0011 << lane) : (4'b0001 << lane);
  wire        push = ready && ((iv && cv && iaddr[AW-1:2] != ca) || (flush && !iv && cv));

  always @(posedge clk) begin
    if (rst) begin
      head <= 0; tail <= 0; cv <= 1'b0;
    end else begin
      if (wv && wtake) head <= head + 1'b1;
      if (push) begin
        qa[tail[AB-1:0]] <= ca;
        qd[tail[AB-1:0]] <= cd;
        qs[tail[AB-1:0]] <= cs;
        tail <= tail + 1'b1;
      end
      if (ready) begin
        if (iv) begin
          if (cv && iaddr[AW-1:2] == ca) begin
            cd <= cd | nd;
            cs <= cs | ns;
          end else begin
            cv <= 1'b1; ca <= iaddr[AW-1:2]; cd <= nd; cs <= ns;
          end
        end else if (flush) begin
          cv <= 1'b0;
        end
      end
    end
  end
endmodule
