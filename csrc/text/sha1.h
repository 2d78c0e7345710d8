// SHA-1 (FIPS 180-4), streaming: reset, update with any number of byte pieces, digest. Used to hash
// shingles the way datasketch's sha1_hash32 does (first 4 digest bytes, little-endian). The block
// function is portable C++, or the x86 SHA extensions (SHA-NI) where the CPU has them (chosen once).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define IQUEST_SHA1_X86 1
#endif

namespace iquest::text {

using Sha1Block = void (*)(uint32_t state[5], const uint8_t* block);

inline uint32_t sha1_rotl(uint32_t x, int s) { return (x << s) | (x >> (32 - s)); }

inline void sha1_block_portable(uint32_t state[5], const uint8_t* block) {
  uint32_t w[80];
  for (int i = 0; i < 16; ++i) {
    w[i] = uint32_t{block[4 * i]} << 24 | uint32_t{block[4 * i + 1]} << 16 | uint32_t{block[4 * i + 2]} << 8 |
           uint32_t{block[4 * i + 3]};
  }
  for (int i = 16; i < 80; ++i) w[i] = sha1_rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4];
  for (int i = 0; i < 80; ++i) {
    uint32_t f, k;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999u;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1u;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDCu;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6u;
    }
    const uint32_t t = sha1_rotl(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = sha1_rotl(b, 30);
    b = a;
    a = t;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
}

#ifdef IQUEST_SHA1_X86
// Twenty groups of four rounds. Group g hashes message vector m[g % 4] and, as the schedule needs it,
// finishes m[(g + 1) % 4] (sha1msg2), mixes m[(g + 2) % 4] and starts m[(g + 3) % 4] (sha1msg1); the
// schedule steps of the last groups compute words that are never used, which is harmless.
template <int Func>
__attribute__((target("sha,sse4.1"), always_inline)) inline void sha1_ni_groups(int first, int last, __m128i& abcd,
                                                                                __m128i& saved, __m128i m[4]) {
  for (int g = first; g < last; ++g) {
    const __m128i e = _mm_sha1nexte_epu32(saved, m[g % 4]);
    saved = abcd;
    if (g >= 3) m[(g + 1) % 4] = _mm_sha1msg2_epu32(m[(g + 1) % 4], m[g % 4]);
    abcd = _mm_sha1rnds4_epu32(abcd, e, Func);
    if (g >= 2) m[(g + 2) % 4] = _mm_xor_si128(m[(g + 2) % 4], m[g % 4]);
    m[(g + 3) % 4] = _mm_sha1msg1_epu32(m[(g + 3) % 4], m[g % 4]);
  }
}

__attribute__((target("sha,sse4.1"))) inline void sha1_block_ni(uint32_t state[5], const uint8_t* block) {
  const __m128i byte_swap = _mm_set_epi64x(0x0001020304050607LL, 0x08090A0B0C0D0E0FLL);
  __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state)), 0x1B);
  const __m128i abcd_start = abcd;
  const __m128i e_start = _mm_set_epi32(static_cast<int>(state[4]), 0, 0, 0);
  __m128i m[4];
  for (int i = 0; i < 4; ++i) {
    m[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 16 * i)), byte_swap);
  }
  // Group 0 takes E from the state; every later group derives it from the ABCD two groups back.
  __m128i saved = abcd;
  abcd = _mm_sha1rnds4_epu32(abcd, _mm_add_epi32(e_start, m[0]), 0);
  sha1_ni_groups<0>(1, 5, abcd, saved, m);
  sha1_ni_groups<1>(5, 10, abcd, saved, m);
  sha1_ni_groups<2>(10, 15, abcd, saved, m);
  sha1_ni_groups<3>(15, 20, abcd, saved, m);
  const __m128i e = _mm_sha1nexte_epu32(saved, e_start);
  abcd = _mm_shuffle_epi32(_mm_add_epi32(abcd, abcd_start), 0x1B);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state), abcd);
  state[4] = static_cast<uint32_t>(_mm_extract_epi32(e, 3));
}

inline bool cpu_has_sha_extensions() {
  unsigned int eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool sha = (ebx >> 29) & 1u;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  return sha && ((ecx >> 19) & 1u);  // SSE4.1 too
}
#endif

// The SHA-NI block function where the CPU has it, else the portable one; IQUEST_SHA1_PORTABLE=1 forces portable.
inline Sha1Block sha1_best_block() {
#ifdef IQUEST_SHA1_X86
  static const Sha1Block best = [] {
    const char* force = std::getenv("IQUEST_SHA1_PORTABLE");
    const bool portable = force != nullptr && std::strcmp(force, "1") == 0;
    return !portable && cpu_has_sha_extensions() ? &sha1_block_ni : &sha1_block_portable;
  }();
  return best;
#else
  return &sha1_block_portable;
#endif
}

constexpr size_t kSha1ShortMessage = 55;  // the longest message that fits one block with its padding

inline uint32_t sha1_digest_prefix32(uint32_t state0) {
  return __builtin_bswap32(state0);  // digest bytes 0..3 are state[0] big-endian; read them little-endian
}

// sha1_hash32 of the `length` <= kSha1ShortMessage bytes at the start of `block`, in one block-function
// call; writes the padding into block[length..64).
inline uint32_t sha1_hash32_short(uint8_t block[64], size_t length, Sha1Block block_function) {
  uint32_t state[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
  block[length] = 0x80;
  std::memset(block + length + 1, 0, 62 - length);
  const uint64_t bits = length * 8;
  block[62] = static_cast<uint8_t>(bits >> 8);
  block[63] = static_cast<uint8_t>(bits);
  block_function(state, block);
  return sha1_digest_prefix32(state[0]);
}

class Sha1 {
 public:
  explicit Sha1(Sha1Block block = sha1_best_block()) : block_(block) { reset(); }

  void reset() {
    state_[0] = 0x67452301u;
    state_[1] = 0xEFCDAB89u;
    state_[2] = 0x98BADCFEu;
    state_[3] = 0x10325476u;
    state_[4] = 0xC3D2E1F0u;
    length_ = 0;
    buffered_ = 0;
  }

  void update(const uint8_t* data, size_t size) {
    length_ += size;
    if (buffered_ > 0) {
      const size_t take = size < 64 - buffered_ ? size : 64 - buffered_;
      std::memcpy(buffer_ + buffered_, data, take);
      buffered_ += take;
      data += take;
      size -= take;
      if (buffered_ < 64) return;
      compress(buffer_);
      buffered_ = 0;
    }
    for (; size >= 64; data += 64, size -= 64) compress(data);
    std::memcpy(buffer_, data, size);
    buffered_ = size;
  }

  // The 20-byte digest; the object must be reset() before it hashes another message.
  void digest(uint8_t out[20]) {
    const uint64_t bits = length_ * 8;
    buffer_[buffered_++] = 0x80;
    if (buffered_ > 56) {
      std::memset(buffer_ + buffered_, 0, 64 - buffered_);
      compress(buffer_);
      buffered_ = 0;
    }
    std::memset(buffer_ + buffered_, 0, 56 - buffered_);
    for (int i = 0; i < 8; ++i) buffer_[56 + i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
    compress(buffer_);
    for (int i = 0; i < 5; ++i) {
      for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<uint8_t>(state_[i] >> (24 - 8 * j));
    }
  }

  // datasketch.hashfunc.sha1_hash32: the first four digest bytes read as a little-endian uint32.
  uint32_t hash32() {
    uint8_t d[20];
    digest(d);
    return uint32_t{d[0]} | uint32_t{d[1]} << 8 | uint32_t{d[2]} << 16 | uint32_t{d[3]} << 24;
  }

  Sha1Block block_function() const { return block_; }

 private:
  void compress(const uint8_t* block) { block_(state_, block); }

  Sha1Block block_;
  uint32_t state_[5];
  uint64_t length_;
  uint8_t buffer_[64];
  size_t buffered_;
};

}  // namespace iquest::text
