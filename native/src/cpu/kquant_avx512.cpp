// AVX-512 (BW, VL, VNNI) kernels for quantized weights. Each weight block is unpacked into the
// canonical forms of kquant.h directly in registers, once per row and group of up to 8
// activations; the dot products then run as u8 x s8 multiply-adds (vpmaddubsw + vpdpwssd for
// the K-quants' integer sub-block scales, vpdpbusd of unsigned activations with the signed levels
// of the 32-blocks).
// GCC 12's AVX-512 headers trip -Wuninitialized on their own "undefined vector" idiom (GCC PR 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
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

// Broadcasts two floats into the two 256-bit halves.
inline __m512 halves(float lo, float hi) { return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1); }

// Bit masks selecting bit 2c (low 32 bytes) and bit 2c + 1 (high 32 bytes): the high bit of
// element 64 c + j of a Q3_K hmask / Q5_K qh row broadcast into both halves.
inline __m512i pair_bits(int c) {
  return _mm512_slli_epi16(_mm512_inserti64x4(_mm512_set1_epi8(1), _mm256_set1_epi8(2), 1), 2 * c);
}

inline __m512i broadcast256(const uint8_t* p) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Per-16-bit-lane right shifts: a in the low 256 bits, b in the high 256 bits.
inline __m512i shift_pair(int a, int b) {
  return _mm512_inserti64x4(_mm512_set1_epi16(int16_t(a)), _mm256_set1_epi16(int16_t(b)), 1);
}

// ---------------------------------------------------------------- K-quants

// One super-block: u[c] = levels of elements 64c..64c+63; sc[c] = the scale of each int16 pair
// product of u[c] (lane i covers elements 64c + 2i, 2i + 1); mins = the 16 sub-block minimums.
struct KRegs {
  __m512i u[4];
  __m512i sc[4];
  __m512 mins;  // dmin * mn per 16-element sub-block
  float d;
};

// The sub-block minimums as floats scaled by dmin (they multiply the activations' d * bsums).
inline void set_mins(__m256i mn16, float dmin, KRegs& k) {
  k.mins = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(mn16)), _mm512_set1_ps(dmin));
}

// vpermw index tables: for chunk c, lane i takes scale Base + Mul * c + i / Div.
template <int kBase, int kMul, int kDiv, int kLanes>
struct LaneIndex {
  alignas(64) int16_t v[4][kLanes];
  constexpr LaneIndex() : v() {
    for (int c = 0; c < 4; c++)
      for (int i = 0; i < kLanes; i++) v[c][i] = int16_t(kBase + kMul * c + i / kDiv);
  }
};
constexpr LaneIndex<0, 4, 8, 32> kScale16Index{};  // 16-element sub-blocks
constexpr LaneIndex<0, 2, 16, 32> kScale32Index{};  // 32-element sub-blocks
constexpr LaneIndex<8, 0, 2, 16> kMin32Index{};     // mins after the 8 scales, one per 2 lanes

// sc[c] from 16 int16 scales s16 (one per 16 elements): lane i takes s16[4c + i / 8].
inline void expand_scales16(__m256i s16, KRegs& k) {
  const __m512i s = _mm512_castsi256_si512(s16);
  for (int c = 0; c < 4; c++) k.sc[c] = _mm512_permutexvar_epi16(_mm512_load_si512(kScale16Index.v[c]), s);
}

// The 2-bit levels of Q2_K/Q3_K: element 64c + j sits in qs[32 (c / 2) + j % 32] at bit 2 (2 (c % 2) + j / 32).
inline __m512i two_bit_levels(const uint8_t* qs, int c) {
  const __m512i q = broadcast256(qs + 32 * (c / 2));
  const int s = 4 * (c % 2);
  return _mm512_and_si512(_mm512_srlv_epi16(q, shift_pair(s, s + 2)), _mm512_set1_epi8(3));
}

inline void unpack_q2_k(const uint8_t* p, KRegs& k) {
  const auto* b = reinterpret_cast<const BlockQ2_K*>(p);
  for (int c = 0; c < 4; c++) k.u[c] = two_bit_levels(b->qs, c);
  const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales));
  expand_scales16(_mm256_cvtepu8_epi16(_mm_and_si128(s, _mm_set1_epi8(0xF))), k);
  set_mins(_mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(0xF))), half_to_float(b->dmin), k);
  k.d = half_to_float(b->d);
}

// Q3_K's 16 six-bit scales from their packing: low nibbles in bytes 0..7, two high bits each in 8..11.
inline __m128i q3_k_scales(const uint8_t* packed) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t lo = 0x0f0f0f0f, hi = 0x03030303;
  const uint32_t s[4] = {(w[0] & lo) | ((w[2] & hi) << 4), (w[1] & lo) | (((w[2] >> 2) & hi) << 4),
                         ((w[0] >> 4) & lo) | (((w[2] >> 4) & hi) << 4), ((w[1] >> 4) & lo) | (((w[2] >> 6) & hi) << 4)};
  return _mm_sub_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)), _mm_set1_epi8(32));
}

inline void unpack_q3_k(const uint8_t* p, KRegs& k) {
  const auto* b = reinterpret_cast<const BlockQ3_K*>(p);
  const __m512i hm = broadcast256(b->hmask);
  for (int c = 0; c < 4; c++) {
    const __m512i low = two_bit_levels(b->qs, c);
    k.u[c] = _mm512_mask_add_epi8(low, _mm512_test_epi8_mask(hm, pair_bits(c)), low, _mm512_set1_epi8(4));
  }
  const __m256i s16 = _mm256_cvtepi8_epi16(q3_k_scales(b->scales));
  expand_scales16(s16, k);
  k.d = half_to_float(b->d);
  set_mins(_mm256_slli_epi16(s16, 2), k.d, k);  // w = d s (u - 4)
}

// Q4_K/Q5_K's 6-bit scales (bytes 0..7) and mins (bytes 8..15) from their 12-byte packing.
inline __m256i k4_scales_mins(const uint8_t* packed) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t m6 = 0x3f3f3f3f, lo = 0x0f0f0f0f, hi = 0x03030303;
  const uint32_t s[4] = {w[0] & m6, (w[2] & lo) | (((w[0] >> 6) & hi) << 4), w[1] & m6,
                         ((w[2] >> 4) & lo) | (((w[1] >> 6) & hi) << 4)};
  return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
}

// Scales of 32-element sub-blocks: sc[c] lane i takes scale 2c + i / 16; mn lane j takes min j / 2.
inline void expand_k4(__m256i sm, float dmin, KRegs& k) {
  const __m512i s = _mm512_castsi256_si512(sm);
  for (int c = 0; c < 4; c++) k.sc[c] = _mm512_permutexvar_epi16(_mm512_load_si512(kScale32Index.v[c]), s);
  set_mins(_mm256_permutexvar_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(kMin32Index.v[0])), sm), dmin, k);
}

// Nibbles of 64 bytes (two 32-byte groups k, k + 1) into chunks 2h and 2h + 1 in element order.
inline void nibbles_k4(const uint8_t* qs, __m512i& first, __m512i& second) {
  const __m512i a = _mm512_loadu_si512(qs);
  const __m512i m4 = _mm512_set1_epi8(0xF);
  const __m512i lo = _mm512_and_si512(a, m4), hi = _mm512_and_si512(_mm512_srli_epi16(a, 4), m4);
  first = _mm512_shuffle_i64x2(lo, hi, 0x44);
  second = _mm512_shuffle_i64x2(lo, hi, 0xEE);
}

inline void unpack_q4_k(const uint8_t* p, KRegs& k) {
  const auto* b = reinterpret_cast<const BlockQ4_K*>(p);
  nibbles_k4(b->qs, k.u[0], k.u[1]);
  nibbles_k4(b->qs + 64, k.u[2], k.u[3]);
  expand_k4(k4_scales_mins(b->scales), half_to_float(b->dmin), k);
  k.d = half_to_float(b->d);
}

inline void unpack_q5_k(const uint8_t* p, KRegs& k) {
  const auto* b = reinterpret_cast<const BlockQ5_K*>(p);
  nibbles_k4(b->qs, k.u[0], k.u[1]);
  nibbles_k4(b->qs + 64, k.u[2], k.u[3]);
  const __m512i qh = broadcast256(b->qh);
  for (int c = 0; c < 4; c++)
    k.u[c] = _mm512_mask_add_epi8(k.u[c], _mm512_test_epi8_mask(qh, pair_bits(c)), k.u[c], _mm512_set1_epi8(16));
  expand_k4(k4_scales_mins(b->scales), half_to_float(b->dmin), k);
  k.d = half_to_float(b->d);
}

inline void unpack_q6_k(const uint8_t* p, KRegs& k) {
  const auto* b = reinterpret_cast<const BlockQ6_K*>(p);
  const __m512i m4 = _mm512_set1_epi8(0xF), m2 = _mm512_set1_epi8(3);
  for (int h = 0; h < 2; h++) {
    // ql[l] | ql[l + 32]: low nibbles are elements 0..63 of this half, high nibbles 64..127.
    const __m512i a = _mm512_loadu_si512(b->ql + 64 * h);
    const __m512i qh = broadcast256(b->qh + 32 * h);
    const __m512i h01 = _mm512_and_si512(_mm512_srlv_epi16(qh, shift_pair(0, 2)), m2);
    const __m512i h23 = _mm512_and_si512(_mm512_srlv_epi16(qh, shift_pair(4, 6)), m2);
    k.u[2 * h] = _mm512_or_si512(_mm512_and_si512(a, m4), _mm512_slli_epi16(h01, 4));
    k.u[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a, 4), m4), _mm512_slli_epi16(h23, 4));
  }
  const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales)));
  expand_scales16(s16, k);
  k.d = half_to_float(b->d);
  set_mins(_mm256_slli_epi16(s16, 5), k.d, k);  // w = d s (u - 32)
}

// T activations against one weight row: y[t] = dot(row, x_t).
template <int T, void (*Unpack)(const uint8_t*, KRegs&)>
inline void k_row(const uint8_t* w, size_t block_bytes, const uint8_t* X, size_t ldx, float* y, size_t ldy, int n) {
  const int nb = n / 256;
  const uint8_t* x[T];
  __m512 acc[T];
  for (int t = 0; t < T; t++) x[t] = X + size_t(t) * ldx, acc[t] = _mm512_setzero_ps();
  for (int i = 0; i < nb; i++) {
    const uint8_t* blk = w + size_t(i) * block_bytes;
    _mm_prefetch(reinterpret_cast<const char*>(blk) + kPrefetchBytes, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk) + kPrefetchBytes + 64, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk) + kPrefetchBytes + 128, _MM_HINT_T0);
    KRegs k;
    Unpack(blk, k);
    __m512i dot[T];
    for (int c = 0; c < 4; c++) {
      for (int t = 0; t < T; t++) {
        const __m512i p = _mm512_maddubs_epi16(k.u[c], _mm512_loadu_si512(x[t] + 64 * c));
        dot[t] = c == 0 ? _mm512_madd_epi16(p, k.sc[0]) : _mm512_dpwssd_epi32(dot[t], p, k.sc[c]);
      }
    }
    const __m512 d = _mm512_set1_ps(k.d);
    for (int t = 0; t < T; t++) {
      const ActQ8K a{x[t]};
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[t]), _mm512_mul_ps(d, _mm512_loadu_ps(a.d16())), acc[t]);
      acc[t] = _mm512_fnmadd_ps(k.mins, _mm512_loadu_ps(a.bsums()), acc[t]);
      x[t] += kActQ8KBytes;
    }
  }
  for (int t = 0; t < T; t++) y[size_t(t) * ldy] = _mm512_reduce_add_ps(acc[t]);
}

template <int T, void (*Unpack)(const uint8_t*, KRegs&)>
inline void k_rows(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int n,
                   size_t block_bytes) {
  for (int r = 0; r < nr; r++) k_row<T, Unpack>(W + size_t(r) * ldw, block_bytes, X, ldx, Y + r, ldy, n);
}

template <void (*Unpack)(const uint8_t*, KRegs&), size_t kBlockBytes>
void gemm_k(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int nt, int n) {
  int t = 0;
  for (; t + 8 <= nt; t += 8) k_rows<8, Unpack>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n, kBlockBytes);
  if (nt - t >= 4) k_rows<4, Unpack>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n, kBlockBytes), t += 4;
  if (nt - t >= 2) k_rows<2, Unpack>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n, kBlockBytes), t += 2;
  if (nt - t >= 1) k_rows<1, Unpack>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n, kBlockBytes);
}

// ---------------------------------------------------------------- 32-element blocks

// Two blocks (the second may be absent at the end of a row, then all zero): v = signed levels,
// start = -128 * sum(v) per lane (removes the +128 of the unsigned activations), d = scales per
// lane, m = Q4_1/Q5_1 minimums per lane.
struct LRegs {
  __m512i v, start;
  __m512 d, m;
};

// Nibbles of two 16-byte groups in element order: [q0 & 15, q0 >> 4, q1 & 15, q1 >> 4].
inline __m512i nibbles_pair(const uint8_t* q0, const uint8_t* q1) {
  const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q0));
  const __m128i b = q1 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(q1)) : _mm_setzero_si128();
  const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(a)), _mm256_broadcastsi128_si256(b), 1);
  const __m512i shifts = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0, 0, 0x0004000400040004,
                                          0x0004000400040004, 0, 0);
  return _mm512_and_si512(_mm512_srlv_epi16(z, shifts), _mm512_set1_epi8(0xF));
}

inline __m512i add_fifth_bits(__m512i u, const uint8_t* qh0, const uint8_t* qh1) {
  uint32_t a, b = 0;
  std::memcpy(&a, qh0, 4);
  if (qh1) std::memcpy(&b, qh1, 4);
  return _mm512_mask_add_epi8(u, _cvtu64_mask64(uint64_t(a) | (uint64_t(b) << 32)), u, _mm512_set1_epi8(16));
}

// Levels minus the type's offset; an absent second block stays zero.
inline void set_levels(__m512i u, int offset, bool two, LRegs& l) {
  l.v = _mm512_sub_epi8(u, _mm512_set1_epi8(char(offset)));
  if (!two) l.v = _mm512_maskz_mov_epi8(__mmask64(0xFFFFFFFF), l.v);
  l.start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(0x80)), l.v));
}

template <typename Block>
inline void scales_pair(const Block* b, bool two, LRegs& l) {
  l.d = halves(half_to_float(b[0].d), two ? half_to_float(b[1].d) : 0.0f);
  if constexpr (sizeof(Block) == sizeof(BlockQ4_1) || sizeof(Block) == sizeof(BlockQ5_1))
    l.m = halves(half_to_float(b[0].m), two ? half_to_float(b[1].m) : 0.0f);
}

inline void unpack_q4_0(const uint8_t* w, int i, bool two, LRegs& l) {
  const auto* b = reinterpret_cast<const BlockQ4_0*>(w) + i;
  set_levels(nibbles_pair(b[0].qs, two ? b[1].qs : nullptr), 8, two, l);
  scales_pair(b, two, l);
}
inline void unpack_q4_1(const uint8_t* w, int i, bool two, LRegs& l) {
  const auto* b = reinterpret_cast<const BlockQ4_1*>(w) + i;
  set_levels(nibbles_pair(b[0].qs, two ? b[1].qs : nullptr), 0, two, l);
  scales_pair(b, two, l);
}
inline void unpack_q5_0(const uint8_t* w, int i, bool two, LRegs& l) {
  const auto* b = reinterpret_cast<const BlockQ5_0*>(w) + i;
  set_levels(add_fifth_bits(nibbles_pair(b[0].qs, two ? b[1].qs : nullptr), b[0].qh, two ? b[1].qh : nullptr), 16, two, l);
  scales_pair(b, two, l);
}
inline void unpack_q5_1(const uint8_t* w, int i, bool two, LRegs& l) {
  const auto* b = reinterpret_cast<const BlockQ5_1*>(w) + i;
  set_levels(add_fifth_bits(nibbles_pair(b[0].qs, two ? b[1].qs : nullptr), b[0].qh, two ? b[1].qh : nullptr), 0, two, l);
  scales_pair(b, two, l);
}
inline void unpack_q8_0(const uint8_t* w, int i, bool two, LRegs& l) {
  const auto* b = reinterpret_cast<const BlockQ8_0*>(w) + i;
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
  const __m256i c = two ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs)) : _mm256_setzero_si256();
  set_levels(_mm512_inserti64x4(_mm512_castsi256_si512(a), c, 1), 0, true, l);
  scales_pair(b, two, l);
}

// kMin: Q4_1/Q5_1 minimums.
template <int T, void (*Unpack)(const uint8_t*, int, bool, LRegs&), bool kMin, size_t kBlockBytes>
inline void legacy_row(const uint8_t* w, const uint8_t* X, size_t ldx, float* y, size_t ldy, int n) {
  const int nb = n / 32;
  const uint8_t* x[T];
  __m512 acc[T];
  for (int t = 0; t < T; t++) x[t] = X + size_t(t) * ldx, acc[t] = _mm512_setzero_ps();
  for (int i = 0; i < nb; i += 2) {
    _mm_prefetch(reinterpret_cast<const char*>(w + i * kBlockBytes) + kPrefetchBytes, _MM_HINT_T0);
    LRegs l;
    Unpack(w, i, i + 1 < nb, l);
    for (int t = 0; t < T; t++) {
      const __m512i dot = _mm512_dpbusd_epi32(l.start, _mm512_loadu_si512(x[t]), l.v);
      const __m512 scale = _mm512_mul_ps(l.d, _mm512_loadu_ps(x[t] + 64));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[t]);
      if constexpr (kMin) acc[t] = _mm512_fmadd_ps(l.m, _mm512_loadu_ps(x[t] + 128), acc[t]);
      x[t] += kActPairBytes;
    }
  }
  for (int t = 0; t < T; t++) y[size_t(t) * ldy] = _mm512_reduce_add_ps(acc[t]);
}

template <int T, void (*Unpack)(const uint8_t*, int, bool, LRegs&), bool kMin, size_t kBlockBytes>
inline void legacy_rows(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int n) {
  for (int r = 0; r < nr; r++) legacy_row<T, Unpack, kMin, kBlockBytes>(W + size_t(r) * ldw, X, ldx, Y + r, ldy, n);
}

template <void (*Unpack)(const uint8_t*, int, bool, LRegs&), bool kMin, size_t kBlockBytes>
void gemm_legacy(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int nt, int n) {
  int t = 0;
  for (; t + 8 <= nt; t += 8) legacy_rows<8, Unpack, kMin, kBlockBytes>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n);
  if (nt - t >= 4) legacy_rows<4, Unpack, kMin, kBlockBytes>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n), t += 4;
  if (nt - t >= 2) legacy_rows<2, Unpack, kMin, kBlockBytes>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n), t += 2;
  if (nt - t >= 1) legacy_rows<1, Unpack, kMin, kBlockBytes>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n);
}

// ---------------------------------------------------------------- activation quantizers

inline float hmax(__m512 v) { return _mm512_reduce_max_ps(v); }

// Same rounding as the generic quantize_q8_0 (llama.cpp's): d = fp16(amax / 127), q = rint(x * 127 / amax).
void quantize_q8_0(const float* x, uint8_t* row, int n) {
  const int nb = n / 32;
  for (int i = 0; i < nb; i++) {
    const ActPair a = act_pair(row, i);
    const __m512 v0 = _mm512_loadu_ps(x + 32 * i), v1 = _mm512_loadu_ps(x + 32 * i + 16);
    const float amax = hmax(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = _cvtsh_ss(_cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT));
    const __m512 id = _mm512_set1_ps(amax != 0 ? 127.0f / amax : 0.0f);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
    const __m512i bias = _mm512_set1_epi32(128);
    auto* xu = const_cast<uint8_t*>(a.xu(i % 2));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(xu), _mm512_cvtepi32_epi8(_mm512_add_epi32(q0, bias)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(xu + 16), _mm512_cvtepi32_epi8(_mm512_add_epi32(q1, bias)));
    const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
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

// Same rounding as the generic quantize_q8_k (ggml's reference): q = min(127, rint(x * -127 / max)).
void quantize_q8_k(const float* x, uint8_t* row, int n) {
  for (int i = 0; i < n / 256; i++) {
    const ActQ8K a = act_q8_k(row, i);
    auto* out = const_cast<uint8_t*>(a.p);
    const float* v = x + 256 * i;
    __m512 amax = _mm512_setzero_ps();
    for (int j = 0; j < 256; j += 16) amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_loadu_ps(v + j)));
    const float m = hmax(amax);
    // The signed value of largest magnitude: the first element whose |x| is m, as the reference scans.
    float max = 0;
    for (int j = 0; j < 256; j += 16) {
      const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(v + j)), _mm512_set1_ps(m), _CMP_EQ_OQ);
      if (hit) {
        max = v[j + __builtin_ctz(hit)];
        break;
      }
    }
    const float iscale = m != 0 ? -127.0f / max : 0.0f;
    const float d = m != 0 ? 1 / iscale : 0.0f;
    const __m512 is = _mm512_set1_ps(iscale);
    alignas(64) int32_t sums[16];
    for (int j = 0; j < 256; j += 16) {
      const __m512i qi = _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(v + j), is)), _mm512_set1_epi32(127));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j), _mm512_cvtsepi32_epi8(qi));
      sums[j / 16] = _mm512_reduce_add_epi32(qi);
    }
    _mm512_storeu_ps(const_cast<float*>(a.d16()), _mm512_set1_ps(d));
    _mm512_storeu_ps(const_cast<float*>(a.bsums()), _mm512_mul_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(_mm512_load_si512(sums))));
  }
}

}  // namespace

void add_quant_kernels_avx512(KernelTable& t) {
  t.gemm_q4_0 = gemm_legacy<unpack_q4_0, false, sizeof(BlockQ4_0)>;
  t.gemm_q4_1 = gemm_legacy<unpack_q4_1, true, sizeof(BlockQ4_1)>;
  t.gemm_q5_0 = gemm_legacy<unpack_q5_0, false, sizeof(BlockQ5_0)>;
  t.gemm_q5_1 = gemm_legacy<unpack_q5_1, true, sizeof(BlockQ5_1)>;
  t.gemm_q8_0 = gemm_legacy<unpack_q8_0, false, sizeof(BlockQ8_0)>;
  t.gemm_q2_k = gemm_k<unpack_q2_k, sizeof(BlockQ2_K)>;
  t.gemm_q3_k = gemm_k<unpack_q3_k, sizeof(BlockQ3_K)>;
  t.gemm_q4_k = gemm_k<unpack_q4_k, sizeof(BlockQ4_K)>;
  t.gemm_q5_k = gemm_k<unpack_q5_k, sizeof(BlockQ5_K)>;
  t.gemm_q6_k = gemm_k<unpack_q6_k, sizeof(BlockQ6_K)>;
  t.quantize_q8_0 = quantize_q8_0;
  t.quantize_q8_k = quantize_q8_k;
}

}  // namespace ilm::cpu
