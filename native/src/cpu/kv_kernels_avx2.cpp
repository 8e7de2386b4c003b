// AVX2 KV-row kernels: 8 values per step, codes widened to f32 in registers; scalar tails.
#include <immintrin.h>

#include <cstring>

#include "cpu/kv_kernels.h"
#include "util/half.h"

namespace ilm::cpu {
namespace {

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void header(const uint8_t* row, float* scale, float* zero) {
  std::memcpy(scale, row, 4);
  std::memcpy(zero, row + 4, 4);
}

inline __m256 load_f16(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load_q8(const uint8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
// 8 nibbles from 4 bytes, in value order (low nibble first).
inline __m256 load_q4(const uint8_t* p) {
  uint32_t b;
  std::memcpy(&b, p, 4);
  const __m256i bytes = _mm256_cvtepu8_epi32(_mm_cvtsi32_si128(int(b)));  // byte k in lane k (k<4)
  const __m256i idx = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  const __m256i spread = _mm256_permutevar8x32_epi32(bytes, idx);
  const __m256i shifts = _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4);
  return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(spread, shifts), _mm256_set1_epi32(15)));
}

float dot_f16(const float* q, const uint8_t* row, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_f16(row + 2 * i), acc);
  float s = hsum(acc);
  const auto* h = reinterpret_cast<const uint16_t*>(row);
  for (; i < n; i++) s += q[i] * fp16_to_f32(h[i]);
  return s;
}
void axpy_f16(float a, const uint8_t* row, float* out, int n) {
  const __m256 va = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(va, load_f16(row + 2 * i), _mm256_loadu_ps(out + i)));
  const auto* h = reinterpret_cast<const uint16_t*>(row);
  for (; i < n; i++) out[i] += a * fp16_to_f32(h[i]);
}

float dot_q8(const float* q, const uint8_t* row, int n) {
  float s, z;
  header(row, &s, &z);
  const uint8_t* c = row + 8;
  __m256 qc = _mm256_setzero_ps(), qs = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 vq = _mm256_loadu_ps(q + i);
    qc = _mm256_fmadd_ps(vq, load_q8(c + i), qc);
    qs = _mm256_add_ps(qs, vq);
  }
  float sc = hsum(qc), ss = hsum(qs);
  for (; i < n; i++) sc += q[i] * float(c[i]), ss += q[i];
  return s * sc + z * ss;
}
void axpy_q8(float a, const uint8_t* row, float* out, int n) {
  float s, z;
  header(row, &s, &z);
  const uint8_t* c = row + 8;
  const __m256 as = _mm256_set1_ps(a * s), az = _mm256_set1_ps(a * z);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_fmadd_ps(as, load_q8(c + i), az), _mm256_loadu_ps(out + i)));
  for (; i < n; i++) out[i] += a * s * float(c[i]) + a * z;
}

inline int nibble(const uint8_t* c, int i) { return (c[i >> 1] >> ((i & 1) * 4)) & 15; }
float dot_q4(const float* q, const uint8_t* row, int n) {
  float s, z;
  header(row, &s, &z);
  const uint8_t* c = row + 8;
  __m256 qc = _mm256_setzero_ps(), qs = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 vq = _mm256_loadu_ps(q + i);
    qc = _mm256_fmadd_ps(vq, load_q4(c + i / 2), qc);
    qs = _mm256_add_ps(qs, vq);
  }
  float sc = hsum(qc), ss = hsum(qs);
  for (; i < n; i++) sc += q[i] * float(nibble(c, i)), ss += q[i];
  return s * sc + z * ss;
}
void axpy_q4(float a, const uint8_t* row, float* out, int n) {
  float s, z;
  header(row, &s, &z);
  const uint8_t* c = row + 8;
  const __m256 as = _mm256_set1_ps(a * s), az = _mm256_set1_ps(a * z);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_fmadd_ps(as, load_q4(c + i / 2), az), _mm256_loadu_ps(out + i)));
  for (; i < n; i++) out[i] += a * s * float(nibble(c, i)) + a * z;
}

// Stores are once per token and row: the portable quantizer serves both tables.
KVKernels with_store(KVType type, float (*dot)(const float*, const uint8_t*, int),
                     void (*axpy)(float, const uint8_t*, float*, int)) {
  return {kv_kernels_generic(type)->store, dot, axpy};
}

}  // namespace

const KVKernels* kv_kernels_avx2(KVType type) {
  static const KVKernels f16 = with_store(KVType::F16, dot_f16, axpy_f16);
  static const KVKernels q8 = with_store(KVType::Q8, dot_q8, axpy_q8);
  static const KVKernels q4 = with_store(KVType::Q4, dot_q4, axpy_q4);
  switch (type) {
    case KVType::F16: return &f16;
    case KVType::Q8: return &q8;
    case KVType::Q4: return &q4;
    default: return nullptr;
  }
}

}  // namespace ilm::cpu
