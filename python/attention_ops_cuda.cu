// CUDA kernels of the attention ops, registered as the ops <op>_cuda_unchecked (op_signatures.h): the
// device-independent checks of attention_params.h, what only the CUDA kernels require, output allocation, one
// AttentionParams for the kernels of csrc/loop_attention/cuda, launch on the current stream. Output
// shapes and dtypes are those of the CPU implementations and the fake implementations in iquest_core/ops.
//
// The kernels take bfloat16 / float16 with head_dim 64 or 128; anything else raises ValueError naming
// the argument. No call synchronises with the host: packed documents need max_seqlen from the caller
// (it sizes the grid), and cu_seqlens' contents are checked on the device by an asynchronous assertion
// queued before the kernels (a malformed cu_seqlens stops the stream instead of being read).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdint>

#include "../csrc/loop_attention/cuda/flash_params.h"
#include "attention_params.h"
#include "op_signatures.h"

namespace iquest {
namespace {

using at::Tensor;
using namespace attention;

constexpr int64_t kMaxGridDim = 65535;

// What the CUDA kernels require beyond the device-independent checks.
void check_cuda(const Tensor& q) {
  TORCH_CHECK_VALUE(q.is_cuda(), "q: expected a CUDA tensor, got device ", q.device());
  TORCH_CHECK_VALUE(q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf,
                    "q: the CUDA attention kernels take bfloat16 or float16, got ", checks::dtype_name(q.scalar_type()),
                    " (float32 attention runs on the CPU kernels)");
  TORCH_CHECK_VALUE(cuda::flash_supported_head_dim(static_cast<int>(q.size(-1))),
                    "q: the CUDA attention kernels support head_dim D = 64 or 128, got ", q.size(-1));
  TORCH_CHECK_VALUE(q.size(-2) <= kMaxGridDim, "q: at most ", kMaxGridDim, " heads on CUDA, got ", q.size(-2));
}

// Contiguous, 16-byte aligned (cp.async moves 16-byte chunks), in the given dtype.
Tensor prepared(const Tensor& t, at::ScalarType dtype) {
  Tensor c = t.to(dtype).contiguous();
  if (reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 != 0) c = c.clone();
  return c;
}

Tensor prepared_f32(const Tensor& t) { return t.to(at::kFloat).contiguous(); }

// Packed documents on the device: the offsets the kernels read and the caller's longest document.
struct DevicePacking {
  Tensor offsets;
  int64_t num_docs = 0;
  int64_t max_seqlen = 0;
  const int32_t* ptr() const { return offsets.defined() ? offsets.data_ptr<int32_t>() : nullptr; }
};

DevicePacking device_packing(const Tensor& q, const std::optional<Tensor>& cu_seqlens,
                             std::optional<int64_t> max_seqlen) {
  DevicePacking packing;
  if (!cu_seqlens.has_value()) {
    TORCH_CHECK_VALUE(q.size(0) <= kMaxGridDim, "q: at most ", kMaxGridDim, " sequences per call on CUDA, got ",
                      q.size(0));
    return packing;
  }
  TORCH_CHECK_VALUE(max_seqlen.has_value(), "max_seqlen: required with cu_seqlens on CUDA (the longest document, ",
                    "which sizes the launch; the binding never reads cu_seqlens on the host)");
  packing.num_docs = cu_seqlens->size(0) - 1;
  TORCH_CHECK_VALUE(packing.num_docs <= kMaxGridDim, "cu_seqlens: at most ", kMaxGridDim,
                    " documents per call on CUDA, got ", packing.num_docs);
  packing.offsets = cu_seqlens->contiguous();
  packing.max_seqlen = *max_seqlen;
  const Tensor lengths = packing.offsets.slice(0, 1) - packing.offsets.slice(0, 0, -1);
  const Tensor valid = packing.offsets[0].eq(0) & packing.offsets[-1].eq(q.size(0)) &
                       lengths.ge(0).all() & lengths.le(*max_seqlen).all();
  at::_assert_async(valid, "cu_seqlens: expected offsets [0, ..., number of tokens], non-decreasing, no document "
                           "longer than max_seqlen");
  return packing;
}

bool nothing_to_do(const AttentionParams& p) { return p.num_seqs == 0 || p.heads == 0; }

std::tuple<Tensor, Tensor> attention_with_lse_cuda(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                                   int64_t q_start, int64_t k_start, int64_t window, double scale,
                                                   const std::optional<Tensor>& cu_seqlens,
                                                   std::optional<int64_t> max_seqlen, bool out_f32) {
  check_attention_inputs(q_in, k_in, v_in, q_start, k_start, window, scale, cu_seqlens, max_seqlen);
  check_cuda(q_in);
  const c10::cuda::CUDAGuard guard(q_in.device());
  const auto dtype = q_in.scalar_type();
  const Tensor q = prepared(q_in, dtype), k = prepared(k_in, dtype), v = prepared(v_in, dtype);
  const DevicePacking packing = device_packing(q, cu_seqlens, max_seqlen);
  Tensor out = out_f32 ? at::empty(q.sizes(), q.options().dtype(at::kFloat)) : at::empty_like(q);
  Tensor lse_rows = empty_stats(q);
  AttentionParams p;
  set_params_fprop(p, q, k, packing.ptr(), packing.num_docs, packing.max_seqlen, q_start, k_start, scale);
  set_branch_fprop(p.branch[0], k, v, window, out, lse_rows);
  if (!nothing_to_do(p)) {
    cuda::flash_fwd(p, at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {out, lse_of_rows(lse_rows)};
}

std::tuple<Tensor, Tensor, Tensor> attention_with_lse_backward_cuda(
    const Tensor& grad_out, const std::optional<Tensor>& grad_lse, const Tensor& q_in, const Tensor& k_in,
    const Tensor& v_in, const Tensor& out_in, const Tensor& lse, int64_t q_start, int64_t k_start, int64_t window,
    double scale, const std::optional<Tensor>& cu_seqlens, std::optional<int64_t> max_seqlen, bool grads_f32) {
  check_attention_inputs(q_in, k_in, v_in, q_start, k_start, window, scale, cu_seqlens, max_seqlen);
  check_attention_saved(grad_out, grad_lse, q_in, out_in, lse);
  check_cuda(q_in);
  const c10::cuda::CUDAGuard guard(q_in.device());
  const auto dtype = q_in.scalar_type();
  const Tensor q = prepared(q_in, dtype), k = prepared(k_in, dtype), v = prepared(v_in, dtype);
  const Tensor dout = prepared(grad_out, dtype);
  const Tensor out = out_in.scalar_type() == at::kFloat ? prepared_f32(out_in) : prepared(out_in, dtype);
  const Tensor lse_rows = rows_of_lse(lse);
  const Tensor dlse_rows = grad_lse.has_value() ? rows_of_lse(*grad_lse) : Tensor();
  const DevicePacking packing = device_packing(q, cu_seqlens, max_seqlen);
  const auto grad_options = grads_f32 ? q.options().dtype(at::kFloat) : q.options();
  Tensor dq = at::empty(q.sizes(), grad_options), dk = at::empty(k.sizes(), grad_options);
  Tensor dv = at::empty(v.sizes(), grad_options), delta = at::empty_like(lse_rows);
  AttentionParams p;
  set_params_fprop(p, q, k, packing.ptr(), packing.num_docs, packing.max_seqlen, q_start, k_start, scale);
  if (nothing_to_do(p)) return {dq, dk.zero_(), dv.zero_()};
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  cuda::AttentionPrepParams prep;
  prep.elem = p.elem;
  prep.rows = lse_rows.numel();
  prep.head_dim = p.head_dim;
  prep.dout = dout.data_ptr();
  prep.out = out.data_ptr();
  prep.out_is_f32 = out.scalar_type() == at::kFloat;
  prep.dlse = dlse_rows.defined() ? dlse_rows.data_ptr<float>() : nullptr;
  prep.delta = delta.data_ptr<float>();
  cuda::attention_bwd_prep(prep, stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  set_branch_fprop(p.branch[0], k, v, window, out, lse_rows);
  set_params_dgrad(p, dout, dq);
  set_branch_dgrad(p.branch[0], dk, dv, delta.data_ptr<float>(), GradCoef::kOne);
  cuda::flash_bwd(p, stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {dq, dk, dv};
}

using LoopFwdResult = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

LoopFwdResult loop_attention_cuda(const Tensor& q_in, const Tensor& k_global, const Tensor& v_global,
                                  const Tensor& k_local, const Tensor& v_local, const Tensor& gate_weight,
                                  const Tensor& gate_bias, int64_t window, double scale,
                                  const std::optional<Tensor>& cu_seqlens, std::optional<int64_t> max_seqlen) {
  check_loop_inputs(q_in, k_global, v_global, k_local, v_local, gate_weight, gate_bias, window, scale, cu_seqlens,
                    max_seqlen);
  check_cuda(q_in);
  const c10::cuda::CUDAGuard guard(q_in.device());
  const auto dtype = q_in.scalar_type();
  const Tensor q = prepared(q_in, dtype);
  const Tensor kg = prepared(k_global, dtype), vg = prepared(v_global, dtype);
  const Tensor kl = prepared(k_local, dtype), vl = prepared(v_local, dtype);
  const Tensor w = prepared_f32(gate_weight), b = prepared_f32(gate_bias);
  const DevicePacking packing = device_packing(q, cu_seqlens, max_seqlen);
  Tensor out = at::empty_like(q);
  Tensor out_global = at::empty(q.sizes(), q.options().dtype(at::kFloat)), out_local = at::empty_like(out_global);
  Tensor lse_global = empty_stats(q), lse_local = empty_stats(q), gate = empty_stats(q);
  AttentionParams p;
  set_params_fprop(p, q, kg, packing.ptr(), packing.num_docs, packing.max_seqlen, 0, 0, scale);
  set_branch_fprop(p.branch[0], kg, vg, 0, out_global, lse_global);
  set_branch_fprop(p.branch[1], kl, vl, window, out_local, lse_local);
  set_gate_fprop(p, w, b, gate);
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
  check_loop_inputs(q_in, k_global, v_global, k_local, v_local, gate_weight, gate_bias, window, scale, cu_seqlens,
                    max_seqlen);
  check_loop_saved(grad_out, q_in, out_global_in, out_local_in, lse_global_in, lse_local_in, gate_in);
  check_cuda(q_in);
  const c10::cuda::CUDAGuard guard(q_in.device());
  const auto dtype = q_in.scalar_type();
  const Tensor q = prepared(q_in, dtype), dout = prepared(grad_out, dtype);
  const Tensor kg = prepared(k_global, dtype), vg = prepared(v_global, dtype);
  const Tensor kl = prepared(k_local, dtype), vl = prepared(v_local, dtype);
  const Tensor w = prepared_f32(gate_weight), b = prepared_f32(gate_bias);
  const Tensor og = prepared_f32(out_global_in), ol = prepared_f32(out_local_in);
  const Tensor lg = prepared_f32(lse_global_in), ll = prepared_f32(lse_local_in), gate = prepared_f32(gate_in);
  const DevicePacking packing = device_packing(q, cu_seqlens, max_seqlen);
  const int64_t tokens = q.numel() / (q.size(-1) * q.size(-2));
  const int64_t H = q.size(-2), D = q.size(-1);
  const int64_t chunks = (tokens + cuda::kPrepChunk - 1) / cuda::kPrepChunk;
  Tensor dq = at::empty_like(q);
  Tensor dkg = at::empty_like(kg), dvg = at::empty_like(vg), dkl = at::empty_like(kl), dvl = at::empty_like(vl);
  Tensor delta_global = at::empty_like(lg), delta_local = at::empty_like(lg), dlogit = at::empty_like(lg);
  Tensor dw_partial = at::zeros({std::max<int64_t>(chunks, 1), H, D}, q.options().dtype(at::kFloat));
  Tensor db_partial = at::zeros({std::max<int64_t>(chunks, 1), H}, q.options().dtype(at::kFloat));
  AttentionParams p;
  set_params_fprop(p, q, kg, packing.ptr(), packing.num_docs, packing.max_seqlen, 0, 0, scale);
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

  set_branch_fprop(p.branch[0], kg, vg, 0, og, lg);
  set_branch_fprop(p.branch[1], kl, vl, window, ol, ll);
  set_gate_fprop(p, w, b, gate);
  set_params_dgrad(p, dout, dq);
  set_branch_dgrad(p.branch[0], dkg, dvg, delta_global.data_ptr<float>(), GradCoef::kGate);
  set_branch_dgrad(p.branch[1], dkl, dvl, delta_local.data_ptr<float>(), GradCoef::kOneMinusGate);
  p.dlogit = dlogit.data_ptr<float>();
  cuda::flash_bwd(p, stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // Partial gate gradients summed over chunks by one reduction (fixed order for fixed shapes).
  return {dq, dkg, dvg, dkl, dvl, dw_partial.sum(0).to(gate_weight.scalar_type()),
          db_partial.sum(0).to(gate_bias.scalar_type())};
}

}  // namespace

// Ops of their own (see op_signatures.h): the public ops' CUDA implementation, registered from Python,
// self-checks these kernels on first use and then calls them.
TORCH_LIBRARY_FRAGMENT(iquest, m) {
  using signatures::cuda_unchecked;
  using signatures::schema;
  m.def(schema(cuda_unchecked("attention_with_lse"), signatures::kAttentionWithLse).c_str());
  m.def(schema(cuda_unchecked("attention_with_lse_backward"), signatures::kAttentionWithLseBackward).c_str());
  m.def(schema(cuda_unchecked("loop_attention"), signatures::kLoopAttention).c_str());
  m.def(schema(cuda_unchecked("loop_attention_backward"), signatures::kLoopAttentionBackward).c_str());
}

TORCH_LIBRARY_IMPL(iquest, CUDA, m) {
  using signatures::cuda_unchecked;
  m.impl(cuda_unchecked("attention_with_lse").c_str(), &attention_with_lse_cuda);
  m.impl(cuda_unchecked("attention_with_lse_backward").c_str(), &attention_with_lse_backward_cuda);
  m.impl(cuda_unchecked("loop_attention").c_str(), &loop_attention_cuda);
  m.impl(cuda_unchecked("loop_attention_backward").c_str(), &loop_attention_backward_cuda);
}

}  // namespace iquest
