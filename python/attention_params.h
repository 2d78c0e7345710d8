// The binding vocabulary of the attention ops, shared by the CPU (attention_ops.cpp) and CUDA
// (attention_ops_cuda.cu) registrations:
//
// - check_*: every shape, dtype, device and scalar argument of each op, checked in C++ (ValueError
//   naming the argument), so that a direct torch.ops.iquest.* call can never make a kernel read out of
//   bounds. cu_seqlens *contents* are checked by each device's binding (host: before the call; CUDA: on
//   the device, without a host synchronisation).
// - empty_stats / lse_of_rows / rows_of_lse: output allocation and the (rows, H) <-> (B, H, L) layouts.
// - set_params_fprop / set_branch_fprop / set_gate_fprop / set_params_dgrad / set_branch_dgrad: fill
//   the one AttentionParams of csrc/loop_attention/params.h from tensors, in the manner of
//   FlashAttention's set_params_fprop / set_params_dgrad.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "../csrc/loop_attention/params.h"
#include "arg_checks.h"

namespace iquest::attention {

using at::Tensor;
using NamedTensors = std::vector<std::pair<const char*, Tensor>>;

constexpr int64_t kMaxHeadDim = 256;

// ---------------------------------------------------------------------------------------------
// Checks

// q (B, Lq, H, D) or packed (T, H, D); every K/V tensor (B, Lk, Hkv, D) or (T, Hkv, D), all of one
// shape, q's dtype (float32, bfloat16 or float16) and q's device; H % Hkv == 0; 1 <= D <= 256.
inline void check_qkv(const Tensor& q, const NamedTensors& kvs, bool packed) {
  const int64_t rank = packed ? 3 : 4;
  checks::check_dim(q, "q", rank, packed ? "(T, H, D)" : "(B, L, H, D)");
  checks::check_dtype(q, "q", {at::kFloat, at::kBFloat16, at::kHalf});
  const auto& [first_name, first] = kvs.front();
  for (const auto& [name, t] : kvs) {
    checks::check_dim(t, name, rank, packed ? "(T, Hkv, D)" : "(B, Lk, Hkv, D)");
    checks::check_same_dtype(t, name, q, "q");
    checks::check_same_device(t, name, q, "q");
    TORCH_CHECK_VALUE(t.size(0) == q.size(0) && t.size(-1) == q.size(-1), name, ": expected shape ",
                      packed ? "(T, Hkv, D) with T=" : "(B, Lk, Hkv, D) with B=", q.size(0), " and D=", q.size(-1),
                      " from q, got ", t.sizes());
    TORCH_CHECK_VALUE(t.sizes() == first.sizes(), name, ": expected shape ", first.sizes(), " like ", first_name,
                      ", got ", t.sizes());
  }
  const int64_t heads = q.size(-2), kv_heads = first.size(-2), head_dim = q.size(-1);
  TORCH_CHECK_VALUE(kv_heads >= 1 && heads % kv_heads == 0, first_name, ": expected a number of KV heads dividing the ",
                    heads, " query heads (GQA), got ", kv_heads);
  TORCH_CHECK_VALUE(head_dim >= 1 && head_dim <= kMaxHeadDim, "q: expected head_dim D in [1, ", kMaxHeadDim, "], got ",
                    head_dim);
}

// cu_seqlens: a 1-D int32 tensor of at least 2 offsets on q's device; max_seqlen only with it, >= 0.
inline void check_packing(const Tensor& q, const std::optional<Tensor>& cu_seqlens, std::optional<int64_t> max_seqlen) {
  if (!cu_seqlens.has_value()) {
    TORCH_CHECK_VALUE(!max_seqlen.has_value(), "max_seqlen: only meaningful with cu_seqlens (packed layout), got ",
                      *max_seqlen);
    return;
  }
  checks::check_dtype(*cu_seqlens, "cu_seqlens", {at::kInt});
  TORCH_CHECK_VALUE(cu_seqlens->dim() == 1 && cu_seqlens->size(0) >= 2,
                    "cu_seqlens: expected a 1-D int32 tensor (num_docs + 1,), got shape ", cu_seqlens->sizes());
  checks::check_same_device(*cu_seqlens, "cu_seqlens", q, "q");
  if (max_seqlen.has_value()) checks::check_at_least(*max_seqlen, "max_seqlen", 0);
}

inline void check_scalars(int64_t q_start, int64_t k_start, int64_t window, int64_t least_window, double scale) {
  TORCH_CHECK_VALUE(q_start >= 0, "q_start: expected a non-negative int, got ", q_start);
  TORCH_CHECK_VALUE(k_start >= 0, "k_start: expected a non-negative int, got ", k_start);
  checks::check_at_least(window, "window", least_window);
  TORCH_CHECK_VALUE(std::isfinite(scale) && scale > 0, "scale: expected a positive finite float, got ", scale);
}

// A float32 statistics tensor (lse, gate, ...) of the given shape on q's device.
inline void check_stats(const Tensor& t, const char* name, at::IntArrayRef shape, const char* layout, const Tensor& q) {
  checks::check_dtype(t, name, {at::kFloat});
  checks::check_shape(t, name, shape, layout);
  checks::check_same_device(t, name, q, "q");
}

// A tensor shaped like q (an output or its gradient) on q's device, of a float dtype.
inline void check_like_q(const Tensor& t, const char* name, const Tensor& q) {
  checks::check_shape(t, name, q.sizes(), "like q");
  checks::check_dtype(t, name, {at::kFloat, at::kBFloat16, at::kHalf});
  checks::check_same_device(t, name, q, "q");
}

// gate_weight (H, D) and gate_bias (H,), one float dtype, on q's device.
inline void check_gate(const Tensor& gate_weight, const Tensor& gate_bias, const Tensor& q) {
  const int64_t heads = q.size(-2), head_dim = q.size(-1);
  checks::check_dtype(gate_weight, "gate_weight", {at::kFloat, at::kBFloat16, at::kHalf});
  checks::check_same_dtype(gate_bias, "gate_bias", gate_weight, "gate_weight");
  checks::check_shape(gate_weight, "gate_weight", {heads, head_dim}, "(H, D)");
  checks::check_shape(gate_bias, "gate_bias", {heads}, "(H,)");
  checks::check_same_device(gate_weight, "gate_weight", q, "q");
  checks::check_same_device(gate_bias, "gate_bias", q, "q");
}

// The lse layout of attention_with_lse for q: (B, H, Lq), or (H, T) packed.
inline std::vector<int64_t> lse_shape(const Tensor& q) {
  if (q.dim() == 3) return {q.size(1), q.size(0)};
  return {q.size(0), q.size(2), q.size(1)};
}

// The row-statistics layout of loop attention for q: (B, L, H), or (T, H) packed.
inline std::vector<int64_t> row_stats_shape(const Tensor& q) { return q.sizes().slice(0, q.dim() - 1).vec(); }

// ---------------------------------------------------------------------------------------------
// The checks of each op (device-independent)

inline void check_attention_inputs(const Tensor& q, const Tensor& k, const Tensor& v, int64_t q_start, int64_t k_start,
                                   int64_t window, double scale, const std::optional<Tensor>& cu_seqlens,
                                   std::optional<int64_t> max_seqlen) {
  check_qkv(q, {{"k", k}, {"v", v}}, cu_seqlens.has_value());
  check_packing(q, cu_seqlens, max_seqlen);
  check_scalars(q_start, k_start, window, 0, scale);
}

// attention_with_lse_backward's gradients and saved forward results.
inline void check_attention_saved(const Tensor& grad_out, const std::optional<Tensor>& grad_lse, const Tensor& q,
                                  const Tensor& out, const Tensor& lse) {
  check_like_q(grad_out, "grad_out", q);
  check_like_q(out, "out", q);
  check_stats(lse, "lse", lse_shape(q), "(B, H, Lq) or packed (H, T)", q);
  if (grad_lse.has_value()) check_stats(*grad_lse, "grad_lse", lse_shape(q), "like lse", q);
}

inline void check_loop_inputs(const Tensor& q, const Tensor& k_global, const Tensor& v_global, const Tensor& k_local,
                              const Tensor& v_local, const Tensor& gate_weight, const Tensor& gate_bias, int64_t window,
                              double scale, const std::optional<Tensor>& cu_seqlens, std::optional<int64_t> max_seqlen) {
  const bool packed = cu_seqlens.has_value();
  check_qkv(q, {{"k_global", k_global}, {"v_global", v_global}, {"k_local", k_local}, {"v_local", v_local}}, packed);
  TORCH_CHECK_VALUE(packed || k_global.size(1) == q.size(1), "k_global: expected the query length L=", q.size(1),
                    " in dim 1, got ", k_global.sizes());
  check_gate(gate_weight, gate_bias, q);
  check_packing(q, cu_seqlens, max_seqlen);
  check_scalars(0, 0, window, 1, scale);
}

// loop_attention_backward's output gradient and saved forward results (float32 branch outputs and rows).
inline void check_loop_saved(const Tensor& grad_out, const Tensor& q, const Tensor& out_global, const Tensor& out_local,
                             const Tensor& lse_global, const Tensor& lse_local, const Tensor& gate) {
  check_like_q(grad_out, "grad_out", q);
  for (const auto& [name, t] : NamedTensors{{"out_global", out_global}, {"out_local", out_local}}) {
    check_stats(t, name, q.sizes(), "like q", q);
  }
  const auto rows = row_stats_shape(q);
  for (const auto& [name, t] : NamedTensors{{"lse_global", lse_global}, {"lse_local", lse_local}, {"gate", gate}}) {
    check_stats(t, name, rows, "(B, L, H) or packed (T, H)", q);
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs and layouts

// Statistics (tokens..., H) float32 of q (tokens..., H, D).
inline Tensor empty_stats(const Tensor& q) { return at::empty(row_stats_shape(q), q.options().dtype(at::kFloat)); }

// Row statistics (tokens..., H) -> attention_with_lse's lse layout (B, H, L) / (H, T), and back.
inline Tensor lse_of_rows(const Tensor& rows) { return rows.transpose(-1, -2).contiguous(); }
inline Tensor rows_of_lse(const Tensor& lse) { return lse.transpose(-1, -2).to(at::kFloat).contiguous(); }

// ---------------------------------------------------------------------------------------------
// Parameter fillers

inline ElemType elem_type_of(const Tensor& t) {
  switch (t.scalar_type()) {
    case at::kBFloat16: return ElemType::kBF16;
    case at::kHalf: return ElemType::kFP16;
    default: return ElemType::kF32;
  }
}

// Sizes, positions, scale and q. Sequences: q (B, Lq, ...) with k (B, Lk, ...), or packed documents
// given by cu_seqlens_ptr (memory the kernels read: host for CPU, device for CUDA) and the longest
// document max_seqlen.
inline void set_params_fprop(AttentionParams& p, const Tensor& q, const Tensor& k, const int32_t* cu_seqlens_ptr,
                             int64_t num_docs, int64_t max_seqlen, int64_t q_start, int64_t k_start, double scale) {
  p.elem = elem_type_of(q);
  p.head_dim = static_cast<int>(q.size(-1));
  p.heads = static_cast<int>(q.size(-2));
  p.kv_heads = static_cast<int>(k.size(-2));
  if (cu_seqlens_ptr != nullptr) {
    p.num_seqs = static_cast<int>(num_docs);
    p.cu_seqlens = cu_seqlens_ptr;
    p.max_q_len = p.max_k_len = max_seqlen;
  } else {
    p.num_seqs = static_cast<int>(q.size(0));
    p.q_len = p.max_q_len = q.size(1);
    p.k_len = p.max_k_len = k.size(1);
  }
  p.q_start = q_start;
  p.k_start = k_start;
  p.scale = static_cast<float>(scale);
  p.q = q.data_ptr();
}

// One branch's K/V, window and outputs (out: float32 or the element type; lse_rows (tokens..., H)).
inline void set_branch_fprop(AttentionBranch& br, const Tensor& k, const Tensor& v, int64_t window, const Tensor& out,
                             const Tensor& lse_rows) {
  br.k = k.data_ptr();
  br.v = v.data_ptr();
  br.window = window;
  br.out = const_cast<void*>(out.data_ptr());
  br.out_is_f32 = out.scalar_type() == at::kFloat;
  br.lse = const_cast<float*>(lse_rows.data_ptr<float>());
}

// Loop attention's gate: float32 parameters and the gate rows (written forward, read backward).
inline void set_gate_fprop(AttentionParams& p, const Tensor& gate_weight_f32, const Tensor& gate_bias_f32,
                           const Tensor& gate) {
  p.num_branches = 2;
  p.gate_weight = gate_weight_f32.data_ptr<float>();
  p.gate_bias = gate_bias_f32.data_ptr<float>();
  p.gate = const_cast<float*>(gate.data_ptr<float>());
}

// The output gradient and dq (float32 or the element type: grads_are_f32 follows dq).
inline void set_params_dgrad(AttentionParams& p, const Tensor& dout, const Tensor& dq) {
  p.dout = dout.data_ptr();
  p.dq = dq.data_ptr();
  p.grads_are_f32 = dq.scalar_type() == at::kFloat;
}

// One branch's key/value gradients and (CUDA) its delta rows and share of dO; its K/V, window, saved
// output and lse come from set_branch_fprop.
inline void set_branch_dgrad(AttentionBranch& br, const Tensor& dk, const Tensor& dv, const float* delta,
                             GradCoef coef) {
  br.dk = dk.data_ptr();
  br.dv = dv.data_ptr();
  br.delta = delta;
  br.coef = coef;
}

}  // namespace iquest::attention
