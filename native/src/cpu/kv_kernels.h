#pragma once
// Kernels over one quantized KV row (engine/kv_type.h layout: [scale f32][zero f32][codes] for
// q8/q4, plain halves for f16), dequantizing in registers so attention never expands the cache.
#include <cstdint>

#include "engine/kv_type.h"

namespace ilm::cpu {

// Longest row the kernels take (the cache checks head_dim against it).
constexpr int kMaxKVHeadDim = 1024;

struct KVKernels {
  void (*store)(const float* x, uint8_t* row, int n);               // quantizes n values into row
  float (*dot)(const float* q, const uint8_t* row, int n);          // q · dequant(row)
  void (*axpy)(float a, const uint8_t* row, float* out, int n);     // out += a * dequant(row)
};

// The best kernels this CPU runs for the type (F32 is not served here: attention keeps its GEMM path).
const KVKernels& kv_kernels(KVType type);

// The portable and AVX2 tables (kv_kernels_generic.cpp / kv_kernels_avx2.cpp); avx2 may be null.
const KVKernels* kv_kernels_generic(KVType type);
const KVKernels* kv_kernels_avx2(KVType type);

}  // namespace ilm::cpu
