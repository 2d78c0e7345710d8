// Parameter structs of the attention kernels: plain pointers and sizes, no torch types.
//
// Every activation is a row-major buffer of token rows: row t holds (heads, head_dim) values, so a
// head's vector of token t starts at t * heads * head_dim + h * head_dim. Per-row statistics (lse,
// gate) are (tokens, heads). A batch of B sequences of length L is B * L rows; packed sequences are
// described by cu_seqlens (sequence s is rows [cu_seqlens[s], cu_seqlens[s + 1]), for queries and
// keys alike). GQA: query head h reads key/value head h / (heads / kv_heads).
#pragma once

#include <cstdint>

namespace iquest {

struct SequenceLayout {
  int64_t num_seqs = 0;                // B, or the number of packed documents
  int64_t q_len = 0;                   // per-sequence query length when cu_seqlens is null
  int64_t k_len = 0;                   // per-sequence key length when cu_seqlens is null
  const int32_t* cu_seqlens = nullptr;  // packed layout (host memory for CPU kernels)

  int64_t q_begin(int64_t s) const { return cu_seqlens ? cu_seqlens[s] : s * q_len; }
  int64_t k_begin(int64_t s) const { return cu_seqlens ? cu_seqlens[s] : s * k_len; }
  int64_t q_count(int64_t s) const { return cu_seqlens ? cu_seqlens[s + 1] - cu_seqlens[s] : q_len; }
  int64_t k_count(int64_t s) const { return cu_seqlens ? cu_seqlens[s + 1] - cu_seqlens[s] : k_len; }
};

struct HeadLayout {
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t q_row() const { return heads * head_dim; }
  int64_t kv_row() const { return kv_heads * head_dim; }
  int64_t kv_head_of(int64_t h) const { return h / (heads / kv_heads); }
};

// One attention branch: causal, optionally windowed, with absolute position offsets so that a block
// of a longer sequence can be computed (context parallelism). Query i of a sequence sits at position
// q_start + i, key j at k_start + j.
struct AttentionFwdParams {
  SequenceLayout seq;
  HeadLayout dims;
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;  // (q tokens, heads, head_dim); rows that see no key are 0
  float* lse = nullptr;  // (q tokens, heads); -inf for rows that see no key
  int64_t q_start = 0;
  int64_t k_start = 0;
  int64_t window = 0;  // 0: no window
  float scale = 1.f;
};

// Gradients of AttentionFwdParams. dk/dv accumulate per *query* head: (k tokens, heads, head_dim),
// zero-initialised by the caller, which sums the GQA groups afterwards. dq is written.
// delta_offset (optional, (q tokens, heads)) is subtracted from rowsum(dout * out): it carries the
// gradient of lse, since d lse / d s = softmax(s).
struct AttentionBwdParams {
  AttentionFwdParams fwd;  // out and lse are read, not written
  const float* dout = nullptr;
  const float* dlse = nullptr;
  float* dq = nullptr;
  float* dk = nullptr;
  float* dv = nullptr;
};

// Fused gated loop attention: global causal branch over (k_global, v_global), windowed branch over
// (k_local, v_local), gate g = sigmoid(q . gate_weight[h] + gate_bias[h]) and
// out = g * out_global + (1 - g) * out_local. The branch outputs, their lse and g are kept for backward.
struct LoopAttentionFwdParams {
  SequenceLayout seq;  // q_len == k_len
  HeadLayout dims;
  const float* q = nullptr;
  const float* k_global = nullptr;
  const float* v_global = nullptr;
  const float* k_local = nullptr;
  const float* v_local = nullptr;
  const float* gate_weight = nullptr;  // (heads, head_dim)
  const float* gate_bias = nullptr;    // (heads,)
  float* out = nullptr;
  float* out_global = nullptr;
  float* out_local = nullptr;
  float* lse_global = nullptr;
  float* lse_local = nullptr;
  float* gate = nullptr;  // (tokens, heads)
  int64_t window = 64;
  float scale = 1.f;
};

// Gradients of LoopAttentionFwdParams. Key/value gradients accumulate per query head (see
// AttentionBwdParams); d_gate_weight / d_gate_bias are per sequence, (num_seqs, heads, head_dim) and
// (num_seqs, heads), summed by the caller in a fixed order.
struct LoopAttentionBwdParams {
  LoopAttentionFwdParams fwd;  // branch outputs, lse and gate are read
  const float* dout = nullptr;
  float* dq = nullptr;
  float* dk_global = nullptr;
  float* dv_global = nullptr;
  float* dk_local = nullptr;
  float* dv_local = nullptr;
  float* d_gate_weight = nullptr;
  float* d_gate_bias = nullptr;
};

void attention_fwd_cpu(const AttentionFwdParams& p);
void attention_bwd_cpu(const AttentionBwdParams& p);
void loop_attention_fwd_cpu(const LoopAttentionFwdParams& p);
void loop_attention_bwd_cpu(const LoopAttentionBwdParams& p);

}  // namespace iquest
