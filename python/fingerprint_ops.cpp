// Schema and CPU implementation of iquest::fingerprint_many: tensors in, FingerprintSegment structs to
// the kernel of csrc/fingerprint, (n, 2) int64 digests out. Argument checks that name the argument live
// in Python (iquest_core/reliability/fingerprint.py); here is the backstop.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <vector>

#include "../csrc/fingerprint/fingerprint.h"
#include "fingerprint_segments.h"
#include "op_signatures.h"

namespace iquest {
namespace {

at::Tensor fingerprint_many_cpu(at::TensorList tensors) {
  std::vector<at::Tensor> keep_alive;
  const std::vector<fingerprint::FingerprintSegment> segments =
      fingerprint::segments_of(tensors, /*alignment=*/1, keep_alive);
  at::Tensor digests = at::empty({static_cast<int64_t>(tensors.size()), 2}, at::kLong);
  fingerprint::FingerprintManyParams p;
  p.segments = segments.data();
  p.count = static_cast<int64_t>(segments.size());
  p.digests = reinterpret_cast<uint64_t*>(digests.data_ptr<int64_t>());
  fingerprint::fingerprint_many_cpu(p);
  return digests;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(iquest, m) {
  m.def(signatures::schema("fingerprint_many", signatures::kFingerprintMany).c_str());
}

TORCH_LIBRARY_IMPL(iquest, CPU, m) {
  m.impl("fingerprint_many", &fingerprint_many_cpu);
}

}  // namespace iquest
