#pragma once
// A read-only view of one weight tensor in its file's type. The bytes usually live in a
// memory-mapped file; the Model that owns the mapping outlives every Tensor view.
#include <cstddef>
#include <cstdint>
#include <string>

namespace ilm {

// Values are ggml's type ids, so GGUF type fields map directly. Block layouts: quant/blocks.h.
enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,  // activations only (ggml never stores weights in it)
  BF16 = 30,
};

// Q8_0: blocks of 32 weights, one fp16 scale then 32 int8 values (34 bytes).
constexpr int kQ8_0BlockSize = 32;
constexpr int kQ8_0BlockBytes = 34;

const char* dtype_name(DType type);
// The type named NAME ("Q4_K", case-insensitive); false when there is none.
bool dtype_from_name(const std::string& name, DType* out);
// True for the types this build can compute with.
bool dtype_supported(DType type);
// Elements per block (1 for float types) and bytes per block; 0 for unknown ids.
int dtype_block_size(DType type);
size_t dtype_block_bytes(DType type);
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
