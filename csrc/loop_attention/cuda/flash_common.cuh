// Building blocks of the CUDA attention kernels: element types, CuTe's SM80 tensor-core MMA atom
// (m16n8k16, fp32 accumulate), cp.async global->shared copies with zero fill, ldmatrix
// shared->register fragment loads, XOR-swizzled shared-memory tiles, and sequence bookkeeping.
//
// Register fragments follow the PTX mma.m16n8k16 layouts. With lane = 4 * g + t (g = lane / 4,
// t = lane % 4) a warp holds
//   A (16 x 16, row major): a[0] = (g, 2t..2t+1), a[1] = (g+8, 2t..), a[2] = (g, 2t+8..), a[3] = (g+8, 2t+8..)
//   B (16 x 8, k x n):      b[0] = (k 2t..2t+1, n g), b[1] = (k 2t+8.., n g)
//   C (16 x 8, float):      c[0..1] = (g, 2t..2t+1), c[2..3] = (g+8, 2t..2t+1)
// so a C fragment pair (n-blocks 2j, 2j+1) re-packs into the A fragment of k-block j without shuffles.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cute/arch/copy_sm75.hpp>
#include <cute/arch/copy_sm80.hpp>
#include <cute/arch/mma_sm80.hpp>

#include <cstdint>

#include "../../common/attention_math.h"
#include "flash_params.h"

namespace iquest::cuda {

constexpr float kLog2e = 1.4426950408889634f;

template <typename T>
struct Elem;

template <>
struct Elem<__nv_bfloat16> {
  using Mma = cute::SM80_16x8x16_F32BF16BF16F32_TN;
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
  static __device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
};

template <>
struct Elem<__half> {
  using Mma = cute::SM80_16x8x16_F32F16F16F32_TN;
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
  static __device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
};

// c += a * b for one 16 x 8 x 16 tile.
template <typename T>
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  Elem<T>::Mma::fma(c[0], c[1], c[2], c[3], a[0], a[1], a[2], a[3], b0, b1, c[0], c[1], c[2], c[3]);
}

// ---------------------------------------------------------------------------------------------
// Shared-memory tiles: ROWS x D elements of 2 bytes, row major, 16-byte chunks XOR-swizzled by the
// row's low three bits so that ldmatrix (8 rows, same chunk) and cp.async stores are conflict free.

template <int D>
__device__ __forceinline__ int swizzle(int row, int col) {
  return row * D + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7);
}

// Asynchronously copies rows [0, valid_rows) of a global tile (row stride in elements) into a shared
// tile of ROWS rows; rows past valid_rows are zero-filled. Every thread of the CTA takes part.
template <int D, int ROWS, int THREADS, typename T>
__device__ __forceinline__ void load_tile_async(T* smem, const T* gmem, int64_t row_stride, int valid_rows) {
  constexpr int kChunks = D / 8;
  static_assert((ROWS * kChunks) % THREADS == 0, "tile copy must divide evenly among the threads");
#pragma unroll
  for (int i = 0; i < ROWS * kChunks / THREADS; ++i) {
    const int idx = i * THREADS + static_cast<int>(threadIdx.x);
    const int r = idx / kChunks, c = idx % kChunks;
    const bool ok = r < valid_rows;
    const T* src = ok ? gmem + r * row_stride + c * 8 : gmem;
    cute::SM80_CP_ASYNC_CACHEGLOBAL_ZFILL<cute::uint128_t>::copy(
        *reinterpret_cast<const cute::uint128_t*>(src),
        *reinterpret_cast<cute::uint128_t*>(smem + r * D + ((c ^ (r & 7)) << 3)), ok);
  }
}

// A fragment: rows [r0, r0 + 16) x columns [k0, k0 + 16) of a row-major tile.
template <int D, typename T>
__device__ __forceinline__ void ldsm_a(uint32_t (&a)[4], const T* tile, int r0, int k0, int lane) {
  const int row = r0 + (lane & 15), col = k0 + ((lane >> 4) << 3);
  cute::SM75_U32x4_LDSM_N::copy(*reinterpret_cast<const cute::uint128_t*>(tile + swizzle<D>(row, col)), a[0], a[1],
                                a[2], a[3]);
}

// B fragments of two n-blocks [n0, n0 + 8), [n0 + 8, n0 + 16) over k in [k0, k0 + 16) from a tile stored
// n-major (row = n, column = k; e.g. K[key][d] for S = Q K^T): b[0..1] n-block 0, b[2..3] n-block 1.
template <int D, typename T>
__device__ __forceinline__ void ldsm_b_nk(uint32_t (&b)[4], const T* tile, int n0, int k0, int lane) {
  const int row = n0 + (lane & 7) + ((lane >> 4) << 3), col = k0 + (((lane >> 3) & 1) << 3);
  cute::SM75_U32x4_LDSM_N::copy(*reinterpret_cast<const cute::uint128_t*>(tile + swizzle<D>(row, col)), b[0], b[1],
                                b[2], b[3]);
}

// Same from a tile stored k-major (row = k, column = n; e.g. V[key][d] for O = P V), transposing.
template <int D, typename T>
__device__ __forceinline__ void ldsm_b_kn(uint32_t (&b)[4], const T* tile, int k0, int n0, int lane) {
  const int row = k0 + (lane & 7) + (((lane >> 3) & 1) << 3), col = n0 + ((lane >> 4) << 3);
  cute::SM75_U16x8_LDSM_T::copy(*reinterpret_cast<const cute::uint128_t*>(tile + swizzle<D>(row, col)), b[0], b[1],
                                b[2], b[3]);
}

// A fragment of k-block j from the float C fragments of n-blocks 2j and 2j+1 (P or dS).
template <typename T>
__device__ __forceinline__ void pack_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
  a[0] = Elem<T>::pack(c0[0], c0[1]);
  a[1] = Elem<T>::pack(c0[2], c0[3]);
  a[2] = Elem<T>::pack(c1[0], c1[1]);
  a[3] = Elem<T>::pack(c1[2], c1[3]);
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// ---------------------------------------------------------------------------------------------
// Sequences

struct SeqBounds {
  int64_t q_begin, q_count, k_begin, k_count;
};

__device__ __forceinline__ SeqBounds seq_bounds(const AttentionParams& p, int s) {
  if (p.cu_seqlens) {
    const int64_t a = p.cu_seqlens[s], b = p.cu_seqlens[s + 1];
    return {a, b - a, a, b - a};
  }
  return {s * p.q_len, p.q_len, s * p.k_len, p.k_len};
}

// Index range [lo, hi) (relative to key 0 of the sequence) of the keys seen by the queries at
// positions [q_lo, q_hi); empty when hi <= lo.
__device__ __forceinline__ PosRange key_index_range(const AttentionParams& p, int64_t q_lo, int64_t q_hi, int64_t k_count,
                                                    int64_t window) {
  const PosRange r = intersect(visible_keys_of_block(q_lo, q_hi, window), {p.k_start, p.k_start + k_count});
  return {r.lo - p.k_start, r.hi - p.k_start};
}

__device__ __forceinline__ float grad_coef(GradCoef coef, float g) {
  return coef == GradCoef::kOne ? 1.f : (coef == GradCoef::kGate ? g : 1.f - g);
}

template <typename T>
__device__ __forceinline__ void store_pair(T* dst, float a, float b) {
  *reinterpret_cast<uint32_t*>(dst) = Elem<T>::pack(a, b);
}

// Stores two adjacent values at element offset `at` of a buffer of element type T, or of float32 when
// as_f32 (the partial outputs / gradients of a context-parallel ring, merged in float32).
template <typename T>
__device__ __forceinline__ void store_pair_as(void* base, int64_t at, bool as_f32, float a, float b) {
  if (as_f32) {
    *reinterpret_cast<float2*>(static_cast<float*>(base) + at) = make_float2(a, b);
  } else {
    store_pair(static_cast<T*>(base) + at, a, b);
  }
}

}  // namespace iquest::cuda
