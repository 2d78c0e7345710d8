// CUDA implementations of the attention ops (schemas in attention_ops.cpp): checks, output
// allocation, parameter structs for the kernels of csrc/loop_attention/cuda, launch on the current
// stream. Output shapes and dtypes are those of the CPU implementations and the fake implementations
// in iquest_core/ops (loop attention keeps its branch outputs, lse and gate in float32).
//
// The kernels take bfloat16 / float16 with head_dim 64 or 128; anything else raises ValueError naming
// the argument. Packed cu_seqlens are copied to the host and validated (one small synchronisation), so
// malformed offsets raise instead of reading out of bounds.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdint>

#include "../csrc/loop_attention/cuda/flash_params.h"

namespace iquest {
namespace {

using at::Tensor;
using cuda::ElemType;
using cuda::FlashParams;
using cuda::GradCoef;

ElemType elem_type(const Tensor& q) {
  if (q.scalar_type() == at::kBFloat16) return ElemType::kBF16;
  if (q.scalar_type() == at::kHalf) return ElemType::kFP16;
  TORCH_CHECK_VALUE(false, "q: the CUDA attention kernels take bfloat16 or float16, got ", q.scalar_type(),
                    " (float32 attention runs on the CPU kernels)");
}

void check_common(const Tensor& q, const Tensor& k) {
  TORCH_CHECK_VALUE(q.is_cuda(), "q: expected a CUDA tensor, got device ", q.device());
  TORCH_CHECK_VALUE(cuda::flash_supported_head_dim(static_cast<int>(q.size(-1))),
                    "q: the CUDA attention kernels support head_dim D = 64 or 128, got ", q.size(-1));
  TORCH_CHECK_VALUE(k.size(-2) > 0 && q.size(-2) % k.size(-2) == 0, "k: expected a number of heads dividing ",
                    q.size(-2), ", got ", k.size(-2));
  TORCH_CHECK_VALUE(q.size(-2) <= 65535, "q: at most 65535 heads on CUDA, got ", q.size(-2));
}

// Contiguous, 16-byte aligned (cp.async moves 16-byte chunks), in the given dtype.
Tensor prepared(const Tensor& t, at::ScalarType dtype) {
  Tensor c = t.to(dtype).contiguous();
  if (reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 != 0) c = c.clone();
  return c;
}

Tensor prepared_f32(const Tensor& t) { return t.to(at::kFloat).contiguous(); }

// Fills the sequence fields of p. Packed: cu_seqlens validated on the host; cu_device keeps the int32
// device copy alive until the launches are queued.
void sequence_layout(FlashParams& p, const Tensor& q, const Tensor& k, const std::optional<Tensor>& cu_seqlens,
                     std::optional<int64_t> max_seqlen, Tensor& cu_device) {
  if (!cu_seqlens.has_value()) {
    p.num_seqs = static_cast<int>(q.size(0));
    p.q_len = p.max_q_len = q.size(1);
    p.k_len = p.max_k_len = k.size(1);
    TORCH_CHECK_VALUE(q.size(0) <= 65535, "q: at most 65535 sequences per call on CUDA, got ", q.size(0));
    return;
  }
  const Tensor host = cu_seqlens->to(at::kCPU, at::kInt).contiguous();
  const int32_t* cu = host.data_ptr<int32_t>();
  const int64_t n = host.numel();
  TORCH_CHECK_VALUE(n >= 2 && cu[0] == 0, "cu_seqlens: expected [0, ...] with at least 2 entries");
  int64_t longest = 0;
  for (int64_t i = 1; i < n; ++i) {
    TORCH_CHECK_VALUE(cu[i] >= cu[i - 1], "cu_seqlens: expected non-decreasing offsets, got ", cu[i - 1], " then ",
                      cu[i], " at index ", i);
    longest = std::max<int64_t>(longest, cu[i] - cu[i - 1]);
  }
  TORCH_CHECK_VALUE(cu[n - 1] == q.size(0), "cu_seqlens: expected the last offset to equal the number of tokens ",
                    q.size(0), ", got ", cu[n - 1]);
  TORCH_CHECK_VALUE(!max_seqlen.has_value() || *max_seqlen >= longest, "max_seqlen: expected at least the longest ",
                    "sequence in cu_seqlens (", longest, "), got ", *max_seqlen);
  TORCH_CHECK_VALUE(n - 1 <= 65535, "cu_seqlens: at most 65535 documents per call on CUDA, got ", n - 1);
  cu_device = cu_seqlens->to(q.device(), at::kInt).contiguous();
  p.num_seqs = static_cast<int>(n - 1);
  p.cu_seqlens = cu_device.data_ptr<int32_t>();
  p.max_q_len = p.max_k_len = longest;
}

void head_layout(FlashParams& p, const Tensor& q, const Tensor& k) {
  p.elem = elem_type(q);
  p.head_dim = static_cast<int>(q.size(-1));
  p.heads = static_cast<int>(q.size(-2));
  p.kv_heads = static_cast<int>(k.size(-2));
}

// Statistics (tokens..., H) float32 of q (tokens..., H, D).
Tensor empty_stats(const Tensor& q) { return at::empty(q.sizes().slice(0, q.dim() - 1), q.options().dtype(at::kFloat)); }

bool nothing_to_do(const FlashParams& p) { return p.num_seqs == 0 || p.heads == 0; }

std::tuple<Tensor, Tensor> attention_with_lse_cuda(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                                   int64_t q_start, int64_t k_start, int64_t window, double scale,
                                                   const std::optional<Tensor>& cu_seqlens) {
  check_common(q_in, k_in);
  const c10::cuda::CUDAGuard guard(q_in.device());
  const auto dtype = q_in.scalar_type();
  const Tensor q = prepared(q_in, dtype), k = prepared(k_in, dtype), v = prepared(v_in, dtype);
  FlashParams p;
  head_layout(p, q, k);
  Tensor cu_device;
  sequence_layout(p, q, k, cu_seqlens, std::nullopt, cu_device);
  Tensor out = at::empty_like(q);
  Tensor lse_rows = empty_stats(q);
  p.q_start = q_start;
  p.k_start = k_start;
  p.scale = static_cast<float>(scale);
  p.q = q.data_ptr();
  p.num_branches = 1;
  p.branch[0].k = k.data_ptr();
  p.branch[0].v = v.data_ptr();
  p.branch[0].window = window;
  p.branch[0].out = out.data_ptr();
  p.branch[0].out_is_f32 = false;
  p.branch[0].lse = lse_rows.data_ptr<float>();
  if (!nothing_to_do(p)) {
    cuda::flash_fwd(p, at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {out, lse_rows.transpose(-1, -2).contiguous()};
}

std::tuple<Tensor, Tensor, Tensor> attention_with_lse_backward_cuda(
    const Tensor& grad_out, const std::optional<Tensor>& grad_lse, const Tensor& q_in, const Tensor& k_in,
    const Tensor& v_in, const Tensor& out_in, const Tensor& lse, int64_t q_start, int64_t k_start, int64_t window,
    double scale, const std::optional<Tensor>& cu_seqlens) {
  check_common(q_in, k_in);
  const c10::cuda::CUDAGuard guard(q_in.device());
  const auto dtype = q_in.scalar_type();
  const Tensor q = prepared(q_in, dtype), k = prepared(k_in, dtype), v = prepared(v_in, dtype);
  const Tensor out = prepared(out_in, dtype), dout = prepared(grad_out, dtype);
  const Tensor lse_rows = prepared_f32(lse.transpose(-1, -2));
  const Tensor dlse_rows = grad_lse.has_value() ? prepared_f32(grad_lse->transpose(-1, -2)) : Tensor();
  FlashParams p;
  head_layout(p, q, k);
  Tensor cu_device;
  sequence_layout(p, q, k, cu_seqlens, std::nullopt, cu_device);
  Tensor dq = at::empty_like(q), dk = at::empty_like(k), dv = at::empty_like(v);
  Tensor delta = at::empty_like(lse_rows);
  if (nothing_to_do(p)) return {dq, dk.zero_(), dv.zero_()};
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  cuda::AttentionPrepParams prep;
  prep.elem = p.elem;
  prep.rows = lse_rows.numel();
  prep.head_dim = p.head_dim;
  prep.dout = dout.data_ptr();
  prep.out = out.data_ptr();
  prep.dlse = dlse_rows.defined() ? dlse_rows.data_ptr<float>() : nullptr;
  prep.delta = delta.data_ptr<float>();
  cuda::attention_bwd_prep(prep, stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  p.q_start = q_start;
  p.k_start = k_start;
  p.scale = static_cast<float>(scale);
  p.q = q.data_ptr();
  p.dout = dout.data_ptr();
  p.dq = dq.data_ptr();
  p.num_branches = 1;
  cuda::FlashBranch& br = p.branch[0];
  br.k = k.data_ptr();
  br.v = v.data_ptr();
  br.window = window;
  br.lse = const_cast<float*>(lse_rows.data_ptr<float>());
  br.delta = delta.data_ptr<float>();
  br.coef = GradCoef::kOne;
  br.dk = dk.data_ptr();
  br.dv = dv.data_ptr();
  cuda::flash_bwd(p, stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {dq, dk, dv};
}

using LoopFwdResult = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

LoopFwdResult loop_attention_cuda(const Tensor& q_in, const Tensor& k_global, const Tensor& v_global,
                                  const Tensor& k_local, const Tensor& v_local, const Tensor& gate_weight,
                                  const Tensor& gate_bias, int64_t window, double scale,
                                  const std::optional<Tensor>& cu_seqlens, std::optional<int64_t> max_seqlen) {
  check_common(q_in, k_global);
  const c10::cuda::CUDAGuard guard(q_in.device());
  const auto dtype = q_in.scalar_type();
  const Tensor q = prepared(q_in, dtype);
  const Tensor kg = prepared(k_global, dtype), vg = prepared(v_global, dtype);
  const Tensor kl = prepared(k_local, dtype), vl = prepared(v_local, dtype);
  const Tensor w = prepared_f32(gate_weight), b = prepared_f32(gate_bias);
  FlashParams p;
  head_layout(p, q, kg);
  Tensor cu_device;
  sequence_layout(p, q, kg, cu_seqlens, max_seqlen, cu_device);
  Tensor out = at::empty_like(q);
  Tensor out_global = at::empty(q.sizes(), q.options().dtype(at::kFloat)), out_local = at::empty_like(out_global);
  Tensor lse_global = empty_stats(q), lse_local = empty_stats(q), gate = empty_stats(q);
  p.scale = static_cast<float>(scale);
  p.q = q.data_ptr();
  p.num_branches = 2;
  p.branch[0].k = kg.data_ptr();
  p.branch[0].v = vg.data_ptr();
  p.branch[0].window = 0;
  p.branch[0].out = out_global.data_ptr();
  p.branch[0].out_is_f32 = true;
  p.branch[0].lse = lse_global.data_ptr<float>();
  p.branch[1].k = kl.data_ptr();
  p.branch[1].v = vl.data_ptr();
  p.branch[1].window = window;
  p.branch[1].out = out_local.data_ptr();
  p.branch[1].out_is_f32 = true;
  p.branch[1].lse = lse_local.data_ptr<float>();
  p.gate_weight = w.data_ptr<float>();
  p.gate_bias = b.data_ptr<float>();
  p.gate = gate.data_ptr<float>();
  p.out = out.data_ptr();
  if (!nothing_to_do(p)) {
    cuda::flash_fwd(p, at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {out, out_global, out_local, lse_global, lse_local, gate};
}

using LoopBwdResult = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

LoopBwdResult loop_attention_backward_cuda(const Tensor& grad_out, const Tensor& q_in, const Tensor& k_global,
                                           const Tensor& v_global, const Tensor& k_local, const Tensor& v_local,
                                           const Tensor& gate_weight, const Tensor& gate_bias,
                                           const Tensor& out_global_in, const Tensor& out_local_in,
                                           const Tensor& lse_global_in, const Tensor& lse_local_in,
                                           const Tensor& gate_in, int64_t window, double scale,
                                           const std::optional<Tensor>& cu_seqlens, std::optional<int64_t> max_seqlen) {
  check_common(q_in, k_global);
  const c10::cuda::CUDAGuard guard(q_in.device());
  const auto dtype = q_in.scalar_type();
  const Tensor q = prepared(q_in, dtype), dout = prepared(grad_out, dtype);
  const Tensor kg = prepared(k_global, dtype), vg = prepared(v_global, dtype);
  const Tensor kl = prepared(k_local, dtype), vl = prepared(v_local, dtype);
  const Tensor w = prepared_f32(gate_weight);
  const Tensor og = prepared_f32(out_global_in), ol = prepared_f32(out_local_in);
  const Tensor lg = prepared_f32(lse_global_in), ll = prepared_f32(lse_local_in), gate = prepared_f32(gate_in);
  FlashParams p;
  head_layout(p, q, kg);
  Tensor cu_device;
  sequence_layout(p, q, kg, cu_seqlens, max_seqlen, cu_device);
  const int64_t tokens = q.numel() / (q.size(-1) * q.size(-2));
  const int64_t H = p.heads, D = p.head_dim;
  const int64_t chunks = (tokens + cuda::kPrepChunk - 1) / cuda::kPrepChunk;
  Tensor dq = at::empty_like(q);
  Tensor dkg = at::empty_like(kg), dvg = at::empty_like(vg), dkl = at::empty_like(kl), dvl = at::empty_like(vl);
  Tensor delta_global = at::empty_like(lg), delta_local = at::empty_like(lg), dlogit = at::empty_like(lg);
  Tensor dw_partial = at::zeros({std::max<int64_t>(chunks, 1), H, D}, q.options().dtype(at::kFloat));
  Tensor db_partial = at::zeros({std::max<int64_t>(chunks, 1), H}, q.options().dtype(at::kFloat));
  if (nothing_to_do(p) || tokens == 0) {
    return {dq, dkg.zero_(), dvg.zero_(), dkl.zero_(), dvl.zero_(), at::zeros_like(gate_weight),
            at::zeros_like(gate_bias)};
  }
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  cuda::LoopPrepParams prep;
  prep.elem = p.elem;
  prep.tokens = tokens;
  prep.heads = p.heads;
  prep.head_dim = p.head_dim;
  prep.dout = dout.data_ptr();
  prep.q = q.data_ptr();
  prep.out_global = og.data_ptr<float>();
  prep.out_local = ol.data_ptr<float>();
  prep.gate = gate.data_ptr<float>();
  prep.delta_global = delta_global.data_ptr<float>();
  prep.delta_local = delta_local.data_ptr<float>();
  prep.dlogit = dlogit.data_ptr<float>();
  prep.d_gate_weight_partial = dw_partial.data_ptr<float>();
  prep.d_gate_bias_partial = db_partial.data_ptr<float>();
  cuda::loop_bwd_prep(prep, stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  p.scale = static_cast<float>(scale);
  p.q = q.data_ptr();
  p.dout = dout.data_ptr();
  p.dq = dq.data_ptr();
  p.gate = const_cast<float*>(gate.data_ptr<float>());
  p.gate_weight = w.data_ptr<float>();
  p.dlogit = dlogit.data_ptr<float>();
  p.num_branches = 2;
  const Tensor* kv[2][2] = {{&kg, &vg}, {&kl, &vl}};
  Tensor* dkv[2][2] = {{&dkg, &dvg}, {&dkl, &dvl}};
  const Tensor* lses[2] = {&lg, &ll};
  const Tensor* deltas[2] = {&delta_global, &delta_local};
  for (int i = 0; i < 2; ++i) {
    cuda::FlashBranch& br = p.branch[i];
    br.k = kv[i][0]->data_ptr();
    br.v = kv[i][1]->data_ptr();
    br.window = i == 0 ? 0 : window;
    br.lse = const_cast<float*>(lses[i]->data_ptr<float>());
    br.delta = deltas[i]->data_ptr<float>();
    br.coef = i == 0 ? GradCoef::kGate : GradCoef::kOneMinusGate;
    br.dk = dkv[i][0]->data_ptr();
    br.dv = dkv[i][1]->data_ptr();
  }
  cuda::flash_bwd(p, stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // Partial gate gradients summed over chunks by one reduction (fixed order for fixed shapes).
  return {dq, dkg, dvg, dkl, dvl, dw_partial.sum(0).to(gate_weight.scalar_type()),
          db_partial.sum(0).to(gate_bias.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(iquest, CUDA, m) {
  m.impl("attention_with_lse", &attention_with_lse_cuda);
  m.impl("attention_with_lse_backward", &attention_with_lse_backward_cuda);
  m.impl("loop_attention", &loop_attention_cuda);
  m.impl("loop_attention_backward", &loop_attention_backward_cuda);
}

}  // namespace iquest
