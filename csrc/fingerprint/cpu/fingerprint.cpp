// CPU kernel of tensor fingerprints (formula: ../fingerprint.h). Every tensor is cut into blocks of
// kWordsPerBlock words; at::parallel_for spreads the blocks of all tensors over the threads; each block's
// lane sums are added up per tensor afterwards (sums mod 2^64: any blocking, any thread count, same digest).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../fingerprint.h"

namespace iquest::fingerprint {
namespace {

constexpr int64_t kSerialBytes = int64_t{1} << 20;

struct Lanes {
  uint64_t weighted = 0;
  uint64_t mixed = 0;
};

// Lane sums of the `count` whole words at `bytes`, whose first word has index `first`. A plain loop
// that the compiler vectorises; compiled for AVX2 and baseline x86-64, chosen at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
Lanes sum_words(const unsigned char* bytes, uint64_t first, int64_t count) {
  uint64_t weighted = 0, mixed = 0;
  uint64_t weight = weight_of(first), key = position_key(first);  // stepped, not multiplied, per word
  for (int64_t j = 0; j < count; ++j) {
    uint64_t word;
    std::memcpy(&word, bytes + 8 * j, sizeof(word));
    weighted += word * weight;
    mixed += fmix64(word ^ key);
    weight += 2 * K_WEIGHT;
    key += K_POSITION;
  }
  return {weighted, mixed};
}

// Lane sums of words [first, first + kWordsPerBlock) of a segment, the zero-padded last word included.
Lanes block_lanes(const FingerprintSegment& s, int64_t first) {
  const int64_t whole = s.nbytes / 8;
  const int64_t end = std::min(first + kWordsPerBlock, (s.nbytes + 7) / 8);
  Lanes lanes = sum_words(s.data + 8 * first, static_cast<uint64_t>(first), std::min(end, whole) - first);
  if (end > whole) {
    uint64_t word = 0;
    std::memcpy(&word, s.data + 8 * whole, static_cast<size_t>(s.nbytes - 8 * whole));
    lanes.weighted += weighted_term(word, static_cast<uint64_t>(whole));
    lanes.mixed += mixed_term(word, static_cast<uint64_t>(whole));
  }
  return lanes;
}

}  // namespace

void fingerprint_many_cpu(const FingerprintManyParams& p) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the formula reads little-endian words");
  std::vector<int64_t> first_block(p.count + 1, 0);  // blocks of segment s: [first_block[s], first_block[s + 1])
  for (int64_t s = 0; s < p.count; ++s) {
    const int64_t words = (p.segments[s].nbytes + 7) / 8;
    first_block[s + 1] = first_block[s] + (words + kWordsPerBlock - 1) / kWordsPerBlock;
  }
  const int64_t num_blocks = first_block[p.count];
  int64_t total_bytes = 0;
  for (int64_t s = 0; s < p.count; ++s) total_bytes += p.segments[s].nbytes;
  // Below kSerialBytes the threads' start-up costs more than they save: one thread does it all.
  const int64_t grain = total_bytes < kSerialBytes ? std::max<int64_t>(num_blocks, 1) : 1;
  std::vector<Lanes> partial(num_blocks);
  at::parallel_for(0, num_blocks, grain, [&](int64_t begin, int64_t end) {
    int64_t s = std::upper_bound(first_block.begin(), first_block.end(), begin) - first_block.begin() - 1;
    for (int64_t b = begin; b < end; ++b) {
      while (b >= first_block[s + 1]) ++s;
      partial[b] = block_lanes(p.segments[s], (b - first_block[s]) * kWordsPerBlock);
    }
  });
  for (int64_t s = 0; s < p.count; ++s) {
    Lanes total;
    for (int64_t b = first_block[s]; b < first_block[s + 1]; ++b) {
      total.weighted += partial[b].weighted;
      total.mixed += partial[b].mixed;
    }
    finalize(total.weighted, total.mixed, p.segments[s].key, p.digests + 2 * s);
  }
}

}  // namespace iquest::fingerprint
