// AVX2 KV-row kernels: 8 values dequantized per step into one register, then used by up to 8
// query heads before the next load; scalar tails.
#include <immintrin.h>

#include <algorithm>
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

// A row's values from i on: vec(i) gives 8 of them (i a multiple of 8), at(i) one.
struct F16Row {
  const uint8_t* p;
  explicit F16Row(const uint8_t* row) : p(row) {}
  __m256 vec(int i) const { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i))); }
  float at(int i) const {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    return fp16_to_f32(h);
  }
};

struct Q8Row {
  float s, z;
  const uint8_t* c;
  __m256 vs, vz;
  explicit Q8Row(const uint8_t* row) : c(row + 8) {
    std::memcpy(&s, row, 4), std::memcpy(&z, row + 4, 4);
    vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(z);
  }
  __m256 vec(int i) const {
    const __m256i codes = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + i)));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(codes), vs, vz);
  }
  float at(int i) const { return s * float(c[i]) + z; }
};

// q4: value 2i in the low nibble of byte i/2, value 2i+1 in the high nibble.
struct Q4Row {
  float s, z;
  const uint8_t* c;
  __m256 vs, vz;
  explicit Q4Row(const uint8_t* row) : c(row + 8) {
    std::memcpy(&s, row, 4), std::memcpy(&z, row + 4, 4);
    vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(z);
  }
  __m256 vec(int i) const {
    uint32_t b;
    std::memcpy(&b, c + i / 2, 4);
    // Byte k to lanes 2k and 2k+1, then the low nibble in even lanes and the high one in odd.
    const __m256i bytes = _mm256_cvtepu8_epi32(_mm_cvtsi32_si128(int(b)));
    const __m256i spread = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
    const __m256i nib = _mm256_and_si256(_mm256_srlv_epi32(spread, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4)),
                                         _mm256_set1_epi32(15));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(nib), vs, vz);
  }
  float at(int i) const { return s * float((c[i >> 1] >> ((i & 1) * 4)) & 15) + z; }
};

constexpr int kHeads = 8;  // query heads per pass: one accumulator register each

template <class Row>
void dot(const float* q, size_t q_stride, int nq, const uint8_t* row, int n, float* out, size_t out_stride) {
  const Row x(row);
  for (int h0 = 0; h0 < nq; h0 += kHeads) {
    const int hn = std::min(kHeads, nq - h0);
    const float* qh = q + h0 * q_stride;
    __m256 acc[kHeads];
    for (int h = 0; h < hn; h++) acc[h] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 v = x.vec(i);
      for (int h = 0; h < hn; h++) acc[h] = _mm256_fmadd_ps(_mm256_loadu_ps(qh + h * q_stride + i), v, acc[h]);
    }
    for (int h = 0; h < hn; h++) {
      float r = hsum(acc[h]);
      for (int k = i; k < n; k++) r += qh[h * q_stride + k] * x.at(k);
      out[(h0 + h) * out_stride] = r;
    }
  }
}

template <class Row>
void axpy(const float* a, size_t a_stride, int na, const uint8_t* row, float* out, size_t out_stride, int n) {
  const Row x(row);
  for (int h0 = 0; h0 < na; h0 += kHeads) {
    const int hn = std::min(kHeads, na - h0);
    __m256 va[kHeads];
    for (int h = 0; h < hn; h++) va[h] = _mm256_set1_ps(a[(h0 + h) * a_stride]);
    float* oh = out + h0 * out_stride;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 v = x.vec(i);
      for (int h = 0; h < hn; h++) {
        float* o = oh + h * out_stride + i;
        _mm256_storeu_ps(o, _mm256_fmadd_ps(va[h], v, _mm256_loadu_ps(o)));
      }
    }
    for (; i < n; i++) {
      const float xi = x.at(i);
      for (int h = 0; h < hn; h++) oh[h * out_stride + i] += a[(h0 + h) * a_stride] * xi;
    }
  }
}

// Stores are once per token and row: the portable quantizer serves both tables.
template <class Row>
KVKernels table(KVType type) {
  return {kv_kernels_generic(type)->store, dot<Row>, axpy<Row>};
}

}  // namespace

const KVKernels* kv_kernels_avx2(KVType type) {
  static const KVKernels f16 = table<F16Row>(KVType::F16);
  static const KVKernels q8 = table<Q8Row>(KVType::Q8);
  static const KVKernels q4 = table<Q4Row>(KVType::Q4);
  switch (type) {
    case KVType::F16: return &f16;
    case KVType::Q8: return &q8;
    case KVType::Q4: return &q4;
    default: return nullptr;
  }
}

}  // namespace ilm::cpu
