// NEON (AArch64 Advanced SIMD) float kernels, and the two aarch64 kernel tables.
//
// Dispatch on aarch64 (the x86 files *_avx2.cpp / *_avx512.cpp are not compiled there, and these
// *_neon*.cpp files are not compiled on x86; see native/CMakeLists.txt):
//  - "neon": baseline ARMv8.0 ASIMD, which every AArch64 CPU has. Float kernels here, quantized
//    dot products in kquant_neon.cpp on widening multiplies (SMULL/SMLAL + pairwise adds), KV-cache
//    reads in kv_kernels_neon.cpp. fp16 weights and caches convert with FCVTL (baseline on A64).
//  - "neon-dotprod": the same table with the quantized dot products on SDOT (vdotq_s32,
//    FEAT_DotProd, optional from ARMv8.2). kquant_neon_dotprod.cpp is the only file built with
//    -march=armv8.2-a+dotprod; it compiles the same kernel source (kquant_neon_impl.h) inside its
//    own anonymous namespace, so no dotprod-compiled function can be merged with a baseline one.
//  kernels() (kernels.cpp) picks neon-dotprod when getauxval(AT_HWCAP) has HWCAP_ASIMDDP (sysctl
//  hw.optional.arm.FEAT_DotProd on macOS), else neon; INTERNLM_CPU_ISA=neon or =generic picks a
//  lower table (and with generic the KV cache kernels go portable too). kernel_check verifies every
//  table the CPU runs (under qemu-aarch64: -cpu max has dotprod, -cpu cortex-a53 does not; see
//  test/engine/neon.test.mjs).
#include <arm_neon.h>

#include <cmath>

#include "cpu/kernels.h"
#include "util/half.h"

namespace ilm::cpu {
namespace {

struct LoadF32 {
  static float32x4_t vec(const uint8_t* w, int k) { return vld1q_f32(reinterpret_cast<const float*>(w) + k); }
  static float one(const uint8_t* w, int k) { return reinterpret_cast<const float*>(w)[k]; }
};
struct LoadF16 {
  static float32x4_t vec(const uint8_t* w, int k) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(w) + k)));
  }
  static float one(const uint8_t* w, int k) { return fp16_to_f32(reinterpret_cast<const uint16_t*>(w)[k]); }
};
struct LoadBF16 {
  static float32x4_t vec(const uint8_t* w, int k) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(w) + k), 16));
  }
  static float one(const uint8_t* w, int k) { return bf16_to_f32(reinterpret_cast<const uint16_t*>(w)[k]); }
};

// R weight rows x T activations, 8 columns per step (two accumulators each, so consecutive FMAs
// into one register are independent).
template <typename L, int R, int T>
inline void float_tile(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int n) {
  float32x4_t acc[R][T][2];
  const float* x[T];
  const uint8_t* w[R];
  for (int r = 0; r < R; r++) w[r] = W + size_t(r) * ldw;
  for (int t = 0; t < T; t++) x[t] = reinterpret_cast<const float*>(X + size_t(t) * ldx);
  for (int r = 0; r < R; r++)
    for (int t = 0; t < T; t++) acc[r][t][0] = acc[r][t][1] = vdupq_n_f32(0.0f);
  int k = 0;
  for (; k + 8 <= n; k += 8) {
    float32x4_t xv[T][2];
    for (int t = 0; t < T; t++) xv[t][0] = vld1q_f32(x[t] + k), xv[t][1] = vld1q_f32(x[t] + k + 4);
    for (int r = 0; r < R; r++) {
      const float32x4_t w0 = L::vec(w[r], k), w1 = L::vec(w[r], k + 4);
      for (int t = 0; t < T; t++) {
        acc[r][t][0] = vfmaq_f32(acc[r][t][0], w0, xv[t][0]);
        acc[r][t][1] = vfmaq_f32(acc[r][t][1], w1, xv[t][1]);
      }
    }
  }
  for (int r = 0; r < R; r++) {
    for (int t = 0; t < T; t++) {
      float sum = vaddvq_f32(vaddq_f32(acc[r][t][0], acc[r][t][1]));
      for (int kk = k; kk < n; kk++) sum += L::one(w[r], kk) * x[t][kk];
      Y[size_t(t) * ldy + r] = sum;
    }
  }
}

// 2 x 4 blocks with 1-row edges; single activations (decode) one weight row at a time.
template <typename L>
void gemm_float(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int nt, int n) {
  int t = 0;
  for (; t + 4 <= nt; t += 4) {
    int r = 0;
    for (; r + 2 <= nr; r += 2) float_tile<L, 2, 4>(W + r * ldw, ldw, X + t * ldx, ldx, Y + t * ldy + r, ldy, n);
    for (; r < nr; r++) float_tile<L, 1, 4>(W + r * ldw, ldw, X + t * ldx, ldx, Y + t * ldy + r, ldy, n);
  }
  for (; t < nt; t++)
    for (int r = 0; r < nr; r++) float_tile<L, 1, 1>(W + r * ldw, ldw, X + t * ldx, ldx, Y + t * ldy + r, ldy, n);
}

// 32 output columns in registers (8 vectors per head, up to 2 heads): each value vector is loaded
// once for all heads; the last columns go scalar.
template <int S>
inline void mix_block(const float* p, int ldp, const float* v, size_t ldv, int nv, float* out, int ldo, int d0) {
  float32x4_t acc[S][8];
  for (int s = 0; s < S; s++)
    for (int c = 0; c < 8; c++) acc[s][c] = vld1q_f32(out + size_t(s) * ldo + d0 + 4 * c);
  for (int j = 0; j < nv; j++) {
    float32x4_t vv[8];
    for (int c = 0; c < 8; c++) vv[c] = vld1q_f32(v + size_t(j) * ldv + d0 + 4 * c);
    for (int s = 0; s < S; s++) {
      const float w = p[size_t(s) * ldp + j];
      for (int c = 0; c < 8; c++) acc[s][c] = vfmaq_n_f32(acc[s][c], vv[c], w);
    }
  }
  for (int s = 0; s < S; s++)
    for (int c = 0; c < 8; c++) vst1q_f32(out + size_t(s) * ldo + d0 + 4 * c, acc[s][c]);
}

void mix_rows_f32(const float* p, int ldp, int ns, const float* v, size_t ldv, int nv, float* out, int ldo, int n) {
  int d0 = 0;
  for (; d0 + 32 <= n; d0 += 32) {
    int s = 0;
    for (; s + 2 <= ns; s += 2) mix_block<2>(p + size_t(s) * ldp, ldp, v, ldv, nv, out + size_t(s) * ldo, ldo, d0);
    for (; s < ns; s++) mix_block<1>(p + size_t(s) * ldp, ldp, v, ldv, nv, out + size_t(s) * ldo, ldo, d0);
  }
  for (int j = 0; j < nv && d0 < n; j++)
    for (int s = 0; s < ns; s++)
      for (int d = d0; d < n; d++) out[size_t(s) * ldo + d] += p[size_t(s) * ldp + j] * v[size_t(j) * ldv + d];
}

// exp(x): k = round(x / ln 2), r = x - k ln 2 in two parts (Cody-Waite), a degree-7 Taylor
// polynomial of exp(r) on |r| <= ln2 / 2, times 2^k built in the exponent bits (k in -126..127).
inline float32x4_t exp_ps(float32x4_t x) {
  x = vmaxq_f32(vminq_f32(x, vdupq_n_f32(88.0f)), vdupq_n_f32(-87.3f));
  const float32x4_t k = vrndnq_f32(vmulq_n_f32(x, 1.44269504f));
  float32x4_t r = vfmsq_f32(x, k, vdupq_n_f32(0.693145751953125f));
  r = vfmsq_f32(r, k, vdupq_n_f32(1.428606765330187e-06f));
  float32x4_t p = vdupq_n_f32(1.0f / 5040);
  for (float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f}) p = vfmaq_f32(vdupq_n_f32(c), p, r);
  const int32x4_t scale = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(k), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(scale));
}

float exp_sum_f32(float* p, int n, float max) {
  float32x4_t sum = vdupq_n_f32(0.0f);
  const float32x4_t m = vdupq_n_f32(max);
  int j = 0;
  for (; j + 4 <= n; j += 4) {
    const float32x4_t e = exp_ps(vsubq_f32(vld1q_f32(p + j), m));
    vst1q_f32(p + j, e);
    sum = vaddq_f32(sum, e);
  }
  float total = vaddvq_f32(sum);
  for (; j < n; j++) total += p[j] = std::exp(p[j] - max);
  return total;
}

void silu_mul_f32(float* gate, const float* up, size_t n) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t g = vld1q_f32(gate + i);
    const float32x4_t s = vdivq_f32(g, vaddq_f32(one, exp_ps(vnegq_f32(g))));
    vst1q_f32(gate + i, vmulq_f32(s, vld1q_f32(up + i)));
  }
  for (; i < n; i++) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

float dot_f32(const float* a, const float* b, int n) {
  float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
  int k = 0;
  for (; k + 16 <= n; k += 16) {
    s0 = vfmaq_f32(s0, vld1q_f32(a + k), vld1q_f32(b + k));
    s1 = vfmaq_f32(s1, vld1q_f32(a + k + 4), vld1q_f32(b + k + 4));
    s2 = vfmaq_f32(s2, vld1q_f32(a + k + 8), vld1q_f32(b + k + 8));
    s3 = vfmaq_f32(s3, vld1q_f32(a + k + 12), vld1q_f32(b + k + 12));
  }
  for (; k + 4 <= n; k += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + k), vld1q_f32(b + k));
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
  for (; k < n; k++) sum += a[k] * b[k];
  return sum;
}

void axpy_f32(float a, const float* x, float* y, int n) {
  int k = 0;
  for (; k + 4 <= n; k += 4) vst1q_f32(y + k, vfmaq_n_f32(vld1q_f32(y + k), vld1q_f32(x + k), a));
  for (; k < n; k++) y[k] += a * x[k];
}

void scale_f32(float a, float* y, int n) {
  int k = 0;
  for (; k + 4 <= n; k += 4) vst1q_f32(y + k, vmulq_n_f32(vld1q_f32(y + k), a));
  for (; k < n; k++) y[k] *= a;
}

KernelTable float_table(const char* isa) {
  KernelTable t;
  t.isa = isa;
  t.gemm_f32 = gemm_float<LoadF32>;
  t.gemm_f16 = gemm_float<LoadF16>;
  t.gemm_bf16 = gemm_float<LoadBF16>;
  t.mix_rows_f32 = mix_rows_f32;
  t.exp_sum_f32 = exp_sum_f32;
  t.silu_mul_f32 = silu_mul_f32;
  t.dot_f32 = dot_f32;
  t.axpy_f32 = axpy_f32;
  t.scale_f32 = scale_f32;
  return t;
}

}  // namespace

const KernelTable* neon_kernels() {
  static const KernelTable table = [] {
    KernelTable t = float_table("neon");
    add_quant_kernels_neon(t);
    return t;
  }();
  return &table;
}

const KernelTable* neon_dotprod_kernels() {
  static const KernelTable table = [] {
    KernelTable t = float_table("neon-dotprod");
    add_quant_kernels_neon_dotprod(t);
    return t;
  }();
  return &table;
}

}  // namespace ilm::cpu
