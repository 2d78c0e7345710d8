// Parameter structs and entry points of the CUDA attention kernels (FlashAttention-2 style, tensor-core
// MMA through CuTe's SM80 atoms). Plain pointers and sizes, no torch types: python/attention_ops_cuda.cu
// fills them from tensors; flash_dispatch.h is the one place that maps (dtype, head_dim) to a kernel.
//
// Layouts are those of ../params.h: activations are row-major token rows, row t of q holds
// (heads, head_dim) values, row t of k/v holds (kv_heads, head_dim); per-row statistics (lse, gate,
// delta) are (tokens, heads) float32. Query head h reads key/value head h / (heads / kv_heads).
// Sequences are either B equal-length ones (q_len / k_len) or packed documents (cu_seqlens, device
// memory, shared by queries and keys).
//
// One "branch" is one causal (optionally windowed) attention of the queries over one K/V pair.
// attention_with_lse is one branch; loop attention is two (global causal over k/v_global, windowed over
// k/v_local) plus the gate and the mix, all in the same kernels.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace iquest::cuda {

enum class ElemType : int { kBF16 = 0, kFP16 = 1 };

// How a branch's share of the output gradient is formed from dO: attention_with_lse uses dO itself,
// loop attention's global branch g * dO and its window branch (1 - g) * dO (g = the saved gate).
enum class GradCoef : int { kOne = 0, kGate = 1, kOneMinusGate = 2 };

struct FlashBranch {
  const void* k = nullptr;  // (k tokens, kv_heads, head_dim), element type
  const void* v = nullptr;
  int64_t window = 0;  // 0: causal only; W >= 1: the W keys ending at the query

  // Forward: normalised branch output (q tokens, heads, head_dim), float32 when out_is_f32 (loop
  // attention keeps its branch outputs in float32) else the element type; lse (q tokens, heads).
  void* out = nullptr;
  bool out_is_f32 = false;
  float* lse = nullptr;  // written by the forward, read by the backward

  // Backward: delta = rowsum(dO * branch output) - d lse, (q tokens, heads); coef picks dO's share.
  const float* delta = nullptr;
  GradCoef coef = GradCoef::kOne;
  void* dk = nullptr;  // (k tokens, kv_heads, head_dim), element type, written (GQA groups summed)
  void* dv = nullptr;
};

struct FlashParams {
  ElemType elem = ElemType::kBF16;
  int head_dim = 0;  // 64 or 128
  int heads = 0;
  int kv_heads = 0;

  int num_seqs = 0;
  int64_t q_len = 0;  // per sequence, when cu_seqlens is null
  int64_t k_len = 0;
  const int32_t* cu_seqlens = nullptr;  // device memory, (num_seqs + 1,)
  int64_t max_q_len = 0;               // longest sequence (grid size)
  int64_t max_k_len = 0;

  int64_t q_start = 0;  // absolute position of query 0 / key 0 of every sequence
  int64_t k_start = 0;
  float scale = 1.f;

  const void* q = nullptr;  // (q tokens, heads, head_dim)
  int num_branches = 1;     // 1: attention_with_lse, 2: loop attention
  FlashBranch branch[2];

  // Loop attention (num_branches == 2): gate = sigmoid(q . gate_weight[h] + gate_bias[h]) is written
  // by the forward and read by the backward; out = gate * out_global + (1 - gate) * out_local.
  const float* gate_weight = nullptr;  // (heads, head_dim) float32
  const float* gate_bias = nullptr;    // (heads,) float32
  float* gate = nullptr;               // (q tokens, heads)
  void* out = nullptr;                 // (q tokens, heads, head_dim), element type

  // Backward.
  const void* dout = nullptr;     // (q tokens, heads, head_dim), element type
  void* dq = nullptr;             // written, element type
  const float* dlogit = nullptr;  // loop attention: d loss / d gate logit, (q tokens, heads)
};

// Row statistics for the backward of attention_with_lse: delta = rowsum(dout * out) - dlse.
struct AttentionPrepParams {
  ElemType elem = ElemType::kBF16;
  int64_t rows = 0;  // tokens * heads
  int head_dim = 0;
  const void* dout = nullptr;
  const void* out = nullptr;
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
void flash_fwd(const FlashParams& p, cudaStream_t stream);
// dK/dV (one CTA per key block, walking the query blocks and the GQA group in a fixed order) then dQ
// (one CTA per query block, walking the key blocks): no atomics, bitwise deterministic.
void flash_bwd(const FlashParams& p, cudaStream_t stream);
void attention_bwd_prep(const AttentionPrepParams& p, cudaStream_t stream);
void loop_bwd_prep(const LoopPrepParams& p, cudaStream_t stream);

}  // namespace iquest::cuda
