// Tensors -> FingerprintSegment structs (bytes + header key), shared by the CPU and CUDA registrations.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "../csrc/fingerprint/fingerprint.h"

namespace iquest::fingerprint {

inline FingerprintDtype dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kBool: return FingerprintDtype::kBool;
    case at::kByte: return FingerprintDtype::kUInt8;
    case at::kChar: return FingerprintDtype::kInt8;
    case at::kShort: return FingerprintDtype::kInt16;
    case at::kInt: return FingerprintDtype::kInt32;
    case at::kLong: return FingerprintDtype::kInt64;
    case at::kUInt16: return FingerprintDtype::kUInt16;
    case at::kUInt32: return FingerprintDtype::kUInt32;
    case at::kUInt64: return FingerprintDtype::kUInt64;
    case at::kHalf: return FingerprintDtype::kFloat16;
    case at::kBFloat16: return FingerprintDtype::kBFloat16;
    case at::kFloat: return FingerprintDtype::kFloat32;
    case at::kDouble: return FingerprintDtype::kFloat64;
    case at::kFloat8_e4m3fn: return FingerprintDtype::kFloat8_e4m3fn;
    case at::kFloat8_e5m2: return FingerprintDtype::kFloat8_e5m2;
    case at::kFloat8_e4m3fnuz: return FingerprintDtype::kFloat8_e4m3fnuz;
    case at::kFloat8_e5m2fnuz: return FingerprintDtype::kFloat8_e5m2fnuz;
    case at::kFloat8_e8m0fnu: return FingerprintDtype::kFloat8_e8m0fnu;
    case at::kComplexFloat: return FingerprintDtype::kComplex64;
    case at::kComplexDouble: return FingerprintDtype::kComplex128;
    case at::kComplexHalf: return FingerprintDtype::kComplex32;
    default: TORCH_CHECK_VALUE(false, "tensors: fingerprints do not support dtype ", t);
  }
}

inline uint64_t header_key_of(const at::Tensor& t) {
  std::vector<uint64_t> h{static_cast<uint64_t>(dtype_code(t.scalar_type())), static_cast<uint64_t>(t.dim())};
  for (int64_t size : t.sizes()) h.push_back(static_cast<uint64_t>(size));
  return header_key(h.data(), static_cast<int64_t>(h.size()));
}

// Segments of the tensors' logical bytes, after checking that all are dense and on one device. Tensors
// that are not contiguous, or whose data is not aligned to `alignment` bytes, are copied into keep_alive
// first.
inline std::vector<FingerprintSegment> segments_of(at::TensorList tensors, int64_t alignment,
                                                   std::vector<at::Tensor>& keep_alive) {
  std::vector<FingerprintSegment> segments;
  segments.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& tensor = tensors[i];
    TORCH_CHECK_VALUE(tensor.layout() == at::kStrided, "tensors[", i, "]: expected a strided (dense) tensor, ",
                      "got layout ", tensor.layout());
    TORCH_CHECK_VALUE(tensor.device() == tensors[0].device(), "tensors[", i, "]: expected device ", tensors[0].device(),
                      " like tensors[0], got ", tensor.device());
    at::Tensor t = tensor;
    if (!t.is_contiguous() || reinterpret_cast<uintptr_t>(t.data_ptr()) % alignment != 0) {
      t = t.clone(at::MemoryFormat::Contiguous);
      keep_alive.push_back(t);
    }
    FingerprintSegment s;
    s.data = static_cast<const unsigned char*>(t.data_ptr());
    s.nbytes = static_cast<int64_t>(t.nbytes());
    s.key = header_key_of(tensor);
    segments.push_back(s);
  }
  return segments;
}

}  // namespace iquest::fingerprint
