#pragma once
// Which GGUF tensor types (model/tensor.h) the CUDA kernels read as low-bit blocks (quant_blocks.h).
#include "cuda/quant_blocks.h"
#include "model/tensor.h"

namespace ilm::cuda {

// Indexed by BlockType.
inline constexpr DType kBlockDTypes[kBlockTypes] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K,
                                                    DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};
static_assert(int(BlockType::Q6_K) == kBlockTypes - 1, "kBlockDTypes follows BlockType's order");

inline DType dtype_of(BlockType t) { return kBlockDTypes[int(t)]; }

inline bool block_type_of(DType type, BlockType* out) {
  for (int i = 0; i < kBlockTypes; i++)
    if (kBlockDTypes[i] == type) {
      *out = BlockType(i);
      return true;
    }
  return false;
}

}  // namespace ilm::cuda
