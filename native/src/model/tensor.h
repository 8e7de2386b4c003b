#pragma once
// A read-only view of one weight tensor in its file's type. The bytes usually live in a
// memory-mapped file; the Model that owns the mapping outlives every Tensor view.
#include <cstddef>
#include <cstdint>
#include <string>

namespace ilm {

// Values are ggml's type ids, so GGUF type fields map directly.
enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q8_0 = 8,
  BF16 = 30,
};

// Q8_0: blocks of 32 weights, one fp16 scale then 32 int8 values (34 bytes).
constexpr int kQ8_0BlockSize = 32;
constexpr int kQ8_0BlockBytes = 34;

const char* dtype_name(DType type);
// True for the types this build can compute with.
bool dtype_supported(DType type);
// Bytes of one row of n elements; throws ilm::Error if n is not a whole number of blocks.
size_t dtype_row_bytes(DType type, int64_t n);

struct Tensor {
  std::string name;
  DType type = DType::F32;
  int n_dims = 0;
  int64_t ne[2] = {1, 1};  // ne[0] = elements per row (innermost), ne[1] = rows
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  bool empty() const { return data == nullptr; }
  int64_t cols() const { return ne[0]; }
  int64_t rows() const { return ne[1]; }
  size_t row_bytes() const { return dtype_row_bytes(type, ne[0]); }
  const uint8_t* row(int64_t r) const { return data + size_t(r) * row_bytes(); }
};

}  // namespace ilm
