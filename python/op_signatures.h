// Signatures (arguments -> results) of the public ops of the iquest namespace. Each is defined twice:
// as the public op (attention_ops.cpp, fingerprint_ops.cpp: CPU kernels in C++) and, in a CUDA build, as
// `<op>_cuda_unchecked` carrying the C++ CUDA kernel (attention_ops_cuda.cu, fingerprint_cuda.cu). The
// public op's CUDA implementation is registered from Python (iquest_core/ops/cuda_dispatch.py): it runs
// the first-use self-check of the kernel and then calls `<op>_cuda_unchecked`.
#pragma once

#include <string>

namespace iquest::signatures {

inline constexpr const char* kAttentionWithLse =
    "(Tensor q, Tensor k, Tensor v, int q_start, int k_start, int window, float scale, "
    "Tensor? cu_seqlens=None, int? max_seqlen=None, bool out_f32=False) -> (Tensor out, Tensor lse)";
inline constexpr const char* kAttentionWithLseBackward =
    "(Tensor grad_out, Tensor? grad_lse, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, int q_start, "
    "int k_start, int window, float scale, Tensor? cu_seqlens=None, int? max_seqlen=None, bool grads_f32=False) "
    "-> (Tensor dq, Tensor dk, Tensor dv)";
inline constexpr const char* kLoopAttention =
    "(Tensor q, Tensor k_global, Tensor v_global, Tensor k_local, Tensor v_local, Tensor gate_weight, "
    "Tensor gate_bias, int window, float scale, Tensor? cu_seqlens, int? max_seqlen) -> (Tensor out, "
    "Tensor out_global, Tensor out_local, Tensor lse_global, Tensor lse_local, Tensor gate)";
inline constexpr const char* kLoopAttentionBackward =
    "(Tensor grad_out, Tensor q, Tensor k_global, Tensor v_global, Tensor k_local, Tensor v_local, "
    "Tensor gate_weight, Tensor gate_bias, Tensor out_global, Tensor out_local, Tensor lse_global, "
    "Tensor lse_local, Tensor gate, int window, float scale, Tensor? cu_seqlens, int? max_seqlen) -> "
    "(Tensor dq, Tensor dk_global, Tensor dv_global, Tensor dk_local, Tensor dv_local, Tensor d_gate_weight, "
    "Tensor d_gate_bias)";
inline constexpr const char* kFingerprintMany = "(Tensor[] tensors) -> Tensor";

// The schema string of op `name` with `signature`, for torch::Library::def.
inline std::string schema(const std::string& name, const char* signature) { return name + signature; }

// The name of the op carrying the C++ CUDA kernel of public op `name`.
inline std::string cuda_unchecked(const std::string& name) { return name + "_cuda_unchecked"; }

}  // namespace iquest::signatures
