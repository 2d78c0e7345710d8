// Column-major single-precision GEMM, C = alpha * op(A) * op(B) + beta * C, through the BLAS that torch
// itself links (MKL in the x86 wheels exports the Fortran symbol sgemm_). The same micro-GEMM
// building block ATen's CPU flash attention uses, without going through a Tensor.
#pragma once

#include <cstdint>

extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);

namespace iquest::cpu {

enum class Op : char { N = 'N', T = 'T' };

inline void gemm(Op op_a, Op op_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const char ta = static_cast<char>(op_a), tb = static_cast<char>(op_b);
  const int m_ = static_cast<int>(m), n_ = static_cast<int>(n), k_ = static_cast<int>(k);
  const int lda_ = static_cast<int>(lda), ldb_ = static_cast<int>(ldb), ldc_ = static_cast<int>(ldc);
  sgemm_(&ta, &tb, &m_, &n_, &k_, &alpha, a, &lda_, b, &ldb_, &beta, c, &ldc_);
}

}  // namespace iquest::cpu
