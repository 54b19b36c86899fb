// A planned integer network: buffers, conv plans and the per-frame run.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include "plan.h"
#include "pool.h"

namespace zqint {

struct ConvParamsIn {
  const int8_t* q = nullptr;
  size_t qLen = 0;
  const int32_t *fw = nullptr, *m = nullptr, *fm = nullptr, *bias = nullptr;
  const int32_t* lut = nullptr;
  size_t lutLen = 0;
};

struct LayerIn {
  std::vector<int32_t> desc;
  ConvParamsIn conv;
};

struct Error {
  std::string msg;
};

class Net {
 public:
  // Plans the network; throws Error. kernels: the instruction set's kernels. Buffers whose
  // lifetimes do not overlap share memory unless retainAll (then every layer's output stays
  // readable after a frame, at the cost of a working set that no longer fits the caches).
  Net(const std::vector<LayerIn>& layers, int inC, int inH, int inW, const Kernels* kernels, int threads, bool retainAll = false);
  ~Net();
  // Runs one frame (interleaved RGB, inH x inW); afterwards every head's integers are readable.
  void run(const uint8_t* rgb) {
    load(rgb);
    compute();
  }
  // The two halves of run: copy the frame into the network's input, then compute every layer
  // (which may run on another thread than load: the caller keeps no hold on the frame).
  void load(const uint8_t* rgb);
  void compute();
  // One layer of compute() (tools that measure layers one at a time).
  void computeLayer(int i) { runLayer(i); }
  // Copies a layer's output (CHW int32) into dst (c*h*w values). A layer whose memory a later
  // layer reused is read from a twin network that retains every output, computed once per frame
  // from the same input (tests and debugging read every layer).
  void read(int layer, int32_t* dst);
  // Whether a layer's output is still in its buffer after a frame.
  bool retained(int layer) const;
  // Bytes of the activation arena (all buffers, after sharing).
  size_t arenaBytes() const { return arenaBytes_; }
  size_t count(int layer) const;
  int layers() const { return (int)layers_.size(); }
  size_t inputBytes() const { return (size_t)inC_ * inH_ * inW_; }
  const char* isa() const { return kernels_->name; }
  int threads() const { return pool_.size(); }
  // Nanoseconds spent per layer since the last reset (when profiling).
  std::vector<double> layerNs;
  // What a layer does: the code path, its multiply-adds, and the bytes of the tensors it reads and
  // writes (stored form: 4 bytes per pixel and channel block, int32 for 16-bit tensors; weights).
  struct Info {
    std::string kernel;
    int64_t macs = 0, bytes = 0;
  };
  Info info(int layer) const;
  bool profile = false;

 private:
  struct L {
    std::vector<int32_t> d;
    int buf = -1;  // index into bufs_ of this layer's output
    ConvPlan conv;
    std::vector<int> in;  // buffer indices of the inputs
    bool fused = false;   // a shortcut computed in the epilogue of the conv before it
    std::vector<int> writes;  // buffers this layer writes whose shared memory needs its borders refilled first
  };
  void planConv(L& l, const ConvParamsIn& cp, int index);
  void planFusedShortcut(int index);
  void runLayer(int i);
  void runConv(L& l);
  void runMaxpool(L& l);
  void runRoute(L& l);
  void runShortcut(L& l);
  void runUpsample(L& l);
  void* alloc(size_t bytes);
  void placeBuffers(const std::vector<bool>& raw);
  void readOwn(int layer, int32_t* dst) const;

  const Kernels* kernels_;
  Pool pool_;
  std::vector<L> layers_;
  std::vector<Buf> bufs_;  // bufs_[0]: the network input
  std::vector<int> fracOf_;  // per buffer
  struct Free {
    void operator()(void* p) const { free(p); }
  };
  std::vector<std::unique_ptr<void, Free>> mem_;  // freed even when planning throws
  std::vector<uint32_t*> scratch_;  // per thread
  size_t scratchWords_ = 0;
  int inC_, inH_, inW_;
  int64_t parMin_;
  bool retainAll_;
  // Per buffer: the layer that first writes it (-1: the input) and the last that reads it.
  std::vector<int> first_, last_;
  std::vector<size_t> offset_, bytes_;
  size_t arenaBytes_ = 0;
  // What the twin needs: the layers with their parameters copied (the caller's arrays are borrowed).
  std::vector<LayerIn> src_;
  std::vector<std::vector<int8_t>> srcQ_;
  std::vector<std::vector<int32_t>> srcI_;
  std::unique_ptr<Net> twin_;
  uint64_t frames_ = 0, twinFrame_ = ~(uint64_t)0;
};

}  // namespace zqint
