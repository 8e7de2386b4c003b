// Portable kernels: plain loops the compiler can vectorize for the baseline ISA.
#include <cmath>

#include "cpu/kernels.h"
#include "util/half.h"

namespace ilm::cpu {
namespace {

template <typename Load>
void gemm_generic(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy,
                  int nr, int nt, int n, Load load) {
  for (int r = 0; r < nr; r++) {
    const uint8_t* w = W + size_t(r) * ldw;
    for (int t = 0; t < nt; t++) {
      const float* x = reinterpret_cast<const float*>(X + size_t(t) * ldx);
      float sum = 0.0f;
      for (int k = 0; k < n; k++) sum += load(w, k) * x[k];
      Y[size_t(t) * ldy + r] = sum;
    }
  }
}

void gemm_f32(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int nt, int n) {
  gemm_generic(W, ldw, X, ldx, Y, ldy, nr, nt, n,
               [](const uint8_t* w, int k) { return reinterpret_cast<const float*>(w)[k]; });
}

void gemm_f16(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int nt, int n) {
  gemm_generic(W, ldw, X, ldx, Y, ldy, nr, nt, n,
               [](const uint8_t* w, int k) { return fp16_to_f32(reinterpret_cast<const uint16_t*>(w)[k]); });
}

void gemm_bf16(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int nt, int n) {
  gemm_generic(W, ldw, X, ldx, Y, ldy, nr, nt, n,
               [](const uint8_t* w, int k) { return bf16_to_f32(reinterpret_cast<const uint16_t*>(w)[k]); });
}

void gemm_q8_0(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int nt, int n) {
  const int nb = n / kQ8_0BlockSize;
  for (int r = 0; r < nr; r++) {
    const auto* w = reinterpret_cast<const BlockQ8_0*>(W + size_t(r) * ldw);
    for (int t = 0; t < nt; t++) {
      const auto* x = reinterpret_cast<const BlockQ8_0*>(X + size_t(t) * ldx);
      float sum = 0.0f;
      for (int b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int k = 0; k < kQ8_0BlockSize; k++) isum += int32_t(w[b].qs[k]) * int32_t(x[b].qs[k]);
        sum += fp16_to_f32(w[b].d) * fp16_to_f32(x[b].d) * float(isum);
      }
      Y[size_t(t) * ldy + r] = sum;
    }
  }
}

void quantize_q8_0(const float* x, BlockQ8_0* out, int n) {
  for (int b = 0; b < n / kQ8_0BlockSize; b++) {
    const float* v = x + b * kQ8_0BlockSize;
    float amax = 0.0f;
    for (int k = 0; k < kQ8_0BlockSize; k++) amax = std::fmax(amax, std::fabs(v[k]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = f32_to_fp16(d);
    for (int k = 0; k < kQ8_0BlockSize; k++) out[b].qs[k] = int8_t(std::nearbyint(v[k] * id));
  }
}

float dot_f32(const float* a, const float* b, int n) {
  float sum = 0.0f;
  for (int k = 0; k < n; k++) sum += a[k] * b[k];
  return sum;
}

void axpy_f32(float a, const float* x, float* y, int n) {
  for (int k = 0; k < n; k++) y[k] += a * x[k];
}

void scale_f32(float a, float* y, int n) {
  for (int k = 0; k < n; k++) y[k] *= a;
}

}  // namespace

const KernelTable& generic_kernels() {
  static const KernelTable table{"generic", gemm_f32, gemm_f16, gemm_bf16, gemm_q8_0,
                                 quantize_q8_0, dot_f32, axpy_f32, scale_f32};
  return table;
}

}  // namespace ilm::cpu
