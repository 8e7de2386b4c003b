#include "model/tensor.h"

#include <cctype>

#include "util/error.h"

namespace ilm {
namespace {

struct TypeInfo {
  DType type;
  const char* name;
  int block;     // elements per block
  size_t bytes;  // bytes per block
  bool weights;  // may hold weights (Q8_K is an activation format only)
};

// Sizes as ggml defines the blocks (see quant/blocks.h, where each is static_assert'ed).
constexpr TypeInfo kTypes[] = {
    {DType::F32, "F32", 1, 4, true},        {DType::F16, "F16", 1, 2, true},
    {DType::BF16, "BF16", 1, 2, true},      {DType::Q4_0, "Q4_0", 32, 18, true},
    {DType::Q4_1, "Q4_1", 32, 20, true},    {DType::Q5_0, "Q5_0", 32, 22, true},
    {DType::Q5_1, "Q5_1", 32, 24, true},    {DType::Q8_0, "Q8_0", 32, 34, true},
    {DType::Q2_K, "Q2_K", 256, 84, true},   {DType::Q3_K, "Q3_K", 256, 110, true},
    {DType::Q4_K, "Q4_K", 256, 144, true},  {DType::Q5_K, "Q5_K", 256, 176, true},
    {DType::Q6_K, "Q6_K", 256, 210, true},  {DType::Q8_K, "Q8_K", 256, 292, false},
};

const TypeInfo* info(DType type) {
  for (const TypeInfo& t : kTypes)
    if (t.type == type) return &t;
  return nullptr;
}

}  // namespace

const char* dtype_name(DType type) {
  const TypeInfo* t = info(type);
  return t ? t->name : "unknown";
}

bool dtype_from_name(const std::string& name, DType* out) {
  std::string upper;
  for (char c : name) upper += char(std::toupper(static_cast<unsigned char>(c)));
  for (const TypeInfo& t : kTypes) {
    if (upper == t.name) {
      *out = t.type;
      return true;
    }
  }
  return false;
}

bool dtype_supported(DType type) {
  const TypeInfo* t = info(type);
  return t && t->weights;
}

int dtype_block_size(DType type) {
  const TypeInfo* t = info(type);
  return t ? t->block : 0;
}

size_t dtype_block_bytes(DType type) {
  const TypeInfo* t = info(type);
  return t ? t->bytes : 0;
}

size_t dtype_row_bytes(DType type, int64_t n) {
  const TypeInfo* t = info(type);
  if (!t) throw Error("unsupported tensor type id " + std::to_string(uint32_t(type)));
  if (n % t->block != 0)
    throw Error(std::string(t->name) + " row length " + std::to_string(n) + " is not a multiple of " +
                std::to_string(t->block));
  return size_t(n / t->block) * t->bytes;
}

}  // namespace ilm
