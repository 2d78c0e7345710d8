// Argument checks of the binding layer, shared by every op registration in python/: each failure raises
// ValueError (TORCH_CHECK_VALUE) naming the argument and what was expected, so that a direct
// torch.ops.iquest.* call with a wrong shape, dtype or device is refused before a kernel reads memory.
// They read metadata only (sizes, dtypes, devices), never tensor data.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <initializer_list>
#include <string>

namespace iquest::checks {

// The Python name of a dtype ("torch.float32"), as the Python-side checks print it.
inline std::string dtype_name(at::ScalarType dtype) { return "torch." + std::string(c10::getDtypeNames(dtype).first); }

inline void check_dim(const at::Tensor& t, const char* name, int64_t dim, const char* layout) {
  TORCH_CHECK_VALUE(t.dim() == dim, name, ": expected a ", dim, "-D tensor ", layout, ", got shape ", t.sizes());
}

inline void check_shape(const at::Tensor& t, const char* name, at::IntArrayRef expected, const char* layout) {
  TORCH_CHECK_VALUE(t.sizes() == expected, name, ": expected shape ", layout, " = ", expected, ", got ", t.sizes());
}

inline void check_dtype(const at::Tensor& t, const char* name, std::initializer_list<at::ScalarType> allowed) {
  for (const at::ScalarType dtype : allowed) {
    if (t.scalar_type() == dtype) return;
  }
  std::string names;
  for (const at::ScalarType dtype : allowed) names += (names.empty() ? "" : " or ") + dtype_name(dtype);
  TORCH_CHECK_VALUE(false, name, ": expected dtype ", names, ", got ", dtype_name(t.scalar_type()));
}

inline void check_same_dtype(const at::Tensor& t, const char* name, const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK_VALUE(t.scalar_type() == ref.scalar_type(), name, ": expected dtype ", dtype_name(ref.scalar_type()),
                    " like ", ref_name, ", got ", dtype_name(t.scalar_type()));
}

inline void check_same_device(const at::Tensor& t, const char* name, const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK_VALUE(t.device() == ref.device(), name, ": expected device ", ref.device(), " like ", ref_name, ", got ",
                    t.device());
}

inline void check_device_type(const at::Tensor& t, const char* name, at::DeviceType type) {
  TORCH_CHECK_VALUE(t.device().type() == type, name, ": expected a ", at::Device(type), " tensor, got device ",
                    t.device());
}

inline void check_at_least(int64_t value, const char* name, int64_t least) {
  TORCH_CHECK_VALUE(value >= least, name, ": expected an int >= ", least, ", got ", value);
}

}  // namespace iquest::checks
