#pragma once
// The element type of a session's KV cache. Quantized types keep one f32 scale and zero point per
// (position, KV head) row of head_dim values: x ≈ scale * code + zero (asymmetric, so the range
// of one row, not its magnitude, sets the step).
#include <cstddef>
#include <string>

namespace ilm {

enum class KVType { F32, F16, Q8, Q4 };

// "f32" | "f16" | "q8" | "q4"; throws ilm::Error for anything else.
KVType parse_kv_type(const std::string& name);
const char* kv_type_name(KVType type);

// Bytes one row of head_dim values takes in the cache, scale and zero point included.
inline size_t kv_row_bytes(KVType type, int head_dim) {
  switch (type) {
    case KVType::F32: return size_t(head_dim) * 4;
    case KVType::F16: return size_t(head_dim) * 2;
    case KVType::Q8: return 8 + size_t(head_dim);
    case KVType::Q4: return 8 + (size_t(head_dim) + 1) / 2;
  }
  return 0;
}

}  // namespace ilm
