// The one parameter struct of the attention kernels, CPU and CUDA alike: plain pointers and sizes, no
// torch types. The binding layer (python/attention_params.h) fills it from tensors, in the manner of
// FlashAttention's set_params_fprop / set_params_dgrad; the CPU kernels (cpu/) and the CUDA kernels
// (cuda/) read it.
//
// Activations are row-major buffers of token rows: row t of q holds (heads, head_dim) values, row t of
// k/v holds (kv_heads, head_dim); per-row statistics (lse, gate, delta) are (tokens, heads) float32.
// Query head h reads key/value head h / (heads / kv_heads). Sequences are either num_seqs equal-length
// ones (q_len / k_len) or packed documents (cu_seqlens, (num_seqs + 1,) offsets shared by queries and
// keys: host memory for the CPU kernels, device memory for the CUDA kernels).
//
// One "branch" is one causal (optionally windowed) attention of the queries over one K/V pair, with
// absolute position offsets (query i of a sequence sits at q_start + i, key j at k_start + j) so that a
// block of a longer sequence can be computed (context parallelism). attention_with_lse is one branch;
// loop attention is two (global causal over k/v_global, windowed over k/v_local) plus the gate
// g = sigmoid(q . gate_weight[h] + gate_bias[h]) and the mix out = g * out_global + (1 - g) * out_local.
//
// Element types: the CPU kernels compute on float32 buffers (elem = kF32, the binding converts); the
// CUDA kernels take bfloat16 / float16 at head_dim 64 or 128.
#pragma once

#include <cstdint>

namespace iquest {

enum class ElemType : int { kBF16 = 0, kFP16 = 1, kF32 = 2 };

// How a branch's share of the output gradient is formed from dO: attention_with_lse uses dO itself,
// loop attention's global branch g * dO and its window branch (1 - g) * dO (g = the saved gate).
enum class GradCoef : int { kOne = 0, kGate = 1, kOneMinusGate = 2 };

struct AttentionBranch {
  const void* k = nullptr;  // (k tokens, kv_heads, head_dim), element type
  const void* v = nullptr;
  int64_t window = 0;  // 0: causal only; W >= 1: the W keys ending at the query

  // Normalised branch output (q tokens, heads, head_dim): written by the forward, read by the CPU
  // backward. float32 when out_is_f32 (loop attention's branches; attention_with_lse's partial outputs
  // for a float32 merge), else the element type.
  void* out = nullptr;
  bool out_is_f32 = false;
  float* lse = nullptr;  // (q tokens, heads); -inf for rows that see no key. Written forward, read backward.

  // Backward (CUDA): delta = rowsum(dO * branch output) - d lse, (q tokens, heads); coef picks dO's share.
  const float* delta = nullptr;
  GradCoef coef = GradCoef::kOne;
  // Key/value gradients. CUDA: (k tokens, kv_heads, head_dim) with the GQA groups summed, written.
  // CPU: per *query* head, (k tokens, heads, head_dim) float32, zero-initialised by the caller, which
  // sums the GQA groups afterwards.
  void* dk = nullptr;
  void* dv = nullptr;
};

struct AttentionParams {
  ElemType elem = ElemType::kF32;
  int head_dim = 0;
  int heads = 0;
  int kv_heads = 0;

  int num_seqs = 0;
  int64_t q_len = 0;  // per sequence, when cu_seqlens is null
  int64_t k_len = 0;
  const int32_t* cu_seqlens = nullptr;  // (num_seqs + 1,)
  int64_t max_q_len = 0;               // longest sequence (CUDA grid size)
  int64_t max_k_len = 0;

  int64_t q_start = 0;  // absolute position of query 0 / key 0 of every sequence
  int64_t k_start = 0;
  float scale = 1.f;

  const void* q = nullptr;  // (q tokens, heads, head_dim)
  int num_branches = 1;     // 1: attention_with_lse, 2: loop attention
  AttentionBranch branch[2];

  // Loop attention (num_branches == 2): the gate is written by the forward and read by the backward.
  const float* gate_weight = nullptr;  // (heads, head_dim) float32
  const float* gate_bias = nullptr;    // (heads,) float32
  float* gate = nullptr;               // (q tokens, heads)
  void* out = nullptr;                 // (q tokens, heads, head_dim), element type

  // Backward.
  const void* dout = nullptr;     // (q tokens, heads, head_dim), element type
  void* dq = nullptr;             // written; float32 when grads_are_f32, else the element type
  bool grads_are_f32 = false;     // dq, dk, dv in float32 (partial gradients of a context-parallel ring)
  const float* dlse = nullptr;    // CPU attention_with_lse: optional d lse, (q tokens, heads)
  const float* dlogit = nullptr;  // CUDA loop attention: d loss / d gate logit, (q tokens, heads)
  float* d_gate_weight = nullptr;  // CPU loop attention: per sequence, (num_seqs, heads, head_dim)
  float* d_gate_bias = nullptr;    // CPU loop attention: per sequence, (num_seqs, heads)
};

void attention_fwd_cpu(const AttentionParams& p);
void attention_bwd_cpu(const AttentionParams& p);
void loop_attention_fwd_cpu(const AttentionParams& p);
void loop_attention_bwd_cpu(const AttentionParams& p);

}  // namespace iquest
