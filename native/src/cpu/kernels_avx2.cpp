// AVX2 + FMA + F16C float kernels. The GEMM tiles compute 2 weight rows x 4 activations at once so
// each converted weight vector feeds four FMAs (prefill), and degrade to 1 x 1 for decode.
// Quantized weights: kquant_avx2.cpp.
#include <immintrin.h>

#include <cmath>

#include "cpu/kernels.h"
#include "util/half.h"

namespace ilm::cpu {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

struct LoadF32 {
  static __m256 vec(const uint8_t* w, int k) { return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + k); }
  static float one(const uint8_t* w, int k) { return reinterpret_cast<const float*>(w)[k]; }
};
struct LoadF16 {
  static __m256 vec(const uint8_t* w, int k) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(w) + k)));
  }
  static float one(const uint8_t* w, int k) { return fp16_to_f32(reinterpret_cast<const uint16_t*>(w)[k]); }
};
struct LoadBF16 {
  static __m256 vec(const uint8_t* w, int k) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(w) + k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float one(const uint8_t* w, int k) { return bf16_to_f32(reinterpret_cast<const uint16_t*>(w)[k]); }
};

template <typename L, int R, int T>
inline void float_tile(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int n) {
  __m256 acc[R][T];
  const float* x[T];
  const uint8_t* w[R];
  for (int r = 0; r < R; r++) w[r] = W + size_t(r) * ldw;
  for (int t = 0; t < T; t++) x[t] = reinterpret_cast<const float*>(X + size_t(t) * ldx);
  for (int r = 0; r < R; r++)
    for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 xv[T];
    for (int t = 0; t < T; t++) xv[t] = _mm256_loadu_ps(x[t] + k);
    for (int r = 0; r < R; r++) {
      const __m256 wv = L::vec(w[r], k);
      for (int t = 0; t < T; t++) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; r++) {
    for (int t = 0; t < T; t++) {
      float sum = hsum(acc[r][t]);
      for (int kk = k; kk < n; kk++) sum += L::one(w[r], kk) * x[t][kk];
      Y[size_t(t) * ldy + r] = sum;
    }
  }
}

// Walks the nr x nt tile in 2 x 4 blocks with 1-row edges. Single activations (decode) go one
// weight row at a time: one sequential stream is what the hardware prefetcher follows best
// (measured 21 GB/s against 14 GB/s for two interleaved rows with software prefetch).
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

// 32 columns of the output at a time in registers (4 vectors per head, up to 2 heads), so each
// value vector is loaded once for all heads; the last columns go scalar.
template <int S>
inline void mix_block(const float* p, int ldp, const float* v, size_t ldv, int nv, float* out, int ldo, int d0) {
  __m256 acc[S][4];
  for (int s = 0; s < S; s++)
    for (int c = 0; c < 4; c++) acc[s][c] = _mm256_loadu_ps(out + size_t(s) * ldo + d0 + 8 * c);
  for (int j = 0; j < nv; j++) {
    __m256 vv[4];
    for (int c = 0; c < 4; c++) vv[c] = _mm256_loadu_ps(v + size_t(j) * ldv + d0 + 8 * c);
    for (int s = 0; s < S; s++) {
      const __m256 w = _mm256_set1_ps(p[size_t(s) * ldp + j]);
      for (int c = 0; c < 4; c++) acc[s][c] = _mm256_fmadd_ps(w, vv[c], acc[s][c]);
    }
  }
  for (int s = 0; s < S; s++)
    for (int c = 0; c < 4; c++) _mm256_storeu_ps(out + size_t(s) * ldo + d0 + 8 * c, acc[s][c]);
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

// exp(x) as in kernels_avx512.cpp, with 2^k built in the exponent bits (k in -126..127).
inline __m256 exp_ps(__m256 x) {
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.3f));
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.428606765330187e-06f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  for (float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f}) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}

float exp_sum_f32(float* p, int n, float max) {
  __m256 sum = _mm256_setzero_ps();
  const __m256 m = _mm256_set1_ps(max);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(p + j), m));
    _mm256_storeu_ps(p + j, e);
    sum = _mm256_add_ps(sum, e);
  }
  float total = hsum(sum);
  for (; j < n; j++) total += p[j] = std::exp(p[j] - max);
  return total;
}

void silu_mul_f32(float* gate, const float* up, size_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), g))));
    _mm256_storeu_ps(gate + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; i++) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

float dot_f32(const float* a, const float* b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int k = 0;
  for (; k + 16 <= n; k += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), s1);
  }
  for (; k + 8 <= n; k += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
  float sum = hsum(_mm256_add_ps(s0, s1));
  for (; k < n; k++) sum += a[k] * b[k];
  return sum;
}

void axpy_f32(float a, const float* x, float* y, int n) {
  const __m256 av = _mm256_set1_ps(a);
  int k = 0;
  for (; k + 8 <= n; k += 8) _mm256_storeu_ps(y + k, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + k), _mm256_loadu_ps(y + k)));
  for (; k < n; k++) y[k] += a * x[k];
}

void scale_f32(float a, float* y, int n) {
  const __m256 av = _mm256_set1_ps(a);
  int k = 0;
  for (; k + 8 <= n; k += 8) _mm256_storeu_ps(y + k, _mm256_mul_ps(av, _mm256_loadu_ps(y + k)));
  for (; k < n; k++) y[k] *= a;
}

}  // namespace

const KernelTable* avx2_kernels() {
  static const KernelTable table = [] {
    KernelTable t;
    t.isa = "avx2";
    t.gemm_f32 = gemm_float<LoadF32>;
    t.gemm_f16 = gemm_float<LoadF16>;
    t.gemm_bf16 = gemm_float<LoadBF16>;
    t.mix_rows_f32 = mix_rows_f32;
    t.exp_sum_f32 = exp_sum_f32;
    t.silu_mul_f32 = silu_mul_f32;
    t.dot_f32 = dot_f32;
    t.axpy_f32 = axpy_f32;
    t.scale_f32 = scale_f32;
    add_quant_kernels_avx2(t);
    return t;
  }();
  return &table;
}

}  // namespace ilm::cpu
