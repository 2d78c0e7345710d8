// Scalar math shared by the CPU and CUDA attention kernels: which keys a query sees, the online
// softmax bookkeeping, the log-sum-exp merge and the sigmoid gate. Host and device code, no torch.
//
// Positions are absolute token positions inside one sequence. A query at position i sees the key at
// position j iff j <= i (causal) and, with a window W >= 1, i - W < j (the W keys ending at itself).
// window == 0 means "no window" (the global causal branch).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__CUDACC__)
#define IQ_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define IQ_HOST_DEVICE inline
#endif

namespace iquest {

constexpr int64_t kNoWindow = 0;

// Half-open range [lo, hi) of positions.
struct PosRange {
  int64_t lo;
  int64_t hi;
  IQ_HOST_DEVICE bool empty() const { return hi <= lo; }
};

IQ_HOST_DEVICE int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }
IQ_HOST_DEVICE int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

IQ_HOST_DEVICE PosRange intersect(PosRange a, PosRange b) {
  return {max_i64(a.lo, b.lo), min_i64(a.hi, b.hi)};
}

// Key positions visible to the query at q_pos (unbounded below without a window).
IQ_HOST_DEVICE PosRange visible_keys(int64_t q_pos, int64_t window) {
  const int64_t lo = window > 0 ? q_pos - window + 1 : std::numeric_limits<int64_t>::min();
  return {lo, q_pos + 1};
}

// Key positions visible to at least one query of the block [q_lo, q_hi).
IQ_HOST_DEVICE PosRange visible_keys_of_block(int64_t q_lo, int64_t q_hi, int64_t window) {
  return {visible_keys(q_lo, window).lo, q_hi};
}

IQ_HOST_DEVICE bool is_visible(int64_t q_pos, int64_t k_pos, int64_t window) {
  return k_pos <= q_pos && (window <= 0 || q_pos - window < k_pos);
}

// Query positions that see the key at k_pos (unbounded above without a window): the mirror image of
// visible_keys, used by backward kernels that walk the queries of one key block.
IQ_HOST_DEVICE PosRange visible_queries(int64_t k_pos, int64_t window) {
  const int64_t hi = window > 0 ? k_pos + window : std::numeric_limits<int64_t>::max();
  return {k_pos, hi};
}

// Query positions that see at least one key of the block [k_lo, k_hi).
IQ_HOST_DEVICE PosRange visible_queries_of_block(int64_t k_lo, int64_t k_hi, int64_t window) {
  return {k_lo, visible_queries(k_hi - 1, window).hi};
}

// True when every query of [q_lo, q_hi) sees every key of [k_lo, k_hi) (both non-empty): a tile of
// scores that needs no mask. The first query must see the last key, the last query the first key.
IQ_HOST_DEVICE bool block_fully_visible(int64_t q_lo, int64_t q_hi, int64_t k_lo, int64_t k_hi, int64_t window) {
  return k_hi - 1 <= q_lo && (window <= 0 || q_hi - 1 - window < k_lo);
}

// Online softmax: when the running row maximum moves from old_max to new_max, the accumulated
// exp-sum and output are multiplied by this factor. A row that has seen nothing yet (old_max = -inf)
// has nothing to rescale.
IQ_HOST_DEVICE float rescale_factor(float old_max, float new_max) {
  return old_max == -INFINITY ? 0.f : expf(old_max - new_max);
}

// log(sum exp(s)) of a finished row from its maximum and its exp-sum relative to that maximum;
// -inf for a row that saw no key.
IQ_HOST_DEVICE float lse_of(float row_max, float row_sum) {
  return row_sum > 0.f ? row_max + logf(row_sum) : -INFINITY;
}

// log(exp(a) + exp(b)) without overflow; -inf when both are -inf.
IQ_HOST_DEVICE float log_add_exp(float a, float b) {
  const float hi = a > b ? a : b;
  if (hi == -INFINITY) return -INFINITY;
  const float lo = a > b ? b : a;
  return hi + log1pf(expf(lo - hi));
}

// Gate of loop attention: g = sigmoid(logit), computed in fp32; out = g * O_global + (1 - g) * O_local.
IQ_HOST_DEVICE float sigmoid(float logit) { return 1.f / (1.f + expf(-logit)); }

// d out / d logit = (dO . (O_global - O_local)) * g * (1 - g).
IQ_HOST_DEVICE float gate_logit_grad(float dout_dot_diff, float g) { return dout_dot_diff * g * (1.f - g); }

}  // namespace iquest
