// Unit tests of csrc/common/attention_math.h (the host/device math shared by CPU and CUDA kernels).
// Plain C++ with no torch, run by ctest; each check compares against a brute-force statement.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "common/attention_math.h"

namespace {

int failures = 0;

#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                        \
    }                                                                    \
  } while (0)

using iquest::PosRange;

void visible_keys_match_brute_force() {
  for (int64_t window : {0, 1, 2, 7, 64}) {
    for (int64_t q = 0; q < 100; ++q) {
      const PosRange r = iquest::visible_keys(q, window);
      for (int64_t k = -5; k < 110; ++k) {
        const bool in_range = r.lo <= k && k < r.hi;
        const bool brute = k <= q && (window == 0 || q - window < k);
        CHECK(in_range == brute);
        CHECK(iquest::is_visible(q, k, window) == brute);
      }
    }
  }
}

void block_range_is_union_of_rows() {
  for (int64_t window : {0, 1, 5, 64}) {
    for (int64_t q_lo = 0; q_lo < 40; q_lo += 3) {
      for (int64_t q_hi = q_lo + 1; q_hi < q_lo + 20; q_hi += 4) {
        const PosRange block = iquest::visible_keys_of_block(q_lo, q_hi, window);
        for (int64_t k = -80; k < 80; ++k) {
          bool any = false;
          for (int64_t q = q_lo; q < q_hi; ++q) any = any || iquest::is_visible(q, k, window);
          CHECK(any == (block.lo <= k && k < block.hi));
        }
      }
    }
  }
  CHECK(iquest::intersect({0, 10}, {5, 20}).lo == 5 && iquest::intersect({0, 10}, {5, 20}).hi == 10);
  CHECK(iquest::intersect({0, 3}, {5, 20}).empty());
}

// Online softmax over chunks equals the direct log-sum-exp, whatever the chunking.
void online_softmax_matches_direct() {
  std::mt19937 gen(1234);
  std::normal_distribution<float> normal(0.f, 4.f);
  std::vector<float> s(257);
  for (float& x : s) x = normal(gen);
  double direct_max = -INFINITY, direct_sum = 0;
  for (float x : s) direct_max = std::fmax(direct_max, x);
  for (float x : s) direct_sum += std::exp(x - direct_max);
  const double direct_lse = direct_max + std::log(direct_sum);
  for (size_t chunk : {1, 7, 64, 300}) {
    float row_max = -INFINITY, row_sum = 0.f;
    for (size_t i = 0; i < s.size(); i += chunk) {
      float chunk_max = -INFINITY;
      for (size_t j = i; j < std::min(s.size(), i + chunk); ++j) chunk_max = std::fmax(chunk_max, s[j]);
      const float new_max = std::fmax(row_max, chunk_max);
      float chunk_sum = 0.f;
      for (size_t j = i; j < std::min(s.size(), i + chunk); ++j) chunk_sum += std::exp(s[j] - new_max);
      row_sum = row_sum * iquest::rescale_factor(row_max, new_max) + chunk_sum;
      row_max = new_max;
    }
    CHECK(std::fabs(iquest::lse_of(row_max, row_sum) - direct_lse) < 1e-5 * std::fabs(direct_lse) + 1e-5);
  }
  CHECK(iquest::rescale_factor(-INFINITY, 3.f) == 0.f);
  CHECK(iquest::lse_of(-INFINITY, 0.f) == -INFINITY);
}

void log_add_exp_and_gate() {
  CHECK(std::fabs(iquest::log_add_exp(1.f, 2.f) - std::log(std::exp(1.f) + std::exp(2.f))) < 1e-6f);
  CHECK(std::fabs(iquest::log_add_exp(1000.f, 1000.f) - (1000.f + std::log(2.f))) < 1e-3f);
  CHECK(iquest::log_add_exp(-INFINITY, 5.f) == 5.f);
  CHECK(iquest::log_add_exp(-INFINITY, -INFINITY) == -INFINITY);
  CHECK(iquest::sigmoid(0.f) == 0.5f);
  CHECK(std::fabs(iquest::sigmoid(2.f) - 1.f / (1.f + std::exp(-2.f))) < 1e-7f);
  // d/dlogit sigmoid = g (1 - g): compare with a central difference.
  const float logit = 0.7f, h = 1e-3f, g = iquest::sigmoid(logit);
  const float numeric = (iquest::sigmoid(logit + h) - iquest::sigmoid(logit - h)) / (2 * h);
  CHECK(std::fabs(iquest::gate_logit_grad(1.f, g) - numeric) < 1e-4f);
}


// The query-side ranges mirror the key-side ones, and block_fully_visible agrees with is_visible.
void query_ranges_and_full_blocks_match_brute_force() {
  for (int64_t window : {0, 1, 3, 64}) {
    for (int64_t k = 0; k < 50; ++k) {
      const PosRange r = iquest::visible_queries(k, window);
      for (int64_t q = -5; q < 200; ++q) CHECK((r.lo <= q && q < r.hi) == iquest::is_visible(q, k, window));
    }
    for (int64_t k_lo = 0; k_lo < 40; k_lo += 5) {
      for (int64_t k_hi = k_lo + 1; k_hi < k_lo + 17; k_hi += 3) {
        const PosRange block = iquest::visible_queries_of_block(k_lo, k_hi, window);
        for (int64_t q = -5; q < 150; ++q) {
          bool any = false;
          for (int64_t k = k_lo; k < k_hi; ++k) any = any || iquest::is_visible(q, k, window);
          CHECK(any == (block.lo <= q && q < block.hi));
        }
        for (int64_t q_lo = 0; q_lo < 60; q_lo += 7) {
          for (int64_t q_hi = q_lo + 1; q_hi < q_lo + 20; q_hi += 6) {
            bool all = true;
            for (int64_t q = q_lo; q < q_hi; ++q)
              for (int64_t k = k_lo; k < k_hi; ++k) all = all && iquest::is_visible(q, k, window);
            CHECK(all == iquest::block_fully_visible(q_lo, q_hi, k_lo, k_hi, window));
          }
        }
      }
    }
  }
}

}  // namespace

int main() {
  visible_keys_match_brute_force();
  block_range_is_union_of_rows();
  query_ranges_and_full_blocks_match_brute_force();
  online_softmax_matches_direct();
  log_add_exp_and_gate();
  if (failures) std::fprintf(stderr, "%d check(s) failed\n", failures);
  else std::printf("attention_math: all checks passed\n");
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
