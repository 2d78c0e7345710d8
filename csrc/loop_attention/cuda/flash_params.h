// Entry points of the CUDA attention kernels (FlashAttention-2 style, tensor-core MMA through CuTe's
// SM80 atoms) and the parameter structs of their small row-statistics kernels. The main kernels take
// the AttentionParams of ../params.h, shared with the CPU kernels; python/attention_ops_cuda.cu fills
// them; flash_dispatch.h is the one place that maps (dtype, head_dim) to a kernel.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "../params.h"

namespace iquest::cuda {

// Row statistics for the backward of attention_with_lse: delta = rowsum(dout * out) - dlse.
struct AttentionPrepParams {
  ElemType elem = ElemType::kBF16;
  int64_t rows = 0;  // tokens * heads
  int head_dim = 0;
  const void* dout = nullptr;
  const void* out = nullptr;
  bool out_is_f32 = false;      // out in float32 (a merged ring output) instead of the element type
  const float* dlse = nullptr;  // optional, (tokens, heads)
  float* delta = nullptr;
};

// Row statistics for the backward of loop attention: per (token, head), with g the saved gate,
// delta_global = dout . out_global, delta_local = dout . out_local,
// dlogit = (delta_global - delta_local) * g * (1 - g); and the gate parameter gradients as partial
// sums over chunks of kPrepChunk tokens, summed in a fixed order by the caller:
// d_gate_weight_partial (chunks, heads, head_dim), d_gate_bias_partial (chunks, heads).
constexpr int kPrepChunk = 64;

struct LoopPrepParams {
  ElemType elem = ElemType::kBF16;
  int64_t tokens = 0;
  int heads = 0;
  int head_dim = 0;
  const void* dout = nullptr;
  const void* q = nullptr;
  const float* out_global = nullptr;
  const float* out_local = nullptr;
  const float* gate = nullptr;
  float* delta_global = nullptr;
  float* delta_local = nullptr;
  float* dlogit = nullptr;
  float* d_gate_weight_partial = nullptr;
  float* d_gate_bias_partial = nullptr;
};

// Entry points (launch on `stream`, return immediately). They check nothing about tensors: the
// caller validated shapes, dtypes, head_dim in {64, 128} and alignment (16-byte rows).
bool flash_supported_head_dim(int head_dim);
void flash_fwd(const AttentionParams& p, cudaStream_t stream);
// dK/dV (one CTA per key block, walking the query blocks and the GQA group in a fixed order) then dQ
// (one CTA per query block, walking the key blocks): no atomics, bitwise deterministic.
void flash_bwd(const AttentionParams& p, cudaStream_t stream);
void attention_bwd_prep(const AttentionPrepParams& p, cudaStream_t stream);
void loop_bwd_prep(const LoopPrepParams& p, cudaStream_t stream);

}  // namespace iquest::cuda
