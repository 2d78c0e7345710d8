// Tensor fingerprints: the formula and the parameter structs of the CPU and CUDA kernels (no torch types).
//
// A fingerprint is a 128-bit digest, two 64-bit lanes, of a tensor's logical contents, dtype and shape.
// All arithmetic is on uint64 modulo 2^64.
//
//   Byte stream S: the elements in row-major (C) order, each in its little-endian in-memory form
//     (bool: one byte, 0 or 1), followed by zero bytes up to a whole number of 8-byte words.
//   Words w_i (i = 0 .. n-1, n = ceil(nbytes / 8)): the little-endian uint64 of S[8i, 8i + 8).
//   fmix64(x) (MurmurHash3's 64-bit finaliser, a bijection):
//     x ^= x >> 33; x *= 0xff51afd7ed558ccd; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53; x ^= x >> 33.
//   Weighted lane  A = sum_i w_i * (2 * i * K_WEIGHT + 1)            (odd multiplier per position)
//   Mixed lane     B = sum_i fmix64(w_i ^ (i * K_POSITION + K_SALT))
//   Header words   h = [dtype code, ndim, size_0, ..., size_{ndim-1}]  (codes: FingerprintDtype below)
//   Header key     k_0 = K_SALT;  k_{j+1} = fmix64(k_j + h_j);  K = k_{len(h)}
//   Digest         d_0 = fmix64(A + K),  d_1 = fmix64(B + fmix64(K)), stored as int64 bit patterns.
//
// Why: the lanes are sums, so any split of the words into blocks and threads, in any order, on any
// device gives the same digest. A change confined to one word changes A (the multiplier is odd, hence
// invertible mod 2^64), so every single bit flip is detected with certainty; B mixes word and position
// strongly, so swaps and multi-word changes collide only with probability ~2^-64 per lane.
// The final fmix64 are bijections: they add the header without losing that certainty.
// The numpy statement of the same formula is iquest_core/reliability/reference.py.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define IQ_FP_HD __host__ __device__ __forceinline__
#else
#define IQ_FP_HD inline
#endif

namespace iquest::fingerprint {

constexpr uint64_t K_WEIGHT = 0x9e3779b97f4a7c15ull;
constexpr uint64_t K_POSITION = 0xd6e8feb86659fd93ull;
constexpr uint64_t K_SALT = 0x2545f4914f6cdd1dull;

// Stable dtype codes of the header (never renumbered; new dtypes get new codes).
enum class FingerprintDtype : uint64_t {
  kBool = 1, kUInt8 = 2, kInt8 = 3, kInt16 = 4, kInt32 = 5, kInt64 = 6, kUInt16 = 7, kUInt32 = 8, kUInt64 = 9,
  kFloat16 = 16, kBFloat16 = 17, kFloat32 = 18, kFloat64 = 19,
  kFloat8_e4m3fn = 32, kFloat8_e5m2 = 33, kFloat8_e4m3fnuz = 34, kFloat8_e5m2fnuz = 35, kFloat8_e8m0fnu = 36,
  kComplex64 = 48, kComplex128 = 49, kComplex32 = 50,
};

IQ_FP_HD uint64_t fmix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

// Per-position constants of the lanes; both are linear in i (loops may step them by 2 * K_WEIGHT and
// K_POSITION instead of multiplying).
IQ_FP_HD uint64_t weight_of(uint64_t i) { return 2 * i * K_WEIGHT + 1; }
IQ_FP_HD uint64_t position_key(uint64_t i) { return i * K_POSITION + K_SALT; }
IQ_FP_HD uint64_t weighted_term(uint64_t word, uint64_t i) { return word * weight_of(i); }
IQ_FP_HD uint64_t mixed_term(uint64_t word, uint64_t i) { return fmix64(word ^ position_key(i)); }

// K of the formula for header words h[0 .. count).
inline uint64_t header_key(const uint64_t* h, int64_t count) {
  uint64_t k = K_SALT;
  for (int64_t j = 0; j < count; ++j) k = fmix64(k + h[j]);
  return k;
}

IQ_FP_HD void finalize(uint64_t weighted, uint64_t mixed, uint64_t key, uint64_t* digest) {
  digest[0] = fmix64(weighted + key);
  digest[1] = fmix64(mixed + fmix64(key));
}

// One tensor: its contiguous bytes (any alignment on CPU; 8-byte aligned for CUDA) and header key.
struct FingerprintSegment {
  const unsigned char* data = nullptr;
  int64_t nbytes = 0;
  uint64_t key = 0;
};

// Digests of count tensors into digests[2 * s], digests[2 * s + 1]. For CUDA, segments and digests
// are device memory; scratch holds 3 * count zeroed uint64 (lane sums and finished-block counters).
struct FingerprintManyParams {
  const FingerprintSegment* segments = nullptr;
  int64_t count = 0;
  uint64_t* digests = nullptr;
  uint64_t* scratch = nullptr;  // CUDA only
};

// Words per unit of work (one CPU task or one CUDA block): 512 KiB.
constexpr int64_t kWordsPerBlock = int64_t{1} << 16;

void fingerprint_many_cpu(const FingerprintManyParams& p);
// block_table (device memory): num_blocks pairs (segment, first word); each block sums the words
// [first, first + kWordsPerBlock) of its segment, clipped to the segment. stream: a cudaStream_t.
void fingerprint_many_cuda(const FingerprintManyParams& p, const int64_t* block_table, int64_t num_blocks,
                           void* stream);

}  // namespace iquest::fingerprint
