// CUDA kernel of tensor fingerprints (formula: ../fingerprint.h). One launch for all tensors: block b
// sums kWordsPerBlock words of one tensor (block_table), adds its lane sums to the tensor's totals with
// 64-bit atomics (addition mod 2^64 is associative and commutative: the result does not depend on the
// order blocks finish), and the last block of each tensor to finish writes its digest.
#include <cuda_runtime.h>

#include "../fingerprint.h"

namespace iquest::fingerprint {
namespace {

constexpr int kThreads = 256;

__device__ uint64_t block_sum(uint64_t value, uint64_t* shared) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  value = threadIdx.x < kThreads / 32 ? shared[threadIdx.x] : 0;
  if (warp == 0) {
    for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
  }
  __syncthreads();
  return value;  // valid in thread 0
}

__global__ void __launch_bounds__(kThreads) fingerprint_blocks(FingerprintManyParams p, const int64_t* block_table) {
  const int64_t s = block_table[2 * blockIdx.x], first = block_table[2 * blockIdx.x + 1];
  const FingerprintSegment seg = p.segments[s];
  const int64_t words = (seg.nbytes + 7) / 8, whole = seg.nbytes / 8;
  const int64_t end = min(first + kWordsPerBlock, words);
  const uint64_t* data = reinterpret_cast<const uint64_t*>(seg.data);
  uint64_t weighted = 0, mixed = 0;
  for (int64_t i = first + threadIdx.x; i < end; i += kThreads) {
    uint64_t word;
    if (i < whole) {
      word = __ldg(data + i);
    } else {  // the zero-padded last word
      word = 0;
      for (int64_t byte = 8 * i; byte < seg.nbytes; ++byte) word |= uint64_t{seg.data[byte]} << (8 * (byte - 8 * i));
    }
    weighted += weighted_term(word, static_cast<uint64_t>(i));
    mixed += mixed_term(word, static_cast<uint64_t>(i));
  }
  __shared__ uint64_t shared[kThreads / 32];
  weighted = block_sum(weighted, shared);
  mixed = block_sum(mixed, shared);
  if (threadIdx.x != 0) return;
  uint64_t* sums = p.scratch + 2 * s;
  unsigned long long* done = reinterpret_cast<unsigned long long*>(p.scratch + 2 * p.count + s);
  atomicAdd(reinterpret_cast<unsigned long long*>(sums), weighted);
  atomicAdd(reinterpret_cast<unsigned long long*>(sums + 1), mixed);
  __threadfence();
  const unsigned long long blocks = words == 0 ? 1 : (words + kWordsPerBlock - 1) / kWordsPerBlock;
  if (atomicAdd(done, 1ull) + 1 == blocks) {
    __threadfence();
    const uint64_t total_weighted = atomicAdd(reinterpret_cast<unsigned long long*>(sums), 0ull);
    const uint64_t total_mixed = atomicAdd(reinterpret_cast<unsigned long long*>(sums + 1), 0ull);
    finalize(total_weighted, total_mixed, seg.key, p.digests + 2 * s);
  }
}

}  // namespace

void fingerprint_many_cuda(const FingerprintManyParams& p, const int64_t* block_table, int64_t num_blocks,
                           void* stream) {
  if (num_blocks == 0) return;
  fingerprint_blocks<<<static_cast<unsigned>(num_blocks), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      p, block_table);
}

}  // namespace iquest::fingerprint
