#pragma once
// Reference (portable, exact) conversions between f32 and every weight type: ggml's
// dequantization, and ggml's reference quantizers (the scale searches llama.cpp's quantize uses
// without an importance matrix). Kernels and files are checked against these.
#include <cstdint>

#include "model/tensor.h"
#include "quant/blocks.h"

namespace ilm::quant {

// n values of a row of TYPE (n a multiple of its block size) to f32.
void dequantize_row(DType type, const void* src, float* dst, int64_t n);
// n f32 values to TYPE's bytes (dtype_row_bytes(type, n) of them).
void quantize_row(DType type, const float* src, void* dst, int64_t n);
// Activations for K-quant dot products, as ggml's quantize_row_q8_K_ref.
void quantize_row_q8_k(const float* src, BlockQ8_K* dst, int64_t n);

}  // namespace ilm::quant
