// Schema and CPU implementation of iquest::minhash_signatures: concatenated UTF-8 bytes + document offsets
// and datasketch's permutation parameters in, (num_docs, num_perm) int64 signatures out (kernel and formula:
// csrc/text/minhash.h). iquest_core/ops/minhash.py checks arguments by name first; here is the backstop.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <string>

#include "../csrc/text/minhash.h"

namespace iquest {
namespace {

void check_vector(const at::Tensor& t, const char* name, at::ScalarType dtype) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), name, ": expected a CPU tensor, got ", t.device());
  TORCH_CHECK_VALUE(t.scalar_type() == dtype, name, ": expected dtype ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.dim() == 1, name, ": expected a 1-D tensor, got shape ", t.sizes());
}

at::Tensor minhash_signatures_cpu(const at::Tensor& bytes, const at::Tensor& offsets, const at::Tensor& a,
                                  const at::Tensor& b, int64_t ngram, c10::string_view scheme) {
  check_vector(bytes, "bytes", at::kByte);
  check_vector(offsets, "offsets", at::kLong);
  check_vector(a, "a", at::kLong);
  check_vector(b, "b", at::kLong);
  TORCH_CHECK_VALUE(offsets.numel() >= 1, "offsets: expected num_docs + 1 >= 1 entries, got none");
  TORCH_CHECK_VALUE(a.numel() >= 1 && a.numel() == b.numel(), "b: expected as many entries as a (>= 1), got ",
                    b.numel(), " and ", a.numel());
  TORCH_CHECK_VALUE(ngram >= 1, "ngram: expected >= 1, got ", ngram);
  TORCH_CHECK_VALUE(scheme == "affine32" || scheme == "legacy", "scheme: expected \"affine32\" or \"legacy\", got \"",
                    std::string(scheme), "\"");
  const at::Tensor bytes_c = bytes.contiguous(), offsets_c = offsets.contiguous();
  const at::Tensor a_c = a.contiguous(), b_c = b.contiguous();
  const int64_t num_docs = offsets_c.numel() - 1;
  const int64_t* off = offsets_c.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(off[0] == 0 && off[num_docs] == bytes_c.numel(),
                    "offsets: expected to start at 0 and end at the number of bytes ", bytes_c.numel());
  for (int64_t d = 0; d < num_docs; ++d) {
    TORCH_CHECK_VALUE(off[d] <= off[d + 1], "offsets: expected non-decreasing values, got ", off[d], " > ",
                      off[d + 1], " at ", d);
  }
  at::Tensor signatures = at::empty({num_docs, a_c.numel()}, at::kLong);
  text::MinHashParams p;
  p.bytes = bytes_c.data_ptr<uint8_t>();
  p.offsets = off;
  p.num_docs = num_docs;
  p.a = reinterpret_cast<const uint64_t*>(a_c.data_ptr<int64_t>());
  p.b = reinterpret_cast<const uint64_t*>(b_c.data_ptr<int64_t>());
  p.num_perm = a_c.numel();
  p.ngram = ngram;
  p.scheme = scheme == "legacy" ? text::MinHashScheme::kLegacy : text::MinHashScheme::kAffine32;
  p.signatures = reinterpret_cast<uint64_t*>(signatures.data_ptr<int64_t>());
  text::minhash_signatures_cpu(p);
  return signatures;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(iquest, m) {
  m.def("minhash_signatures(Tensor bytes, Tensor offsets, Tensor a, Tensor b, int ngram, str scheme) -> Tensor");
}

TORCH_LIBRARY_IMPL(iquest, CPU, m) {
  m.impl("minhash_signatures", &minhash_signatures_cpu);
}

}  // namespace iquest
