#pragma once
// Kernels over one quantized KV row (engine/kv_type.h layout: [scale f32][zero f32][codes] for
// q8/q4, plain halves for f16), dequantizing in registers so attention never expands the cache.
#include <cstddef>
#include <cstdint>

#include "engine/kv_type.h"

namespace ilm::cpu {

// Longest row the kernels take (the cache checks head_dim against it).
constexpr int kMaxKVHeadDim = 1024;

// One row serves several query heads (GQA) per call, so each value is dequantized once for all.
struct KVKernels {
  // Quantizes n values into row.
  void (*store)(const float* x, uint8_t* row, int n);
  // out[h * out_stride] = q_h · dequant(row) for h < nq, q_h = q + h * q_stride.
  void (*dot)(const float* q, size_t q_stride, int nq, const uint8_t* row, int n, float* out, size_t out_stride);
  // out_h += a[h * a_stride] * dequant(row) for h < na, out_h = out + h * out_stride.
  void (*axpy)(const float* a, size_t a_stride, int na, const uint8_t* row, float* out, size_t out_stride, int n);
};

// The best kernels this CPU runs for the type (F32 is not served here: attention keeps its GEMM path).
const KVKernels& kv_kernels(KVType type);

// The portable, AVX2 and NEON tables (kv_kernels_generic.cpp / _avx2.cpp / _neon.cpp); avx2 and
// neon are null where not compiled in (call them only when cpu_has_avx2() / cpu_has_neon()).
const KVKernels* kv_kernels_generic(KVType type);
const KVKernels* kv_kernels_avx2(KVType type);
const KVKernels* kv_kernels_neon(KVType type);

}  // namespace ilm::cpu
