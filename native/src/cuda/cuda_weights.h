#pragma once
// The model's weights on one device, uploaded once in their file type (Q8_0 split into quants
// and scales, see kernels.h). Q, K and V become one matrix (rows Q | K | V, whatever the file's
// packing), and the FFN gate and up one [gate; up] matrix, so each is a single launch.
#include <vector>

#include "cuda/cuda_util.h"
#include "cuda/kernels.h"
#include "model/model.h"

namespace ilm::cuda {

struct DeviceMatrix {
  DeviceArray<uint8_t> data;
  DeviceArray<uint16_t> scales;
  DevMatrix view;
};

struct DeviceLayer {
  DeviceArray<float> attn_norm, ffn_norm;
  DeviceMatrix wqkv, wo, w13, w2;
};

struct DeviceWeights {
  DeviceMatrix tok_embd;
  DeviceArray<float> output_norm;
  DeviceMatrix output;
  std::vector<DeviceLayer> layers;
  size_t bytes = 0;  // total device bytes of the above
};

// Throws ilm::Error when the model has a shape or weight type the CUDA kernels do not handle.
void check_supported(const Model& model);

// Whether any matrix is of a low-bit block type (its prefill needs the fp16 slice buffer).
bool has_block_weights(const Model& model);

// Device bytes of the weights in their device layouts.
size_t weight_bytes(const Model& model);

DeviceWeights upload_weights(const Model& model, int device, cudaStream_t stream);

}  // namespace ilm::cuda
