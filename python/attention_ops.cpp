// Schemas of the attention ops and their CPU implementations: tensors in, parameter structs to the
// kernels of csrc/, tensors out. Shape and dtype checks that name the argument live in Python
// (iquest_core/ops); here are the data-dependent ones (cu_seqlens contents) and a backstop.
//
// The CPU kernels compute in float32: inputs of other dtypes are converted on entry, outputs
// converted back. Key/value gradients accumulate per query head and are summed over GQA groups here.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../csrc/loop_attention/params.h"

namespace iquest {
namespace {

using at::Tensor;

Tensor f32(const Tensor& t) { return t.to(at::kFloat).contiguous(); }

// Sequence layout of q (B, L, H, D) with k (B, Lk, Hkv, D), or packed q (T, H, D) with cu_seqlens.
// cu_seqlens_host keeps the host copy alive while the kernel runs.
SequenceLayout sequence_layout(const Tensor& q, const Tensor& k, const std::optional<Tensor>& cu_seqlens,
                               std::optional<int64_t> max_seqlen, Tensor& cu_seqlens_host) {
  SequenceLayout seq;
  if (!cu_seqlens.has_value()) {
    seq.num_seqs = q.size(0);
    seq.q_len = q.size(1);
    seq.k_len = k.size(1);
    return seq;
  }
  cu_seqlens_host = cu_seqlens->to(at::kCPU, at::kInt).contiguous();
  const int32_t* cu = cu_seqlens_host.data_ptr<int32_t>();
  const int64_t n = cu_seqlens_host.numel();
  TORCH_CHECK_VALUE(n >= 2 && cu[0] == 0, "cu_seqlens: expected [0, ...] with at least 2 entries");
  int64_t longest = 0;
  for (int64_t i = 1; i < n; ++i) {
    TORCH_CHECK_VALUE(cu[i] >= cu[i - 1], "cu_seqlens: expected non-decreasing offsets, got ", cu[i - 1],
                      " then ", cu[i], " at index ", i);
    longest = std::max<int64_t>(longest, cu[i] - cu[i - 1]);
  }
  TORCH_CHECK_VALUE(cu[n - 1] == q.size(0), "cu_seqlens: expected the last offset to equal the number of tokens ",
                    q.size(0), ", got ", cu[n - 1]);
  TORCH_CHECK_VALUE(!max_seqlen.has_value() || *max_seqlen >= longest, "max_seqlen: expected at least the longest ",
                    "sequence in cu_seqlens (", longest, "), got ", *max_seqlen);
  seq.num_seqs = n - 1;
  seq.cu_seqlens = cu;
  return seq;
}

HeadLayout head_layout(const Tensor& q, const Tensor& k) {
  HeadLayout dims;
  dims.heads = q.size(-2);
  dims.kv_heads = k.size(-2);
  dims.head_dim = q.size(-1);
  TORCH_CHECK_VALUE(dims.kv_heads > 0 && dims.heads % dims.kv_heads == 0, "k: expected a number of heads dividing ",
                    dims.heads, ", got ", dims.kv_heads);
  return dims;
}

// Sums per-query-head key/value gradients (..., H, D) over GQA groups into (..., Hkv, D) of dtype.
Tensor sum_groups(const Tensor& per_q_head, int64_t kv_heads, at::ScalarType dtype) {
  auto shape = per_q_head.sizes().vec();
  const int64_t heads = shape[shape.size() - 2], dim = shape.back();
  if (heads == kv_heads) return per_q_head.to(dtype);
  shape.back() = heads / kv_heads;
  shape[shape.size() - 2] = kv_heads;
  shape.push_back(dim);
  return per_q_head.view(shape).sum(-2).to(dtype);
}

// Statistics (tokens..., H) of q (tokens..., H, D).
Tensor empty_stats(const Tensor& q) { return at::empty(q.sizes().slice(0, q.dim() - 1), q.options().dtype(at::kFloat)); }

std::tuple<Tensor, Tensor> attention_with_lse_cpu(const Tensor& q, const Tensor& k, const Tensor& v, int64_t q_start,
                                                  int64_t k_start, int64_t window, double scale,
                                                  const std::optional<Tensor>& cu_seqlens) {
  const Tensor qf = f32(q), kf = f32(k), vf = f32(v);
  Tensor cu_host;
  AttentionFwdParams p;
  p.seq = sequence_layout(q, k, cu_seqlens, std::nullopt, cu_host);
  p.dims = head_layout(q, k);
  Tensor out = at::empty_like(qf), lse = empty_stats(qf);
  p.q = qf.data_ptr<float>();
  p.k = kf.data_ptr<float>();
  p.v = vf.data_ptr<float>();
  p.out = out.data_ptr<float>();
  p.lse = lse.data_ptr<float>();
  p.q_start = q_start;
  p.k_start = k_start;
  p.window = window;
  p.scale = static_cast<float>(scale);
  attention_fwd_cpu(p);
  return {out.to(q.scalar_type()), lse.transpose(-1, -2).contiguous()};
}

std::tuple<Tensor, Tensor, Tensor> attention_with_lse_backward_cpu(
    const Tensor& grad_out, const std::optional<Tensor>& grad_lse, const Tensor& q, const Tensor& k, const Tensor& v,
    const Tensor& out, const Tensor& lse, int64_t q_start, int64_t k_start, int64_t window, double scale,
    const std::optional<Tensor>& cu_seqlens) {
  const Tensor qf = f32(q), kf = f32(k), vf = f32(v), of = f32(out), dof = f32(grad_out);
  const Tensor lse_rows = f32(lse.transpose(-1, -2));
  const Tensor dlse_rows = grad_lse.has_value() ? f32(grad_lse->transpose(-1, -2)) : Tensor();
  Tensor cu_host;
  AttentionBwdParams p;
  AttentionFwdParams& f = p.fwd;
  f.seq = sequence_layout(q, k, cu_seqlens, std::nullopt, cu_host);
  f.dims = head_layout(q, k);
  auto kv_acc_shape = qf.sizes().vec();
  kv_acc_shape[kv_acc_shape.size() - 3] = k.size(-3);
  Tensor dq = at::empty_like(qf), dk = at::zeros(kv_acc_shape, qf.options()), dv = at::zeros_like(dk);
  f.q = qf.data_ptr<float>();
  f.k = kf.data_ptr<float>();
  f.v = vf.data_ptr<float>();
  f.out = of.data_ptr<float>();
  f.lse = lse_rows.data_ptr<float>();
  f.q_start = q_start;
  f.k_start = k_start;
  f.window = window;
  f.scale = static_cast<float>(scale);
  p.dout = dof.data_ptr<float>();
  p.dlse = dlse_rows.defined() ? dlse_rows.data_ptr<float>() : nullptr;
  p.dq = dq.data_ptr<float>();
  p.dk = dk.data_ptr<float>();
  p.dv = dv.data_ptr<float>();
  attention_bwd_cpu(p);
  return {dq.to(q.scalar_type()), sum_groups(dk, k.size(-2), k.scalar_type()),
          sum_groups(dv, v.size(-2), v.scalar_type())};
}

using LoopFwdResult = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

LoopFwdResult loop_attention_cpu(const Tensor& q, const Tensor& k_global, const Tensor& v_global,
                                 const Tensor& k_local, const Tensor& v_local, const Tensor& gate_weight,
                                 const Tensor& gate_bias, int64_t window, double scale,
                                 const std::optional<Tensor>& cu_seqlens, std::optional<int64_t> max_seqlen) {
  const Tensor qf = f32(q), kgf = f32(k_global), vgf = f32(v_global), klf = f32(k_local), vlf = f32(v_local);
  const Tensor wf = f32(gate_weight), bf = f32(gate_bias);
  Tensor cu_host;
  LoopAttentionFwdParams p;
  p.seq = sequence_layout(q, k_global, cu_seqlens, max_seqlen, cu_host);
  p.dims = head_layout(q, k_global);
  Tensor out = at::empty_like(qf), out_global = at::empty_like(qf), out_local = at::empty_like(qf);
  Tensor lse_global = empty_stats(qf), lse_local = empty_stats(qf), gate = empty_stats(qf);
  p.q = qf.data_ptr<float>();
  p.k_global = kgf.data_ptr<float>();
  p.v_global = vgf.data_ptr<float>();
  p.k_local = klf.data_ptr<float>();
  p.v_local = vlf.data_ptr<float>();
  p.gate_weight = wf.data_ptr<float>();
  p.gate_bias = bf.data_ptr<float>();
  p.out = out.data_ptr<float>();
  p.out_global = out_global.data_ptr<float>();
  p.out_local = out_local.data_ptr<float>();
  p.lse_global = lse_global.data_ptr<float>();
  p.lse_local = lse_local.data_ptr<float>();
  p.gate = gate.data_ptr<float>();
  p.window = window;
  p.scale = static_cast<float>(scale);
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
  const Tensor qf = f32(q), kgf = f32(k_global), vgf = f32(v_global), klf = f32(k_local), vlf = f32(v_local);
  const Tensor wf = f32(gate_weight), bf = f32(gate_bias), dof = f32(grad_out);
  const Tensor ogf = f32(out_global), olf = f32(out_local), lgf = f32(lse_global), llf = f32(lse_local), gf = f32(gate);
  Tensor cu_host;
  LoopAttentionBwdParams p;
  LoopAttentionFwdParams& f = p.fwd;
  f.seq = sequence_layout(q, k_global, cu_seqlens, max_seqlen, cu_host);
  f.dims = head_layout(q, k_global);
  const int64_t H = f.dims.heads, D = f.dims.head_dim;
  Tensor dq = at::empty_like(qf);
  Tensor dkg = at::zeros_like(qf), dvg = at::zeros_like(qf), dkl = at::zeros_like(qf), dvl = at::zeros_like(qf);
  Tensor dw = at::empty({f.seq.num_seqs, H, D}, qf.options()), db = at::empty({f.seq.num_seqs, H}, qf.options());
  f.q = qf.data_ptr<float>();
  f.k_global = kgf.data_ptr<float>();
  f.v_global = vgf.data_ptr<float>();
  f.k_local = klf.data_ptr<float>();
  f.v_local = vlf.data_ptr<float>();
  f.gate_weight = wf.data_ptr<float>();
  f.gate_bias = bf.data_ptr<float>();
  f.out_global = ogf.data_ptr<float>();
  f.out_local = olf.data_ptr<float>();
  f.lse_global = lgf.data_ptr<float>();
  f.lse_local = llf.data_ptr<float>();
  f.gate = gf.data_ptr<float>();
  f.window = window;
  f.scale = static_cast<float>(scale);
  p.dout = dof.data_ptr<float>();
  p.dq = dq.data_ptr<float>();
  p.dk_global = dkg.data_ptr<float>();
  p.dv_global = dvg.data_ptr<float>();
  p.dk_local = dkl.data_ptr<float>();
  p.dv_local = dvl.data_ptr<float>();
  p.d_gate_weight = dw.data_ptr<float>();
  p.d_gate_bias = db.data_ptr<float>();
  loop_attention_bwd_cpu(p);
  const int64_t Hkv = f.dims.kv_heads;
  return {dq.to(q.scalar_type()),
          sum_groups(dkg, Hkv, k_global.scalar_type()),
          sum_groups(dvg, Hkv, v_global.scalar_type()),
          sum_groups(dkl, Hkv, k_local.scalar_type()),
          sum_groups(dvl, Hkv, v_local.scalar_type()),
          dw.sum(0).to(gate_weight.scalar_type()),
          db.sum(0).to(gate_bias.scalar_type())};
}

}  // namespace

TORCH_LIBRARY(iquest, m) {
  m.def("attention_with_lse(Tensor q, Tensor k, Tensor v, int q_start, int k_start, int window, float scale, "
        "Tensor? cu_seqlens=None) -> (Tensor out, Tensor lse)");
  m.def("attention_with_lse_backward(Tensor grad_out, Tensor? grad_lse, Tensor q, Tensor k, Tensor v, Tensor out, "
        "Tensor lse, int q_start, int k_start, int window, float scale, Tensor? cu_seqlens=None) "
        "-> (Tensor dq, Tensor dk, Tensor dv)");
  m.def("loop_attention(Tensor q, Tensor k_global, Tensor v_global, Tensor k_local, Tensor v_local, "
        "Tensor gate_weight, Tensor gate_bias, int window, float scale, Tensor? cu_seqlens, int? max_seqlen) "
        "-> (Tensor out, Tensor out_global, Tensor out_local, Tensor lse_global, Tensor lse_local, Tensor gate)");
  m.def("loop_attention_backward(Tensor grad_out, Tensor q, Tensor k_global, Tensor v_global, Tensor k_local, "
        "Tensor v_local, Tensor gate_weight, Tensor gate_bias, Tensor out_global, Tensor out_local, "
        "Tensor lse_global, Tensor lse_local, Tensor gate, int window, float scale, Tensor? cu_seqlens, "
        "int? max_seqlen) -> (Tensor dq, Tensor dk_global, Tensor dv_global, Tensor dk_local, Tensor dv_local, "
        "Tensor d_gate_weight, Tensor d_gate_bias)");
}

TORCH_LIBRARY_IMPL(iquest, CPU, m) {
  m.impl("attention_with_lse", &attention_with_lse_cpu);
  m.impl("attention_with_lse_backward", &attention_with_lse_backward_cpu);
  m.impl("loop_attention", &loop_attention_cpu);
  m.impl("loop_attention_backward", &loop_attention_backward_cpu);
}

}  // namespace iquest
