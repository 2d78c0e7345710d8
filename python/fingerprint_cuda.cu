// CUDA kernel of iquest::fingerprint_many, registered as the op fingerprint_many_cuda_unchecked
// (op_signatures.h): one upload of the segment and block tables, one kernel launch for all tensors,
// (n, 2) int64 digests on the device.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstring>
#include <vector>

#include "../csrc/fingerprint/fingerprint.h"
#include "fingerprint_segments.h"
#include "op_signatures.h"

namespace iquest {
namespace {

at::Tensor fingerprint_many_cuda(at::TensorList tensors) {
  TORCH_CHECK_VALUE(!tensors.empty(), "tensors: expected at least one tensor");
  const c10::cuda::CUDAGuard device_guard(tensors[0].device());
  std::vector<at::Tensor> keep_alive;
  const std::vector<fingerprint::FingerprintSegment> segments =
      fingerprint::segments_of(tensors, /*alignment=*/8, keep_alive);
  const int64_t count = static_cast<int64_t>(segments.size());
  std::vector<int64_t> blocks;  // (segment, first word) pairs; an empty tensor gets one (empty) block
  for (int64_t s = 0; s < count; ++s) {
    const int64_t words = (segments[s].nbytes + 7) / 8;
    for (int64_t first = 0; first == 0 || first < words; first += fingerprint::kWordsPerBlock) {
      blocks.push_back(s);
      blocks.push_back(first);
    }
  }
  // One host buffer, one copy: the segments, then the block table.
  const int64_t segment_bytes = count * static_cast<int64_t>(sizeof(fingerprint::FingerprintSegment));
  const int64_t table_offset = (segment_bytes + 7) / 8 * 8;
  at::Tensor host = at::empty({table_offset + static_cast<int64_t>(blocks.size() * sizeof(int64_t))},
                              at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  std::memcpy(host.data_ptr(), segments.data(), segment_bytes);
  std::memcpy(host.data_ptr<uint8_t>() + table_offset, blocks.data(), blocks.size() * sizeof(int64_t));
  const at::Tensor tables = host.to(tensors[0].device(), /*non_blocking=*/true);
  const auto long_options = at::TensorOptions().dtype(at::kLong).device(tensors[0].device());
  at::Tensor scratch = at::zeros({3 * count}, long_options);
  at::Tensor digests = at::empty({count, 2}, long_options);
  fingerprint::FingerprintManyParams p;
  p.segments = reinterpret_cast<const fingerprint::FingerprintSegment*>(tables.data_ptr<uint8_t>());
  p.count = count;
  p.digests = reinterpret_cast<uint64_t*>(digests.data_ptr<int64_t>());
  p.scratch = reinterpret_cast<uint64_t*>(scratch.data_ptr<int64_t>());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  fingerprint::fingerprint_many_cuda(p, reinterpret_cast<const int64_t*>(tables.data_ptr<uint8_t>() + table_offset),
                                     static_cast<int64_t>(blocks.size() / 2), stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // Freeing host (pinned: the allocator waits for the copy), tables and keep_alive (allocated on this
  // stream: reuse is stream-ordered after the kernel) on return is safe.
  return digests;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(iquest, m) {
  m.def(signatures::schema(signatures::cuda_unchecked("fingerprint_many"), signatures::kFingerprintMany).c_str());
}

TORCH_LIBRARY_IMPL(iquest, CUDA, m) {
  m.impl(signatures::cuda_unchecked("fingerprint_many").c_str(), &fingerprint_many_cuda);
}

}  // namespace iquest
