// Portable float kernels: plain loops the compiler can vectorize for the baseline ISA
// (quantized weights: kquant_generic.cpp).

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

void mix_rows_f32(const float* p, int ldp, int ns, const float* v, size_t ldv, int nv, float* out, int ldo, int n) {
  for (int j = 0; j < nv; j++)
    for (int s = 0; s < ns; s++) {
      const float w = p[size_t(s) * ldp + j];
      for (int d = 0; d < n; d++) out[size_t(s) * ldo + d] += w * v[size_t(j) * ldv + d];
    }
}

float exp_sum_f32(float* p, int n, float max) {
  float sum = 0.0f;
  for (int j = 0; j < n; j++) sum += p[j] = std::exp(p[j] - max);
  return sum;
}

void silu_mul_f32(float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
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
  static const KernelTable table = [] {
    KernelTable t;
    t.isa = "generic";
    t.gemm_f32 = gemm_f32;
    t.gemm_f16 = gemm_f16;
    t.gemm_bf16 = gemm_bf16;
    t.mix_rows_f32 = mix_rows_f32;
    t.exp_sum_f32 = exp_sum_f32;
    t.silu_mul_f32 = silu_mul_f32;
    t.dot_f32 = dot_f32;
    t.axpy_f32 = axpy_f32;
    t.scale_f32 = scale_f32;
    add_quant_kernels_generic(t);
    return t;
  }();
  return table;
}

}  // namespace ilm::cpu
