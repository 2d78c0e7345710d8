// SHA-1 of csrc/text/sha1.h: FIPS 180 test vectors, streaming in uneven pieces, and the SHA-NI block
// function (where the CPU has it) equal to the portable one on every message length 0..300.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "text/sha1.h"

namespace {

int failures = 0;

std::string hex_digest(iquest::text::Sha1& sha) {
  uint8_t d[20];
  sha.digest(d);
  std::string out;
  char buf[3];
  for (uint8_t byte : d) {
    std::snprintf(buf, sizeof(buf), "%02x", byte);
    out += buf;
  }
  return out;
}

void expect(const std::string& got, const std::string& want, const char* what) {
  if (got != want) {
    std::printf("FAIL %s: got %s, want %s\n", what, got.c_str(), want.c_str());
    ++failures;
  }
}

std::string sha1_of(const std::string& message, iquest::text::Sha1Block block, size_t piece) {
  iquest::text::Sha1 sha(block);
  for (size_t i = 0; i < message.size(); i += piece) {
    const size_t n = std::min(piece, message.size() - i);
    sha.update(reinterpret_cast<const uint8_t*>(message.data() + i), n);
  }
  return hex_digest(sha);
}

}  // namespace

int main() {
  using iquest::text::sha1_best_block;
  using iquest::text::sha1_block_portable;
  for (auto block : {&sha1_block_portable, sha1_best_block()}) {
    expect(sha1_of("", block, 1), "da39a3ee5e6b4b0d3255bfef95601890afd80709", "empty");
    expect(sha1_of("abc", block, 1), "a9993e364706816aba3e25717850c26c9cd0d89d", "abc");
    expect(sha1_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", block, 7),
           "84983e441c3bd26ebaae4aa1f95129e5e54670f1", "two blocks");
    expect(sha1_of(std::string(1000000, 'a'), block, 4099), "34aa973cd4c4daa4f61eeb2bdbad27316534016f",
           "a million a");
  }
  std::string message;
  uint32_t state = 12345;
  for (int length = 0; length <= 300; ++length) {
    expect(sha1_of(message, sha1_best_block(), 13), sha1_of(message, &sha1_block_portable, 64),
           "best block function equals portable");
    state = state * 1664525u + 1013904223u;
    message.push_back(static_cast<char>(state >> 24));
  }
  std::printf("%s (%s block function)\n", failures ? "FAILED" : "ok",
              sha1_best_block() == &sha1_block_portable ? "portable" : "SHA-NI");
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
