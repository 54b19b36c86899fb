// The microprogram of the small core's sequencer (src/zq_small.v), and the assembler that turns it
// into the ROM image src/zq_ucode.vh (`make ucode`; the Makefile regenerates it when this file
// changes). The microprogram checks a layer (error 1 and 2 of docs/formats/accelerator.md), derives
// its sizes, and walks groups, chunks of output channels and output rows: it loads weights,
// parameters and input rows through the loader and hands each output row to the walker, which
// computes it.
//
// The machine (zq_small.v "sequencer"): an accumulator A (32 bits), a quotient register Q (16 bits),
// a register file RF of 64 words in block RAM (words 3-17 are the interface registers, written by the
// bus), an overflow flag OV, one return address. One instruction per cycle; a taken branch costs one
// more. An instruction must not read the RF word the instruction before it stored (the assembler
// inserts a NOP there).
//
// Instruction word: op[31:27] r[26:21] tgt[20:12] imm[11:0]
//   NOP | LD r: A=RF[r] | ST r: RF[r]=A | ADD r: A+=RF[r], OV=carry | SUB r: A-=RF[r]
//   ADDI i: A+=i | LDI i: A=i (21 bits: {tgt,imm}) | ANDI i: A&=i (immediates signed)
//   MUL r: A=A*RF[r][15:0] (low 32 bits), OV=product>=2^32
//   DSTEP r: one step of non-restoring division of Q by RF[r], the partial remainder in A
//   MVQA: A=Q | MVAQ: Q=A[15:0] | OUT p: port p = A | IN p: A = input p | WAIT c: until condition c
//   RET | branches: compare A with RF[r] or the immediate, go to tgt:
//   EQ NE LTU GEU LT GE, OV (branch if OV), CALL, JMP.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "zq_config.h"

namespace {

enum Op : uint32_t {
  NOP = 0, LD_, ST_, ADD_, SUB_, ADDI_, LDI_, ANDI_, MUL_, DSTEP_, MVQA_, MVAQ_, OUT_, IN_, WAIT_, RET_,
  BR = 16  // 16 + 8*imm + cond
};
enum Cond : uint32_t { EQ = 0, NE, LTU, GEU, LT, GE, OVF, ALWAYS };

// RF words: the interface registers (docs/formats/accelerator.md), then the microprogram's variables
enum Reg : uint32_t {
  IN_ADDR = 3, OUT_ADDR, W_ADDR, P_ADDR, C, H, W, O, HO, WO, K, S, PAD, G, FLAGS,
  R64K = 20, RWBB1, RLBB1, RLIM1, RDIV, R8,
  CG, OG, KK, CGKK, CHMAX, PLANE, OPB, SP, BPP, OWB, CGPLANE, PADW,
  GI, OGL, NCH, ING, WPTR, PPTR, OPTR,
  Y, IY0, NROW, NSLOT, NOFF, BSLOT, BOFF, ROWEXT, LEXT, LC, OROW, T0, T1, KLO, KHI,
  NREGS
};
static_assert(NREGS <= 64, "the register file has 64 words");

// output ports (zq_small.v), inputs, wait conditions
enum Port : uint32_t {
  P_K = 0, P_S, P_PAD, P_FLAGS, P_W, P_WO, P_N, P_SP, P_CGKK, P_OPB, P_KYLO, P_KYHI, P_BSLOT, P_BOFF,
  P_OROW, P_LADDR, P_LN, P_LDEST, GO_LB, GO_LBC, GO_WB, GO_PB, GO_WALK, FLUSH, END, P_CG
};
enum In : uint32_t { I_LIM = 0 };
enum Wait : uint32_t { W_LD = 0, W_LANES, W_ALL, W_WR, W_ORP };

struct Ins {
  uint32_t op, r;
  int32_t imm;
  std::string target;   // label, resolved at the end
  bool reads_rf, writes_rf;
};

std::vector<Ins> prog;
std::map<std::string, uint32_t> labels;

void emit(uint32_t op, uint32_t r, int32_t imm, std::string target, bool reads, bool writes) {
  // an instruction reading the RF word its predecessor stored would read the old value
  if (reads && !prog.empty() && prog.back().writes_rf && prog.back().r == r) emit(NOP, 0, 0, "", false, false);
  prog.push_back({op, r, imm, std::move(target), reads, writes});
}
void label(const std::string &l) {
  if (labels.count(l)) { std::fprintf(stderr, "ucode: label %s twice\n", l.c_str()); std::exit(1); }
  labels[l] = uint32_t(prog.size());
}
void LD(Reg r) { emit(LD_, r, 0, "", true, false); }
void ST(Reg r) { emit(ST_, r, 0, "", false, true); }
void ADD(Reg r) { emit(ADD_, r, 0, "", true, false); }
void SUB(Reg r) { emit(SUB_, r, 0, "", true, false); }
void ADDI(int32_t i) { emit(ADDI_, 0, i, "", false, false); }
void LDI(int32_t i) { emit(LDI_, 0, i, "", false, false); }
void ANDI(int32_t i) { emit(ANDI_, 0, i, "", false, false); }
void MUL(Reg r) { emit(MUL_, r, 0, "", true, false); }
void DSTEP(Reg r) { emit(DSTEP_, r, 0, "", true, false); }
void MVQA() { emit(MVQA_, 0, 0, "", false, false); }
void MVAQ() { emit(MVAQ_, 0, 0, "", false, false); }
void OUT(Port p) { emit(OUT_, p, 0, "", false, false); }
void IN(In p) { emit(IN_, p, 0, "", false, false); }
void WAIT(Wait w) { emit(WAIT_, w, 0, "", false, false); }
void RET() { emit(RET_, 0, 0, "", false, false); }
// branch on A compared with RF[r]
void B(Cond c, Reg r, const std::string &t) { emit(BR + c, r, 0, t, true, false); }
// branch on A compared with an immediate
void BI(Cond c, int32_t i, const std::string &t) { emit(BR + 8 + c, 0, i, t, false, false); }
void BOV(const std::string &t) { emit(BR + OVF, 0, 0, t, false, false); }
void CALL(const std::string &t) { emit(BR + 8 + OVF, 0, 0, t, false, false); }
void JMP(const std::string &t) { emit(BR + ALWAYS, 0, 0, t, false, false); }

int uniq = 0;
std::string fresh() { return "_l" + std::to_string(uniq++); }

// A = min(A, RF[r]) (unsigned)
void MINU(Reg r) {
  const std::string l = fresh();
  B(LTU, r, l);
  LD(r);
  label(l);
}

// ring slot and its offset one row on: slot = slot + 1 (mod k), off = off + SP (0 at the wrap)
void next_slot(Reg slot, Reg off) {
  const std::string l = fresh(), e = fresh();
  LD(slot); ADDI(1); B(NE, K, l);
  LDI(0); ST(slot); ST(off); JMP(e);
  label(l); ST(slot); LD(off); ADD(SP); ST(off);
  label(e);
}

// A must lie in [1, 65535]
void dim_check(Reg r) {
  LD(r); BI(EQ, 0, "e1"); B(GEU, R64K, "e1");
}

void program() {
  // ---- constants
  LDI(65536); ST(R64K);
  LDI(ZQ_WB_BYTES + 1); ST(RWBB1);
  LDI(ZQ_LB_BYTES + 1); ST(RLBB1);
  IN(I_LIM); ADDI(1); ST(RLIM1);
  LDI(8); ST(R8);

  // ---- the shape: error 1
  LD(K); BI(EQ, 0, "e1"); BI(GEU, ZQ_KMAX + 1, "e1");
  LD(S); BI(EQ, 0, "e1"); BI(GEU, 3, "e1");
  LD(PAD); B(GEU, K, "e1");
  LD(FLAGS); ANDI(6); BI(EQ, 6, "e1");
  dim_check(C); dim_check(H); dim_check(W); dim_check(O); dim_check(HO); dim_check(WO); dim_check(G);
  // Cg = C/G and Og = O/G, exact
  LD(G); ST(RDIV);
  LD(C); MVAQ(); LDI(0); CALL("div"); BI(NE, 0, "e1"); MVQA(); ST(CG);
  LD(O); MVAQ(); LDI(0); CALL("div"); BI(NE, 0, "e1"); MVQA(); ST(OG);
  // the weights of one output channel fit the weight buffer: Cg*k*k <= WB bytes
  LD(K); MUL(K); ST(KK);
  LD(CG); MUL(KK); BOV("e1"); ST(CGKK); B(GEU, RWBB1, "e1");
  // k rows of every input channel of a group fit the line buffer: k*Cg*W <= LB bytes
  LD(CG); MUL(W); BOV("e1"); ST(SP); MUL(K); BOV("e1"); B(GEU, RLBB1, "e1");
  // chunk: the output channels whose weights fit the weight buffer, at most ZQ_PB_CH
  LD(CGKK); ST(RDIV);
  LDI(ZQ_WB_BYTES); MVAQ(); LDI(0); CALL("div"); MVQA(); BI(LTU, ZQ_PB_CH + 1, "ch");
  LDI(ZQ_PB_CH);
  label("ch"); ST(CHMAX);

  // ---- the tensors in the memory: error 2
  LD(IN_ADDR); ANDI(3); BI(NE, 0, "e2");
  LD(OUT_ADDR); ANDI(3); BI(NE, 0, "e2");
  LD(W_ADDR); ANDI(3); BI(NE, 0, "e2");
  LD(P_ADDR); ANDI(3); BI(NE, 0, "e2");
  LD(H); MUL(W); ST(PLANE); MUL(C); BOV("e2"); ADD(IN_ADDR); BOV("e2"); B(GEU, RLIM1, "e2");
  LD(FLAGS); ANDI(8); BI(EQ, 0, "b1"); LDI(2); JMP("b2");
  label("b1"); LDI(1);
  label("b2"); ST(BPP);
  LD(HO); MUL(WO); MUL(BPP); BOV("e2"); ST(OPB); MUL(O); BOV("e2"); ADD(OUT_ADDR); BOV("e2"); B(GEU, RLIM1, "e2");
  LD(CGKK); MUL(O); BOV("e2"); ADD(W_ADDR); BOV("e2"); B(GEU, RLIM1, "e2");
  LDI(8); MUL(O); ADD(P_ADDR); BOV("e2"); B(GEU, RLIM1, "e2");

  // ---- derived sizes, the walker's layer constants
  LD(PLANE); MUL(CG); ST(CGPLANE);
  LD(W); MUL(PAD); ST(PADW);
  LD(WO); MUL(BPP); ST(OWB);
  LD(K); OUT(P_K); LD(S); OUT(P_S); LD(PAD); OUT(P_PAD); LD(FLAGS); OUT(P_FLAGS);
  LD(W); OUT(P_W); LD(WO); OUT(P_WO); LD(SP); OUT(P_SP); LD(CGKK); OUT(P_CGKK); LD(OPB); OUT(P_OPB);
  LD(CG); OUT(P_CG);

  // ---- groups
  LDI(0); ST(GI);
  LD(IN_ADDR); ST(ING); LD(W_ADDR); ST(WPTR); LD(P_ADDR); ST(PPTR); LD(OUT_ADDR); ST(OPTR);
  label("group");
  LD(OG); ST(OGL);

  // ---- a chunk of output channels: weights and parameters into their buffers
  label("chunk");
  WAIT(W_LANES);
  LD(OGL); MINU(CHMAX); ST(NCH); ADDI(-1); OUT(P_N);
  LD(WPTR); OUT(P_LADDR); LD(CGKK); MUL(NCH); OUT(P_LN); ADD(WPTR); ST(WPTR);
  LDI(0); OUT(P_LDEST); WAIT(W_LD); OUT(GO_WB);
  LD(PPTR); OUT(P_LADDR); LDI(8); MUL(NCH); OUT(P_LN); ADD(PPTR); ST(PPTR);
  LDI(0); OUT(P_LDEST); WAIT(W_LD); OUT(GO_PB);
  // restart the ring of input rows
  LDI(0); ST(Y); ST(NSLOT); ST(NOFF); ST(BSLOT); ST(BOFF);
  SUB(PAD); ST(IY0); ST(NROW);
  LD(ING); SUB(PADW); ST(ROWEXT);
  LD(OPTR); ST(OROW);

  // ---- an output row. While the walker still computes the row before: the kernel rows inside the
  // input, [KLO, KHI), and the loader's ports for the first input row to load; the line buffer is
  // written, and the walker's row ports changed, only once it is done.
  label("row");
  LDI(0); SUB(IY0); BI(GE, 0, "k1"); LDI(0);
  label("k1"); ST(KLO);
  LD(H); SUB(IY0); B(LT, K, "k2"); LD(K);
  label("k2"); BI(GE, 0, "k3"); LDI(0);
  label("k3"); ST(KHI);
  // the input rows it needs that are not in the ring yet: NROW .. IY0+k-1
  LD(IY0); ADD(K); ST(T0);
  label("rl");
  LD(NROW); B(GE, T0, "rdone");
  BI(LT, 0, "rskip"); B(GE, H, "rskip");
  // the row of every input channel of the group, one after the other in its slot
  LD(NOFF); OUT(P_LDEST); LD(W); OUT(P_LN); LD(ROWEXT); ST(LEXT); OUT(P_LADDR);
  WAIT(W_LANES); WAIT(W_LD); OUT(GO_LB);
  LD(CG); ST(LC);
  label("rl2");
  LD(LC); ADDI(-1); BI(EQ, 0, "rskip"); ST(LC);
  LD(LEXT); ADD(PLANE); ST(LEXT); WAIT(W_LD); OUT(P_LADDR); OUT(GO_LBC); JMP("rl2");
  label("rskip");
  LD(NROW); ADDI(1); ST(NROW);
  LD(ROWEXT); ADD(W); ST(ROWEXT);
  next_slot(NSLOT, NOFF);
  JMP("rl");

  // ---- compute the row
  label("rdone");
  WAIT(W_LANES);
  LD(KLO); OUT(P_KYLO); LD(KHI); OUT(P_KYHI); LD(BSLOT); OUT(P_BSLOT); LD(BOFF); OUT(P_BOFF);
  WAIT(W_ORP); LD(OROW); OUT(P_OROW);
  WAIT(W_LD); OUT(GO_WALK);
  // meanwhile: the next row
  LD(OROW); ADD(OWB); ST(OROW);
  LD(IY0); ADD(S); ST(IY0);
  LD(S); ST(T1);
  label("bs");
  next_slot(BSLOT, BOFF);
  LD(T1); ADDI(-1); ST(T1); BI(NE, 0, "bs");
  LD(Y); ADDI(1); ST(Y); B(NE, HO, "row");

  // ---- the chunk is done
  LD(OPB); MUL(NCH); ADD(OPTR); ST(OPTR);
  LD(OGL); SUB(NCH); ST(OGL); BI(NE, 0, "chunk");
  // the group is done
  LD(ING); ADD(CGPLANE); ST(ING);
  LD(GI); ADDI(1); ST(GI); B(NE, G, "group");
  // ---- the layer is done once the last word is written
  WAIT(W_ALL); OUT(FLUSH); WAIT(W_WR);
  LDI(0); OUT(END);
  label("e1"); LDI(1); OUT(END);
  label("e2"); LDI(2); OUT(END);

  // Q = Q / RF[RDIV], A = the remainder (A = 0 and Q < 2^16 on entry)
  label("div");
  for (int i = 0; i < 16; i++) DSTEP(RDIV);
  BI(GE, 0, "dv1"); ADD(RDIV);
  label("dv1"); RET();
}

}  // namespace

int main(int argc, char **argv) {
  program();
  if (prog.size() > 512) {
    std::fprintf(stderr, "ucode: %zu instructions, the ROM holds 512\n", prog.size());
    return 1;
  }
  FILE *f = argc > 1 ? std::fopen(argv[1], "w") : stdout;
  if (!f) return 1;
  std::fprintf(f, "// generated by src/zq_ucode.cpp (make ucode): the small core's microprogram, %zu instructions\n",
               prog.size());
  for (size_t i = 0; i < prog.size(); i++) {
    const Ins &in = prog[i];
    uint32_t tgt = 0;
    if (!in.target.empty()) {
      auto it = labels.find(in.target);
      if (it == labels.end()) {
        std::fprintf(stderr, "ucode: no label %s\n", in.target.c_str());
        return 1;
      }
      tgt = it->second;
    }
    uint32_t word;
    if (in.op == LDI_) {
      if (in.imm < -(1 << 20) || in.imm >= (1 << 20)) { std::fprintf(stderr, "ucode: LDI %d\n", in.imm); return 1; }
      word = (in.op << 27) | (uint32_t(in.imm) & 0x1fffff);
    } else {
      if (in.imm < -(1 << 11) || in.imm >= (1 << 11)) { std::fprintf(stderr, "ucode: immediate %d\n", in.imm); return 1; }
      word = (in.op << 27) | (in.r << 21) | (tgt << 12) | (uint32_t(in.imm) & 0xfff);
    }
    std::fprintf(f, "rom[%3zu] = 32'h%08x;\n", i, word);
  }
  for (size_t i = prog.size(); i < 512; i++) std::fprintf(f, "rom[%3zu] = 32'h00000000;\n", i);
  if (f != stdout) std::fclose(f);
  return 0;
}
