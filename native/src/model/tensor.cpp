#include "model/tensor.h"

#include "util/error.h"

namespace ilm {

const char* dtype_name(DType type) {
  switch (type) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::Q8_0: return "Q8_0";
    case DType::BF16: return "BF16";
  }
  return "unknown";
}

bool dtype_supported(DType type) {
  switch (type) {
    case DType::F32:
    case DType::F16:
    case DType::Q8_0:
    case DType::BF16:
      return true;
  }
  return false;
}

size_t dtype_row_bytes(DType type, int64_t n) {
  switch (type) {
    case DType::F32: return size_t(n) * 4;
    case DType::F16:
    case DType::BF16: return size_t(n) * 2;
    case DType::Q8_0:
      if (n % kQ8_0BlockSize != 0)
        throw Error("Q8_0 row length " + std::to_string(n) + " is not a multiple of 32");
      return size_t(n / kQ8_0BlockSize) * kQ8_0BlockBytes;
  }
  throw Error("unsupported tensor type id " + std::to_string(uint32_t(type)));
}

}  // namespace ilm
