// Schemas of the attention ops and their CPU implementations: checks (attention_params.h), float32
// copies of the inputs, one AttentionParams for the kernels of csrc/loop_attention/cpu, outputs.
//
// The CPU kernels compute in float32: inputs of other dtypes are converted on entry, outputs converted
// back (or kept in float32: attention_with_lse's out_f32 / grads_f32). Key/value gradients accumulate
// per query head and are summed over GQA groups here. cu_seqlens is host memory here: its contents are
// validated before any kernel reads it.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "attention_params.h"
#include "op_signatures.h"

namespace iquest {
namespace {

using at::Tensor;
using namespace attention;

Tensor f32(const Tensor& t) { return t.to(at::kFloat).contiguous(); }

// Packed documents on the host: the validated offsets and the longest document.
struct HostPacking {
  Tensor offsets;
  int64_t num_docs = 0;
  int64_t longest = 0;
  const int32_t* ptr() const { return offsets.defined() ? offsets.data_ptr<int32_t>() : nullptr; }
};

HostPacking host_packing(const Tensor& q, const std::optional<Tensor>& cu_seqlens, std::optional<int64_t> max_seqlen) {
  HostPacking packing;
  if (!cu_seqlens.has_value()) return packing;
  packing.offsets = cu_seqlens->contiguous();
  const int32_t* cu = packing.offsets.data_ptr<int32_t>();
  const int64_t n = packing.offsets.numel();
  TORCH_CHECK_VALUE(cu[0] == 0, "cu_seqlens: expected [0, ...] with at least 2 entries, got first offset ", cu[0]);
  for (int64_t i = 1; i < n; ++i) {
    TORCH_CHECK_VALUE(cu[i] >= cu[i - 1], "cu_seqlens: expected non-decreasing offsets, got ", cu[i - 1], " then ",
                      cu[i], " at index ", i);
    packing.longest = std::max<int64_t>(packing.longest, cu[i] - cu[i - 1]);
  }
  TORCH_CHECK_VALUE(cu[n - 1] == q.size(0), "cu_seqlens: expected the last offset to equal the number of tokens ",
                    q.size(0), ", got ", cu[n - 1]);
  TORCH_CHECK_VALUE(!max_seqlen.has_value() || *max_seqlen >= packing.longest, "max_seqlen: expected at least the ",
                    "longest sequence in cu_seqlens (", packing.longest, "), got ", *max_seqlen);
  packing.num_docs = n - 1;
  return packing;
}

void set_cpu_params_fprop(AttentionParams& p, const Tensor& q, const Tensor& k, const HostPacking& packing,
                          int64_t q_start, int64_t k_start, double scale) {
  set_params_fprop(p, q, k, packing.ptr(), packing.num_docs, packing.longest, q_start, k_start, scale);
}

// Per-query-head key/value gradients (..., H, D) summed over GQA groups into (..., Hkv, D) of dtype.
Tensor sum_groups(const Tensor& per_q_head, int64_t kv_heads, at::ScalarType dtype) {
  auto shape = per_q_head.sizes().vec();
  const int64_t heads = shape[shape.size() - 2], dim = shape.back();
  if (heads == kv_heads) return per_q_head.to(dtype);
  shape.back() = heads / kv_heads;
  shape[shape.size() - 2] = kv_heads;
  shape.push_back(dim);
  return per_q_head.view(shape).sum(-2).to(dtype);
}

// Zero per-query-head accumulators for the key/value gradients of k (tokens..., Hkv, D) read by q.
Tensor per_query_head_zeros(const Tensor& q, const Tensor& k) {
  auto shape = q.sizes().vec();
  shape[shape.size() - 3] = k.size(-3);
  return at::zeros(shape, q.options().dtype(at::kFloat));
}

std::tuple<Tensor, Tensor> attention_with_lse_cpu(const Tensor& q, const Tensor& k, const Tensor& v, int64_t q_start,
                                                  int64_t k_start, int64_t window, double scale,
                                                  const std::optional<Tensor>& cu_seqlens,
                                                  std::optional<int64_t> max_seqlen, bool out_f32) {
  check_attention_inputs(q, k, v, q_start, k_start, window, scale, cu_seqlens, max_seqlen);
  const HostPacking packing = host_packing(q, cu_seqlens, max_seqlen);
  const Tensor qf = f32(q), kf = f32(k), vf = f32(v);
  Tensor out = at::empty_like(qf), lse_rows = empty_stats(qf);
  AttentionParams p;
  set_cpu_params_fprop(p, qf, kf, packing, q_start, k_start, scale);
  set_branch_fprop(p.branch[0], kf, vf, window, out, lse_rows);
  attention_fwd_cpu(p);
  return {out_f32 ? out : out.to(q.scalar_type()), lse_of_rows(lse_rows)};
}

std::tuple<Tensor, Tensor, Tensor> attention_with_lse_backward_cpu(
    const Tensor& grad_out, const std::optional<Tensor>& grad_lse, const Tensor& q, const Tensor& k, const Tensor& v,
    const Tensor& out, const Tensor& lse, int64_t q_start, int64_t k_start, int64_t window, double scale,
    const std::optional<Tensor>& cu_seqlens, std::optional<int64_t> max_seqlen, bool grads_f32) {
  check_attention_inputs(q, k, v, q_start, k_start, window, scale, cu_seqlens, max_seqlen);
  check_attention_saved(grad_out, grad_lse, q, out, lse);
  const HostPacking packing = host_packing(q, cu_seqlens, max_seqlen);
  const Tensor qf = f32(q), kf = f32(k), vf = f32(v), of = f32(out), dof = f32(grad_out);
  const Tensor lse_rows = rows_of_lse(lse);
  const Tensor dlse_rows = grad_lse.has_value() ? rows_of_lse(*grad_lse) : Tensor();
  Tensor dq = at::empty_like(qf), dk = per_query_head_zeros(qf, k), dv = at::zeros_like(dk);
  AttentionParams p;
  set_cpu_params_fprop(p, qf, kf, packing, q_start, k_start, scale);
  set_branch_fprop(p.branch[0], kf, vf, window, of, lse_rows);
  set_params_dgrad(p, dof, dq);
  set_branch_dgrad(p.branch[0], dk, dv, nullptr, GradCoef::kOne);
  p.dlse = dlse_rows.defined() ? dlse_rows.data_ptr<float>() : nullptr;
  attention_bwd_cpu(p);
  const int64_t kv_heads = k.size(-2);
  if (grads_f32) return {dq, sum_groups(dk, kv_heads, at::kFloat), sum_groups(dv, kv_heads, at::kFloat)};
  return {dq.to(q.scalar_type()), sum_groups(dk, kv_heads, k.scalar_type()), sum_groups(dv, kv_heads, v.scalar_type())};
}

using LoopFwdResult = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

LoopFwdResult loop_attention_cpu(const Tensor& q, const Tensor& k_global, const Tensor& v_global,
                                 const Tensor& k_local, const Tensor& v_local, const Tensor& gate_weight,
                                 const Tensor& gate_bias, int64_t window, double scale,
                                 const std::optional<Tensor>& cu_seqlens, std::optional<int64_t> max_seqlen) {
  check_loop_inputs(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, window, scale, cu_seqlens,
                    max_seqlen);
  const HostPacking packing = host_packing(q, cu_seqlens, max_seqlen);
  const Tensor qf = f32(q), kgf = f32(k_global), vgf = f32(v_global), klf = f32(k_local), vlf = f32(v_local);
  const Tensor wf = f32(gate_weight), bf = f32(gate_bias);
  Tensor out = at::empty_like(qf), out_global = at::empty_like(qf), out_local = at::empty_like(qf);
  Tensor lse_global = empty_stats(qf), lse_local = empty_stats(qf), gate = empty_stats(qf);
  AttentionParams p;
  set_cpu_params_fprop(p, qf, kgf, packing, 0, 0, scale);
  set_branch_fprop(p.branch[0], kgf, vgf, 0, out_global, lse_global);
  set_branch_fprop(p.branch[1], klf, vlf, window, out_local, lse_local);
  set_gate_fprop(p, wf, bf, gate);
  p.out = out.data_ptr();
  loop_attention_fwd_cpu(p);
  return {out.to(q.scalar_type()), out_global, out_local, lse_global, lse_local, gate};
}

using LoopBwdResult = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

LoopBwdResult loop_attention_backward_cpu(const Tensor& grad_out, const Tensor& q, const Tensor& k_global,
                                          const Tensor& v_global, const Tensor& k_local, const Tensor& v_local,
                                          const Tensor& gate_weight, const Tensor& gate_bias, const Tensor& out_global,
                                          const Tensor& out_local, const Tensor& lse_global, const Tensor& lse_local,
                                          const Tensor& gate, int64_t window, double scale,
                                          const std::optional<Tensor>& cu_seqlens, std::optional<int64_t> max_seqlen) {
  check_loop_inputs(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, window, scale, cu_seqlens,
                    max_seqlen);
  check_loop_saved(grad_out, q, out_global, out_local, lse_global, lse_local, gate);
  const HostPacking packing = host_packing(q, cu_seqlens, max_seqlen);
  const Tensor qf = f32(q), kgf = f32(k_global), vgf = f32(v_global), klf = f32(k_local), vlf = f32(v_local);
  const Tensor wf = f32(gate_weight), bf = f32(gate_bias), dof = f32(grad_out);
  const Tensor ogf = f32(out_global), olf = f32(out_local), lgf = f32(lse_global), llf = f32(lse_local), gf = f32(gate);
  Tensor dq = at::empty_like(qf);
  Tensor dkg = at::zeros_like(qf), dvg = at::zeros_like(qf), dkl = at::zeros_like(qf), dvl = at::zeros_like(qf);
  const int64_t docs = packing.offsets.defined() ? packing.num_docs : q.size(0);
  Tensor dw = at::empty({docs, q.size(-2), q.size(-1)}, qf.options()), db = at::empty({docs, q.size(-2)}, qf.options());
  AttentionParams p;
  set_cpu_params_fprop(p, qf, kgf, packing, 0, 0, scale);
  set_branch_fprop(p.branch[0], kgf, vgf, 0, ogf, lgf);
  set_branch_fprop(p.branch[1], klf, vlf, window, olf, llf);
  set_gate_fprop(p, wf, bf, gf);
  set_params_dgrad(p, dof, dq);
  set_branch_dgrad(p.branch[0], dkg, dvg, nullptr, GradCoef::kGate);
  set_branch_dgrad(p.branch[1], dkl, dvl, nullptr, GradCoef::kOneMinusGate);
  p.d_gate_weight = dw.data_ptr<float>();
  p.d_gate_bias = db.data_ptr<float>();
  loop_attention_bwd_cpu(p);
  const int64_t kv_heads = k_global.size(-2);
  return {dq.to(q.scalar_type()),
          sum_groups(dkg, kv_heads, k_global.scalar_type()),
          sum_groups(dvg, kv_heads, v_global.scalar_type()),
          sum_groups(dkl, kv_heads, k_local.scalar_type()),
          sum_groups(dvl, kv_heads, v_local.scalar_type()),
          dw.sum(0).to(gate_weight.scalar_type()),
          db.sum(0).to(gate_bias.scalar_type())};
}

}  // namespace

TORCH_LIBRARY(iquest, m) {
  using signatures::schema;
  m.def(schema("attention_with_lse", signatures::kAttentionWithLse).c_str());
  m.def(schema("attention_with_lse_backward", signatures::kAttentionWithLseBackward).c_str());
  m.def(schema("loop_attention", signatures::kLoopAttention).c_str());
  m.def(schema("loop_attention_backward", signatures::kLoopAttentionBackward).c_str());
}

TORCH_LIBRARY_IMPL(iquest, CPU, m) {
  m.impl("attention_with_lse", &attention_with_lse_cpu);
  m.impl("attention_with_lse_backward", &attention_with_lse_backward_cpu);
  m.impl("loop_attention", &loop_attention_cpu);
  m.impl("loop_attention_backward", &loop_attention_backward_cpu);
}

}  // namespace iquest
