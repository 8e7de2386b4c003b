#pragma once
// CPU compute kernels, one implementation per instruction set, chosen once at run time.
// Weights stay in their file type; activations are f32 (or Q8_0 blocks for Q8_0 weights,
// which lets the dot products run on integer units).
#include <cstddef>
#include <cstdint>

#include "model/tensor.h"

namespace ilm::cpu {

struct BlockQ8_0 {
  uint16_t d;  // fp16 scale
  int8_t qs[kQ8_0BlockSize];
};
static_assert(sizeof(BlockQ8_0) == kQ8_0BlockBytes, "Q8_0 block must be 34 bytes");

// Y[t * ldy + r] = dot(row r of W, activation t), for r < nr, t < nt; rows have n elements.
// W points at row 0 with row stride ldw bytes; X at activation 0 with stride ldx bytes.
using GemmTileFn = void (*)(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y,
                            size_t ldy, int nr, int nt, int n);

struct KernelTable {
  const char* isa;
  GemmTileFn gemm_f32;
  GemmTileFn gemm_f16;
  GemmTileFn gemm_bf16;
  GemmTileFn gemm_q8_0;  // X holds Q8_0 blocks
  void (*quantize_q8_0)(const float* x, BlockQ8_0* out, int n);
  float (*dot_f32)(const float* a, const float* b, int n);
  void (*axpy_f32)(float a, const float* x, float* y, int n);  // y += a * x
  void (*scale_f32)(float a, float* y, int n);                 // y *= a
};

// How activations are handed to a weight type's GEMM: f32 rows, or quantized to 8-bit blocks
// so the inner products run on integer units (as llama.cpp does for quantized weights).
enum class ActFormat { F32, Q8_0 };

struct WeightKernel {
  GemmTileFn gemm = nullptr;  // null: the type has no CPU kernel
  ActFormat act = ActFormat::F32;
};

WeightKernel weight_kernel(const KernelTable& table, DType type);

// Bytes of one activation row of n elements in the given format.
size_t act_row_bytes(ActFormat format, int n);

const KernelTable& kernels();
const KernelTable& generic_kernels();
const KernelTable* avx2_kernels();    // null when not compiled in
const KernelTable* avx512_kernels();  // null when not compiled in

// Row r of a weight tensor as f32 (embedding lookup).
void dequantize_row(const Tensor& t, int64_t r, float* out);

}  // namespace ilm::cpu
