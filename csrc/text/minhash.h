// MinHash signatures of documents, bit-identical to datasketch's MinHash (schemes "affine32" and
// "legacy") updated with the documents' word shingles:
//   tokens    maximal runs of bytes in [A-Za-z0-9_] or >= 0x80 of the UTF-8 text;
//   shingles  each run of `ngram` consecutive tokens joined by single spaces (fewer tokens than ngram:
//             one shingle of all of them; no tokens: none, and the signature stays at its maximum);
//   hash      h = sha1_hash32(shingle): the first 4 SHA-1 digest bytes as a little-endian uint32;
//   affine32  v = a * fmix32(h) + b  mod 2^32                       (a, b < 2^32, a odd)
//   legacy    v = ((a * h + b) mod 2^64) mod (2^61 - 1), low 32 bits (a, b < 2^61 - 1)
//   signature s[p] = min over the document's shingles of v with (a[p], b[p]); 2^32 - 1 when empty.
#pragma once

#include <cstdint>
#include <vector>

namespace iquest::text {

enum class MinHashScheme : int { kAffine32 = 0, kLegacy = 1 };

struct MinHashParams {
  const uint8_t* bytes = nullptr;     // all documents' UTF-8 bytes, concatenated
  const int64_t* offsets = nullptr;   // (num_docs + 1,) document d is bytes[offsets[d], offsets[d + 1])
  int64_t num_docs = 0;
  const uint64_t* a = nullptr;        // (num_perm,) permutation parameters, as datasketch draws them
  const uint64_t* b = nullptr;        // (num_perm,)
  int64_t num_perm = 0;
  int64_t ngram = 5;
  MinHashScheme scheme = MinHashScheme::kAffine32;
  uint64_t* signatures = nullptr;     // (num_docs, num_perm) out, values < 2^32
};

constexpr uint64_t kMinHashEmpty = 0xFFFFFFFFull;

// Documents are spread over threads with at::parallel_for; the result does not depend on the thread count.
void minhash_signatures_cpu(const MinHashParams& p);

// The sha1_hash32 value of each shingle of one document, in shingle order (repeats included: the minimum
// over them is the minimum over the shingle set).
// `tokens` is scratch space (token start/end pairs), reused across calls.
void shingle_hashes(const uint8_t* bytes, int64_t size, int64_t ngram, std::vector<int64_t>& tokens,
                    std::vector<uint32_t>& hashes);

}  // namespace iquest::text
