// The one place that maps the run-time (element type, head_dim) to a kernel instantiation. Only four
// combinations exist (bf16/fp16 x 64/128) so that the build stays small.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdio>
#include <cstdlib>

#include "flash_params.h"

namespace iquest::cuda {

// Calls f.template operator()<T, D>() for the element type and head dim; the caller has validated them.
template <typename F>
void dispatch_elem_and_dim(ElemType elem, int head_dim, F&& f) {
  const bool bf16 = elem == ElemType::kBF16;
  if (elem == ElemType::kF32) {
    std::fprintf(stderr, "iquest_core: CUDA attention kernels take bfloat16 or float16, not float32\n");
    std::abort();
  }
  if (head_dim == 64) {
    if (bf16) f.template operator()<__nv_bfloat16, 64>();
    else f.template operator()<__half, 64>();
  } else if (head_dim == 128) {
    if (bf16) f.template operator()<__nv_bfloat16, 128>();
    else f.template operator()<__half, 128>();
  } else {
    // Unreachable behind the binding layer's checks; never launch a kernel for a wrong head_dim.
    std::fprintf(stderr, "iquest_core: CUDA attention kernels support head_dim 64 or 128, got %d\n", head_dim);
    std::abort();
  }
}

// Opts a kernel into more than 48 KiB of dynamic shared memory (once per instantiation and device is
// enough, but the call is cheap) and launches it.
template <typename Kernel>
void launch(Kernel kernel, dim3 grid, dim3 block, int smem_bytes, cudaStream_t stream, const AttentionParams& p) {
  if (smem_bytes > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
  kernel<<<grid, block, smem_bytes, stream>>>(p);
}

// The two halves of flash_bwd (flash_bwd_dkdv.cu, flash_bwd_dq.cu), launched in this order.
void flash_bwd_dkdv(const AttentionParams& p, cudaStream_t stream);
void flash_bwd_dq(const AttentionParams& p, cudaStream_t stream);

}  // namespace iquest::cuda
