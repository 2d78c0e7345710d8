// CPU kernel of MinHash signatures (formula: minhash.h).
#include "minhash.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>

#include "sha1.h"

namespace iquest::text {
namespace {

constexpr uint64_t kMersennePrime = (uint64_t{1} << 61) - 1;

struct TokenBytes {
  bool table[256] = {};
  constexpr TokenBytes() {
    for (int c = 0; c < 256; ++c) {
      table[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
    }
  }
};
constexpr TokenBytes kTokenBytes;

bool is_token_byte(uint8_t c) { return kTokenBytes.table[c]; }

// sha1_hash32 of tokens [first, first + width) joined by single spaces; tokens holds start/end pairs.
uint32_t shingle_hash(const uint8_t* bytes, const int64_t* tokens, int64_t first, int64_t width, Sha1& sha) {
  const int64_t length = tokens[2 * (first + width) - 1] - tokens[2 * first];  // upper bound of the joined size
  if (length <= static_cast<int64_t>(kSha1ShortMessage)) {
    uint8_t block[64];
    size_t used = 0;
    for (int64_t t = first; t < first + width; ++t) {
      if (t > first) block[used++] = ' ';
      const size_t n = static_cast<size_t>(tokens[2 * t + 1] - tokens[2 * t]);
      std::memcpy(block + used, bytes + tokens[2 * t], n);
      used += n;
    }
    return sha1_hash32_short(block, used, sha.block_function());
  }
  static const uint8_t kSpace = ' ';
  sha.reset();
  for (int64_t t = first; t < first + width; ++t) {
    if (t > first) sha.update(&kSpace, 1);
    sha.update(bytes + tokens[2 * t], static_cast<size_t>(tokens[2 * t + 1] - tokens[2 * t]));
  }
  return sha.hash32();
}

// MurmurHash3's 32-bit finalizer (datasketch's _fmix for width 32).
uint32_t fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  return h ^ (h >> 16);
}

// x mod (2^61 - 1) for any 64-bit x: 2^61 = 1 (mod p), and the folded value is below 2p.
uint64_t mod_mersenne61(uint64_t x) {
  const uint64_t r = (x & kMersennePrime) + (x >> 61);
  return r >= kMersennePrime ? r - kMersennePrime : r;
}

// Plain loops over the permutations that the compiler vectorises; AVX-512 (legacy's 64-bit products), AVX2
// or baseline chosen at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
void min_affine32(const uint32_t* hashes, int64_t count, const uint32_t* a, const uint32_t* b, int64_t num_perm,
                  uint32_t* mins) {
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t hv = fmix32(hashes[i]);
    for (int64_t p = 0; p < num_perm; ++p) mins[p] = std::min(mins[p], a[p] * hv + b[p]);
  }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#endif
void min_legacy(const uint32_t* hashes, int64_t count, const uint64_t* a, const uint64_t* b, int64_t num_perm,
                uint64_t* mins) {
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t hv = hashes[i];
    for (int64_t p = 0; p < num_perm; ++p) {
      mins[p] = std::min(mins[p], mod_mersenne61(a[p] * hv + b[p]) & kMinHashEmpty);
    }
  }
}

}  // namespace

void shingle_hashes(const uint8_t* bytes, int64_t size, int64_t ngram, std::vector<int64_t>& tokens,
                    std::vector<uint32_t>& hashes) {
  tokens.clear();
  hashes.clear();
  for (int64_t i = 0; i < size;) {
    if (!is_token_byte(bytes[i])) {
      ++i;
      continue;
    }
    const int64_t start = i;
    while (i < size && is_token_byte(bytes[i])) ++i;
    tokens.push_back(start);
    tokens.push_back(i);
  }
  const int64_t num_tokens = static_cast<int64_t>(tokens.size() / 2);
  if (num_tokens == 0) return;
  const int64_t width = std::min(ngram, num_tokens);
  Sha1 sha;
  for (int64_t first = 0; first + width <= num_tokens; ++first) {
    hashes.push_back(shingle_hash(bytes, tokens.data(), first, width, sha));
  }
}

void minhash_signatures_cpu(const MinHashParams& p) {
  std::vector<uint32_t> a32, b32;
  if (p.scheme == MinHashScheme::kAffine32) {
    a32.assign(p.a, p.a + p.num_perm);
    b32.assign(p.b, p.b + p.num_perm);
  }
  at::parallel_for(0, p.num_docs, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> tokens;
    std::vector<uint32_t> hashes;
    std::vector<uint32_t> mins32(p.num_perm);
    std::vector<uint64_t> mins64(p.num_perm);
    for (int64_t d = begin; d < end; ++d) {
      shingle_hashes(p.bytes + p.offsets[d], p.offsets[d + 1] - p.offsets[d], p.ngram, tokens, hashes);
      uint64_t* out = p.signatures + d * p.num_perm;
      if (p.scheme == MinHashScheme::kAffine32) {
        std::fill(mins32.begin(), mins32.end(), static_cast<uint32_t>(kMinHashEmpty));
        min_affine32(hashes.data(), static_cast<int64_t>(hashes.size()), a32.data(), b32.data(), p.num_perm, mins32.data());
        std::copy(mins32.begin(), mins32.end(), out);
      } else {
        // The legacy permutation is scalar 64-bit arithmetic: repeated shingles are worth removing first.
        std::sort(hashes.begin(), hashes.end());
        hashes.erase(std::unique(hashes.begin(), hashes.end()), hashes.end());
        std::fill(mins64.begin(), mins64.end(), kMinHashEmpty);
        min_legacy(hashes.data(), static_cast<int64_t>(hashes.size()), p.a, p.b, p.num_perm, mins64.data());
        std::copy(mins64.begin(), mins64.end(), out);
      }
    }
  });
}

}  // namespace iquest::text
