// AVX2 kernels for quantized weights (the same canonical forms as kquant.h, on 32-byte vectors):
// K-quant super-blocks are unpacked once per row and group of up to 4 activations, then
// vpmaddubsw + vpmaddwd with the integer sub-block scales; 32-blocks multiply the unsigned
// activations with their signed levels (vpmaddubsw + vpmaddwd), the +128 removed per row.
#include <immintrin.h>

#include <cstring>

#include "cpu/kernels.h"

namespace ilm::cpu {
namespace {

using namespace quant;

// Decode streams every weight once per token, one row after the other. A software prefetch 1 KB
// ahead measured the same as none on Zen 5 (the hardware prefetcher follows one stream); it is kept
// for cores whose prefetchers are weaker.
constexpr int kPrefetchBytes = 1024;

inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m128i load128(const void* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// Bit `from` of every byte of v moved to bit `to` (others cleared).
inline __m256i move_bit(__m256i v, int from, int to, int width = 1) {
  const __m256i shifted = to >= from ? _mm256_slli_epi16(v, to - from) : _mm256_srli_epi16(v, from - to);
  return _mm256_and_si256(shifted, _mm256_set1_epi8(char(((1 << width) - 1) << to)));
}

// ---------------------------------------------------------------- K-quants

// u[c]: levels of elements 32c..32c+31; sc[c]: the scale of each int16 pair product (lanes 0-7
// sub-block 2c, lanes 8-15 sub-block 2c + 1); mins: the 16 sub-block minimums times dmin.
struct KRegs {
  __m256i u[8];
  __m256i sc[8];
  __m256 mins[2];
  float d;
};

inline void set_mins(__m256i mn16, float dmin, KRegs& k) {
  const __m256 dm = _mm256_set1_ps(dmin);
  k.mins[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(mn16))), dm);
  k.mins[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(mn16, 1))), dm);
}

// pshufb masks picking int16 word j (low half) and j + 1 (high half) of a broadcast 128-bit lane.
struct WordPairMasks {
  alignas(32) uint8_t v[4][32];
  constexpr WordPairMasks() : v() {
    for (int p = 0; p < 4; p++)
      for (int b = 0; b < 32; b++) v[p][b] = uint8_t(2 * (2 * p + b / 16) + b % 2);
  }
};
constexpr WordPairMasks kWordPairs{};

inline void expand_scales16(__m256i s16, KRegs& k) {
  const __m256i lo = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(s16));
  const __m256i hi = _mm256_broadcastsi128_si256(_mm256_extracti128_si256(s16, 1));
  for (int c = 0; c < 8; c++) k.sc[c] = _mm256_shuffle_epi8(c < 4 ? lo : hi, load256(kWordPairs.v[c % 4]));
}

inline __m256i two_bit_levels(const uint8_t* qs, int c) {
  return _mm256_and_si256(_mm256_srli_epi16(load256(qs + 32 * (c / 4)), 2 * (c % 4)), _mm256_set1_epi8(3));
}

inline void unpack_q2_k(const uint8_t* p, KRegs& k) {
  const auto* b = reinterpret_cast<const BlockQ2_K*>(p);
  for (int c = 0; c < 8; c++) k.u[c] = two_bit_levels(b->qs, c);
  const __m128i s = load128(b->scales);
  expand_scales16(_mm256_cvtepu8_epi16(_mm_and_si128(s, _mm_set1_epi8(0xF))), k);
  set_mins(_mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(0xF))), half_to_float(b->dmin), k);
  k.d = half_to_float(b->d);
}

// Q3_K's 16 six-bit scales minus 32 (see kquant_avx512.cpp).
inline __m128i q3_k_scales(const uint8_t* packed) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t lo = 0x0f0f0f0f, hi = 0x03030303;
  const uint32_t s[4] = {(w[0] & lo) | ((w[2] & hi) << 4), (w[1] & lo) | (((w[2] >> 2) & hi) << 4),
                         ((w[0] >> 4) & lo) | (((w[2] >> 4) & hi) << 4), ((w[1] >> 4) & lo) | (((w[2] >> 6) & hi) << 4)};
  return _mm_sub_epi8(load128(s), _mm_set1_epi8(32));
}

inline void unpack_q3_k(const uint8_t* p, KRegs& k) {
  const auto* b = reinterpret_cast<const BlockQ3_K*>(p);
  const __m256i hm = load256(b->hmask);
  for (int c = 0; c < 8; c++) k.u[c] = _mm256_or_si256(two_bit_levels(b->qs, c), move_bit(hm, c, 2));
  const __m256i s16 = _mm256_cvtepi8_epi16(q3_k_scales(b->scales));
  expand_scales16(s16, k);
  k.d = half_to_float(b->d);
  set_mins(_mm256_slli_epi16(s16, 2), k.d, k);
}

// Q4_K/Q5_K: 6-bit scales (bytes 0..7) and mins (8..15) duplicated per 16-element half.
inline void scales_k4(const uint8_t* packed, float dmin, KRegs& k) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t m6 = 0x3f3f3f3f, lo = 0x0f0f0f0f, hi = 0x03030303;
  const uint32_t s[4] = {w[0] & m6, (w[2] & lo) | (((w[0] >> 6) & hi) << 4), w[1] & m6,
                         ((w[2] >> 4) & lo) | (((w[1] >> 6) & hi) << 4)};
  const __m128i sm = load128(s);
  expand_scales16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(sm, sm)), k);
  set_mins(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm)), dmin, k);
}

inline void nibbles_k4(const uint8_t* qs, KRegs& k) {
  const __m256i m4 = _mm256_set1_epi8(0xF);
  for (int j = 0; j < 4; j++) {
    const __m256i a = load256(qs + 32 * j);
    k.u[2 * j] = _mm256_and_si256(a, m4);
    k.u[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(a, 4), m4);
  }
}

inline void unpack_q4_k(const uint8_t* p, KRegs& k) {
  const auto* b = reinterpret_cast<const BlockQ4_K*>(p);
  nibbles_k4(b->qs, k);
  scales_k4(b->scales, half_to_float(b->dmin), k);
  k.d = half_to_float(b->d);
}

inline void unpack_q5_k(const uint8_t* p, KRegs& k) {
  const auto* b = reinterpret_cast<const BlockQ5_K*>(p);
  nibbles_k4(b->qs, k);
  const __m256i qh = load256(b->qh);
  for (int c = 0; c < 8; c++) k.u[c] = _mm256_or_si256(k.u[c], move_bit(qh, c, 4));
  scales_k4(b->scales, half_to_float(b->dmin), k);
  k.d = half_to_float(b->d);
}

inline void unpack_q6_k(const uint8_t* p, KRegs& k) {
  const auto* b = reinterpret_cast<const BlockQ6_K*>(p);
  const __m256i m4 = _mm256_set1_epi8(0xF);
  for (int h = 0; h < 2; h++) {
    const __m256i a0 = load256(b->ql + 64 * h), a1 = load256(b->ql + 64 * h + 32);
    const __m256i qh = load256(b->qh + 32 * h);
    k.u[4 * h] = _mm256_or_si256(_mm256_and_si256(a0, m4), move_bit(qh, 0, 4, 2));
    k.u[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(a1, m4), move_bit(qh, 2, 4, 2));
    k.u[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a0, 4), m4), move_bit(qh, 4, 4, 2));
    k.u[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a1, 4), m4), move_bit(qh, 6, 4, 2));
  }
  const __m256i s16 = _mm256_cvtepi8_epi16(load128(b->scales));
  expand_scales16(s16, k);
  k.d = half_to_float(b->d);
  set_mins(_mm256_slli_epi16(s16, 5), k.d, k);
}

template <int T, void (*Unpack)(const uint8_t*, KRegs&)>
inline void k_row(const uint8_t* w, size_t block_bytes, const uint8_t* X, size_t ldx, float* y, size_t ldy, int n) {
  const int nb = n / 256;
  const uint8_t* x[T];
  __m256 acc[T];
  for (int t = 0; t < T; t++) x[t] = X + size_t(t) * ldx, acc[t] = _mm256_setzero_ps();
  for (int i = 0; i < nb; i++) {
    const uint8_t* blk = w + size_t(i) * block_bytes;
    _mm_prefetch(reinterpret_cast<const char*>(blk) + kPrefetchBytes, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk) + kPrefetchBytes + 64, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk) + kPrefetchBytes + 128, _MM_HINT_T0);
    KRegs k;
    Unpack(blk, k);
    __m256i dot[T];
    for (int c = 0; c < 8; c++) {
      for (int t = 0; t < T; t++) {
        const __m256i p = _mm256_maddubs_epi16(k.u[c], load256(x[t] + 32 * c));
        const __m256i s = _mm256_madd_epi16(p, k.sc[c]);
        dot[t] = c == 0 ? s : _mm256_add_epi32(dot[t], s);
      }
    }
    const __m256 d = _mm256_set1_ps(k.d);
    for (int t = 0; t < T; t++) {
      const ActQ8K a{x[t]};
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[t]), _mm256_mul_ps(d, _mm256_loadu_ps(a.d16())), acc[t]);
      acc[t] = _mm256_fnmadd_ps(k.mins[0], _mm256_loadu_ps(a.bsums()), acc[t]);
      acc[t] = _mm256_fnmadd_ps(k.mins[1], _mm256_loadu_ps(a.bsums() + 8), acc[t]);
      x[t] += kActQ8KBytes;
    }
  }
  for (int t = 0; t < T; t++) y[size_t(t) * ldy] = hsum(acc[t]);
}

template <int T, void (*Unpack)(const uint8_t*, KRegs&)>
inline void k_rows(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int n,
                   size_t block_bytes) {
  for (int r = 0; r < nr; r++) k_row<T, Unpack>(W + size_t(r) * ldw, block_bytes, X, ldx, Y + r, ldy, n);
}

template <void (*Unpack)(const uint8_t*, KRegs&), size_t kBlockBytes>
void gemm_k(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int nt, int n) {
  int t = 0;
  for (; t + 4 <= nt; t += 4) k_rows<4, Unpack>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n, kBlockBytes);
  if (nt - t >= 2) k_rows<2, Unpack>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n, kBlockBytes), t += 2;
  if (nt - t >= 1) k_rows<1, Unpack>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n, kBlockBytes);
}

// ---------------------------------------------------------------- 32-element blocks

// One block: v = signed levels, start = -128 * sum(v) per 4-level lane group (removes the +128 of
// the unsigned activations), d and m (Q4_1/Q5_1) scalars.
struct LRegs {
  __m256i v, start;
  float d, m;
};

inline __m256i nibbles(const uint8_t* qs) {
  const __m128i q = load128(qs);
  const __m256i both = _mm256_insertf128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0xF));
}

// 0x10 in every byte j whose bit j of the 32-bit qh is set.
inline __m256i fifth_bits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)),
                                             _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                               0x0101010101010101, 0x0000000000000000));
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201);
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
}

inline __m256i ones16() { return _mm256_set1_epi16(1); }

inline void set_levels(__m256i u, int offset, LRegs& l) {
  l.v = _mm256_sub_epi8(u, _mm256_set1_epi8(char(offset)));
  const __m256i sum = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(char(0x80)), l.v), ones16());
  l.start = _mm256_sub_epi32(_mm256_setzero_si256(), sum);
}

inline void unpack_q4_0(const uint8_t* w, int i, LRegs& l) {
  const auto& b = reinterpret_cast<const BlockQ4_0*>(w)[i];
  set_levels(nibbles(b.qs), 8, l);
  l.d = half_to_float(b.d);
}
inline void unpack_q4_1(const uint8_t* w, int i, LRegs& l) {
  const auto& b = reinterpret_cast<const BlockQ4_1*>(w)[i];
  set_levels(nibbles(b.qs), 0, l);
  l.d = half_to_float(b.d);
  l.m = half_to_float(b.m);
}
inline void unpack_q5_0(const uint8_t* w, int i, LRegs& l) {
  const auto& b = reinterpret_cast<const BlockQ5_0*>(w)[i];
  set_levels(_mm256_or_si256(nibbles(b.qs), fifth_bits(b.qh)), 16, l);
  l.d = half_to_float(b.d);
}
inline void unpack_q5_1(const uint8_t* w, int i, LRegs& l) {
  const auto& b = reinterpret_cast<const BlockQ5_1*>(w)[i];
  set_levels(_mm256_or_si256(nibbles(b.qs), fifth_bits(b.qh)), 0, l);
  l.d = half_to_float(b.d);
  l.m = half_to_float(b.m);
}
// Q8_0 levels span -127..127: 255 x 127 pairs would saturate vpmaddubsw, so they multiply the
// signed activations through the sign trick instead (start stays zero).
inline void unpack_q8_0(const uint8_t* w, int i, LRegs& l) {
  const auto& b = reinterpret_cast<const BlockQ8_0*>(w)[i];
  l.v = load256(b.qs);
  l.start = _mm256_setzero_si256();
  l.d = half_to_float(b.d);
}

// kMin: Q4_1/Q5_1 minimums; kSigned: Q8_0 (see unpack_q8_0).
template <int T, void (*Unpack)(const uint8_t*, int, LRegs&), bool kMin, bool kSigned, size_t kBlockBytes>
inline void legacy_row(const uint8_t* w, const uint8_t* X, size_t ldx, float* y, size_t ldy, int n) {
  const int nb = n / 32;
  const uint8_t* x[T];
  __m256 acc[T];
  for (int t = 0; t < T; t++) x[t] = X + size_t(t) * ldx, acc[t] = _mm256_setzero_ps();
  for (int i = 0; i < nb; i++) {
    _mm_prefetch(reinterpret_cast<const char*>(w + i * kBlockBytes) + kPrefetchBytes, _MM_HINT_T0);
    LRegs l;
    Unpack(w, i, l);
    const __m256 d = _mm256_set1_ps(l.d);
    const __m256i magnitude = kSigned ? _mm256_sign_epi8(l.v, l.v) : l.v;
    const int half = i % 2;
    for (int t = 0; t < T; t++) {
      const ActPair a{x[t]};
      __m256i p;
      if (kSigned) {
        const __m256i xq = _mm256_xor_si256(load256(a.xu(half)), _mm256_set1_epi8(char(0x80)));
        p = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(xq, l.v));
      } else {
        p = _mm256_maddubs_epi16(load256(a.xu(half)), l.v);
      }
      const __m256i dot = _mm256_add_epi32(_mm256_madd_epi16(p, ones16()), l.start);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(d, _mm256_loadu_ps(a.d(half))), acc[t]);
      if constexpr (kMin) acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(l.m), _mm256_loadu_ps(a.s(half)), acc[t]);
      if (half) x[t] += kActPairBytes;
    }
  }
  for (int t = 0; t < T; t++) y[size_t(t) * ldy] = hsum(acc[t]);
}

template <int T, void (*Unpack)(const uint8_t*, int, LRegs&), bool kMin, bool kSigned, size_t kBlockBytes>
inline void legacy_rows(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int n) {
  for (int r = 0; r < nr; r++) legacy_row<T, Unpack, kMin, kSigned, kBlockBytes>(W + size_t(r) * ldw, X, ldx, Y + r, ldy, n);
}

template <void (*Unpack)(const uint8_t*, int, LRegs&), bool kMin, bool kSigned, size_t kBlockBytes>
void gemm_legacy(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int nt, int n) {
  int t = 0;
  for (; t + 4 <= nt; t += 4)
    legacy_rows<4, Unpack, kMin, kSigned, kBlockBytes>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n);
  if (nt - t >= 2)
    legacy_rows<2, Unpack, kMin, kSigned, kBlockBytes>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n), t += 2;
  if (nt - t >= 1)
    legacy_rows<1, Unpack, kMin, kSigned, kBlockBytes>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n);
}

// ---------------------------------------------------------------- activation quantizers

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

// 32 int32 lanes (4 vectors) to 32 int8 in order.
inline __m256i pack_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
  return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

void quantize_q8_0(const float* x, uint8_t* row, int n) {
  const int nb = n / 32;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int i = 0; i < nb; i++) {
    const ActPair a = act_pair(row, i);
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < 4; j++) {
      v[j] = _mm256_loadu_ps(x + 32 * i + 8 * j);
      m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[j]));
    }
    const float amax = hmax(m);
    const float d = _cvtsh_ss(_cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT));
    const __m256 id = _mm256_set1_ps(amax != 0 ? 127.0f / amax : 0.0f);
    __m256i qi[4];
    for (int j = 0; j < 4; j++) qi[j] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[j], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256i q = pack_i8(qi[0], qi[1], qi[2], qi[3]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(const_cast<uint8_t*>(a.xu(i % 2))), _mm256_xor_si256(q, _mm256_set1_epi8(char(0x80))));
    const int sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3])));
    const float s = _cvtsh_ss(_cvtss_sh(amax / 127.0f * float(sum), _MM_FROUND_TO_NEAREST_INT)) * 0.125f;
    _mm256_storeu_ps(const_cast<float*>(a.d(i % 2)), _mm256_set1_ps(d));
    _mm256_storeu_ps(const_cast<float*>(a.s(i % 2)), _mm256_set1_ps(s));
  }
  if (nb % 2) {  // the zero block pairing an odd last one
    const ActPair a = act_pair(row, nb);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(const_cast<uint8_t*>(a.xu(1))), _mm256_set1_epi8(char(0x80)));
    _mm256_storeu_ps(const_cast<float*>(a.d(1)), _mm256_setzero_ps());
    _mm256_storeu_ps(const_cast<float*>(a.s(1)), _mm256_setzero_ps());
  }
}

void quantize_q8_k(const float* x, uint8_t* row, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int i = 0; i < n / 256; i++) {
    const ActQ8K a = act_q8_k(row, i);
    uint8_t* out = const_cast<uint8_t*>(a.p);
    const float* v = x + 256 * i;
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < 256; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(v + j)));
    const float amax = hmax(m);
    // The signed value of largest magnitude: the first element whose |x| is amax.
    float max = 0;
    for (int j = 0; j < 256; j += 8) {
      const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(v + j));
      const int hit = _mm256_movemask_ps(_mm256_cmp_ps(a, _mm256_set1_ps(amax), _CMP_EQ_OQ));
      if (hit) {
        max = v[j + __builtin_ctz(hit)];
        break;
      }
    }
    const float iscale = amax != 0 ? -127.0f / max : 0.0f;
    const float d = amax != 0 ? 1 / iscale : 0.0f;
    const __m256 is = _mm256_set1_ps(iscale);
    auto* d16 = const_cast<float*>(a.d16());
    auto* bsums = const_cast<float*>(a.bsums());
    for (int j = 0; j < 256; j += 32) {
      __m256i qi[4];
      for (int k = 0; k < 4; k++)
        qi[k] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + j + 8 * k), is)), _mm256_set1_epi32(127));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), pack_i8(qi[0], qi[1], qi[2], qi[3]));
      bsums[j / 16] = d * float(hsum_i32(_mm256_add_epi32(qi[0], qi[1])));
      bsums[j / 16 + 1] = d * float(hsum_i32(_mm256_add_epi32(qi[2], qi[3])));
    }
    for (int j = 0; j < 16; j += 8) _mm256_storeu_ps(d16 + j, _mm256_set1_ps(d));
  }
}

}  // namespace

void add_quant_kernels_avx2(KernelTable& t) {
  t.gemm_q4_0 = gemm_legacy<unpack_q4_0, false, false, sizeof(BlockQ4_0)>;
  t.gemm_q4_1 = gemm_legacy<unpack_q4_1, true, false, sizeof(BlockQ4_1)>;
  t.gemm_q5_0 = gemm_legacy<unpack_q5_0, false, false, sizeof(BlockQ5_0)>;
  t.gemm_q5_1 = gemm_legacy<unpack_q5_1, true, false, sizeof(BlockQ5_1)>;
  t.gemm_q8_0 = gemm_legacy<unpack_q8_0, false, true, sizeof(BlockQ8_0)>;
  t.gemm_q2_k = gemm_k<unpack_q2_k, sizeof(BlockQ2_K)>;
  t.gemm_q3_k = gemm_k<unpack_q3_k, sizeof(BlockQ3_K)>;
  t.gemm_q4_k = gemm_k<unpack_q4_k, sizeof(BlockQ4_K)>;
  t.gemm_q5_k = gemm_k<unpack_q5_k, sizeof(BlockQ5_K)>;
  t.gemm_q6_k = gemm_k<unpack_q6_k, sizeof(BlockQ6_K)>;
  t.quantize_q8_0 = quantize_q8_0;
  t.quantize_q8_k = quantize_q8_k;
}

}  // namespace ilm::cpu
