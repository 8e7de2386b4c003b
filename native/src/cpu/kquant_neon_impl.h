// NEON GEMM tiles for quantized weights, compiled twice: by kquant_neon.cpp for baseline ASIMD
// (ILM_NEON_DOTPROD 0: widening multiplies SMULL/SMLAL2, pairwise adds) and by
// kquant_neon_dotprod.cpp with -march=armv8.2-a+dotprod (ILM_NEON_DOTPROD 1: SDOT). Everything
// here sits in an anonymous namespace, so each file keeps its own copies and the linker never
// merges a dotprod-compiled function into the baseline table. The canonical forms are those of
// kquant.h, on 16-byte vectors:
//  - K-quants: a super-block becomes 16 vectors of levels u (vector c = sub-block c of 16
//    elements, unsigned levels < 64 held as int8), integer sub-block scales, and the sub-block
//    minimums times dmin as floats (they multiply the activations' float bsums). Unpacked once per
//    weight row and group of up to 4 activations.
//  - 32-element blocks: two int8 vectors of signed levels; the activations' unsigned xu = q + 128
//    become signed q with one XOR, so signed x signed products need no correction term.
// All integer sums are exact (bounds in the comments), so the results differ from the portable
// kernels only by float rounding.
#pragma once

#ifndef ILM_NEON_DOTPROD
#error "define ILM_NEON_DOTPROD (0 or 1) before including kquant_neon_impl.h"
#endif

#include <arm_neon.h>

#include <cstring>

#include "cpu/kernels.h"

namespace ilm::cpu {
namespace {

using namespace quant;

inline float half_to_float(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

inline uint16_t load_u16(const void* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// acc (4 lanes) += the 16 products a[i] * b[i], grouped by 4 consecutive bytes (SDOT) or in some
// other grouping (baseline): only the sum over the 4 lanes is defined. |a|, |b| <= 128 with one of
// them <= 127: a pair of products stays below 2^15.
inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if ILM_NEON_DOTPROD
  return vdotq_s32(acc, a, b);
#else
  return vpadalq_s16(acc, vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), a, b));
#endif
}

// acc += sum over 32 products a0 . b0 + a1 . b1, where |a| <= 31 and |b| <= 127 (5-bit levels):
// four products fit one int16 lane (4 * 31 * 127 < 2^15).
inline int32x4_t dot32_small(int32x4_t acc, int8x16_t a0, int8x16_t b0, int8x16_t a1, int8x16_t b1) {
#if ILM_NEON_DOTPROD
  return vdotq_s32(vdotq_s32(acc, a0, b0), a1, b1);
#else
  int16x8_t p = vmull_s8(vget_low_s8(a0), vget_low_s8(b0));
  p = vmlal_high_s8(p, a0, b0);
  p = vmlal_s8(p, vget_low_s8(a1), vget_low_s8(b1));
  p = vmlal_high_s8(p, a1, b1);
  return vpadalq_s16(acc, p);
#endif
}

// isum += scale * (u . x) for one 16-element K sub-block (u < 64, |x| <= 127, |scale| <= 128).
inline int32x4_t scaled_dot16(int32x4_t isum, int8x16_t u, int8x16_t x, int16_t scale) {
#if ILM_NEON_DOTPROD
  return vmlaq_n_s32(isum, vdotq_s32(vdupq_n_s32(0), u, x), scale);
#else
  const int16x8_t p = vmlal_high_s8(vmull_s8(vget_low_s8(u), vget_low_s8(x)), u, x);  // <= 2 * 63 * 127
  return vmlal_high_n_s16(vmlal_n_s16(isum, vget_low_s16(p), scale), p, scale);
#endif
}

// The same for two 16-element halves sharing one scale (Q4_K/Q5_K's 32-element sub-blocks, u < 32).
inline int32x4_t scaled_dot32(int32x4_t isum, int8x16_t u0, int8x16_t x0, int8x16_t u1, int8x16_t x1, int16_t scale) {
#if ILM_NEON_DOTPROD
  return vmlaq_n_s32(isum, vdotq_s32(vdotq_s32(vdupq_n_s32(0), u0, x0), u1, x1), scale);
#else
  int16x8_t p = vmull_s8(vget_low_s8(u0), vget_low_s8(x0));  // 4 * 31 * 127 < 2^15
  p = vmlal_high_s8(p, u0, x0);
  p = vmlal_s8(p, vget_low_s8(u1), vget_low_s8(x1));
  p = vmlal_high_s8(p, u1, x1);
  return vmlal_high_n_s16(vmlal_n_s16(isum, vget_low_s16(p), scale), p, scale);
#endif
}

// Bits [from, from + width) of every byte of v moved to [to, to + width) (others cleared).
inline uint8x16_t move_bits(uint8x16_t v, int from, int to, int width = 1) {
  return vandq_u8(vshlq_u8(v, vdupq_n_s8(int8_t(to - from))), vdupq_n_u8(uint8_t(((1 << width) - 1) << to)));
}

// ---------------------------------------------------------------- K-quants

struct KRegs {
  int8x16_t u[16];     // u[c]: levels of elements 16c .. 16c + 15
  int16_t sc[16];      // scale of each 16-element sub-block
  float32x4_t mins[4]; // dmin * minimum of each sub-block
  float d;
};

inline void set_scales(int16x8_t lo, int16x8_t hi, KRegs& k) {
  vst1q_s16(k.sc, lo);
  vst1q_s16(k.sc + 8, hi);
}

inline void set_mins(int16x8_t lo, int16x8_t hi, float dmin, KRegs& k) {
  k.mins[0] = vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), dmin);
  k.mins[1] = vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(lo)), dmin);
  k.mins[2] = vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), dmin);
  k.mins[3] = vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(hi)), dmin);
}

inline int16x8_t widen_lo(uint8x16_t v) { return vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(v))); }
inline int16x8_t widen_hi(uint8x16_t v) { return vreinterpretq_s16_u16(vmovl_high_u8(v)); }

// Q2_K/Q3_K: qs[32 h + l] holds elements 128 h + 32 j + l in bits 2j, 2j + 1.
inline uint8x16_t two_bit_levels(const uint8x16_t* q, int c) {
  const int h = c / 8, quarter = (c % 8) / 2, half = c % 2;
  return move_bits(q[2 * h + half], 2 * quarter, 0, 2);
}

inline void unpack_q2_k(const uint8_t* p, KRegs& k) {
  const auto* b = reinterpret_cast<const BlockQ2_K*>(p);
  uint8x16_t q[4];
  for (int i = 0; i < 4; i++) q[i] = vld1q_u8(b->qs + 16 * i);
  for (int c = 0; c < 16; c++) k.u[c] = vreinterpretq_s8_u8(two_bit_levels(q, c));
  const uint8x16_t s = vld1q_u8(b->scales);
  const uint8x16_t sc = vandq_u8(s, vdupq_n_u8(0xF)), mn = vshrq_n_u8(s, 4);
  set_scales(widen_lo(sc), widen_hi(sc), k);
  set_mins(widen_lo(mn), widen_hi(mn), half_to_float(b->dmin), k);
  k.d = half_to_float(b->d);
}

// Q3_K's 16 six-bit scales minus 32: low 4 bits from bytes 0..7, high 2 bits from bytes 8..11.
inline int8x16_t q3_k_scales_vec(const uint8_t* packed) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t lo = 0x0f0f0f0f, hi = 0x03030303;
  const uint32_t s[4] = {(w[0] & lo) | ((w[2] & hi) << 4), (w[1] & lo) | (((w[2] >> 2) & hi) << 4),
                         ((w[0] >> 4) & lo) | (((w[2] >> 4) & hi) << 4), ((w[1] >> 4) & lo) | (((w[2] >> 6) & hi) << 4)};
  return vsubq_s8(vreinterpretq_s8_u32(vld1q_u32(s)), vdupq_n_s8(32));
}

inline void unpack_q3_k(const uint8_t* p, KRegs& k) {
  const auto* b = reinterpret_cast<const BlockQ3_K*>(p);
  uint8x16_t q[4];
  for (int i = 0; i < 4; i++) q[i] = vld1q_u8(b->qs + 16 * i);
  const uint8x16_t hm[2] = {vld1q_u8(b->hmask), vld1q_u8(b->hmask + 16)};
  // Element 32 j + l has its high bit in hmask[l] bit j: vector c covers l = 16 (c % 2) .., j = c / 2.
  for (int c = 0; c < 16; c++) k.u[c] = vreinterpretq_s8_u8(vorrq_u8(two_bit_levels(q, c), move_bits(hm[c % 2], c / 2, 2)));
  const int8x16_t s = q3_k_scales_vec(b->scales);
  const int16x8_t lo = vmovl_s8(vget_low_s8(s)), hi = vmovl_high_s8(s);
  set_scales(lo, hi, k);
  k.d = half_to_float(b->d);
  set_mins(vshlq_n_s16(lo, 2), vshlq_n_s16(hi, 2), k.d, k);
}

// Q4_K/Q5_K: the 8 six-bit scales (bytes 0..7 of the result) and mins (8..15), each used by two
// 16-element vectors.
inline void scales_k4(const uint8_t* packed, float dmin, KRegs& k) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t m6 = 0x3f3f3f3f, lo = 0x0f0f0f0f, hi = 0x03030303;
  const uint32_t s[4] = {w[0] & m6, (w[2] & lo) | (((w[0] >> 6) & hi) << 4), w[1] & m6,
                         ((w[2] >> 4) & lo) | (((w[1] >> 6) & hi) << 4)};
  const uint8x16_t sm = vreinterpretq_u8_u32(vld1q_u32(s));
  const uint8x16_t sc = vzip1q_u8(sm, sm), mn = vzip2q_u8(sm, sm);
  set_scales(widen_lo(sc), widen_hi(sc), k);
  set_mins(widen_lo(mn), widen_hi(mn), dmin, k);
}

// qs[32 j + l]: element 64 j + l in the low nibble, 64 j + 32 + l in the high one.
inline void nibbles_k4(const uint8_t* qs, KRegs& k) {
  const uint8x16_t m4 = vdupq_n_u8(0xF);
  for (int j = 0; j < 4; j++) {
    const uint8x16_t a0 = vld1q_u8(qs + 32 * j), a1 = vld1q_u8(qs + 32 * j + 16);
    k.u[4 * j] = vreinterpretq_s8_u8(vandq_u8(a0, m4));
    k.u[4 * j + 1] = vreinterpretq_s8_u8(vandq_u8(a1, m4));
    k.u[4 * j + 2] = vreinterpretq_s8_u8(vshrq_n_u8(a0, 4));
    k.u[4 * j + 3] = vreinterpretq_s8_u8(vshrq_n_u8(a1, 4));
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
  // qh[l] bit 2 j + hi is the fifth bit of element 64 j + 32 hi + l: vector c's is bit c / 2.
  const uint8x16_t qh[2] = {vld1q_u8(b->qh), vld1q_u8(b->qh + 16)};
  for (int c = 0; c < 16; c++) k.u[c] = vorrq_s8(k.u[c], vreinterpretq_s8_u8(move_bits(qh[c % 2], c / 2, 4)));
  scales_k4(b->scales, half_to_float(b->dmin), k);
  k.d = half_to_float(b->d);
}

inline void unpack_q6_k(const uint8_t* p, KRegs& k) {
  const auto* b = reinterpret_cast<const BlockQ6_K*>(p);
  uint8x16_t ql[8], qh[4];
  for (int i = 0; i < 8; i++) ql[i] = vld1q_u8(b->ql + 16 * i);
  for (int i = 0; i < 4; i++) qh[i] = vld1q_u8(b->qh + 16 * i);
  // Element 128 h + 32 quarter + l: low 4 bits in ql[64 h + 32 (quarter & 1) + l] (nibble
  // quarter >> 1), high 2 bits in qh[32 h + l] bits 2 quarter.
  for (int c = 0; c < 16; c++) {
    const int h = c / 8, quarter = (c % 8) / 2, half = c % 2;
    const uint8x16_t low = move_bits(ql[4 * h + 2 * (quarter & 1) + half], 4 * (quarter >> 1), 0, 4);
    k.u[c] = vreinterpretq_s8_u8(vorrq_u8(low, move_bits(qh[2 * h + half], 2 * quarter, 4, 2)));
  }
  const int8x16_t s = vld1q_s8(b->scales);
  const int16x8_t lo = vmovl_s8(vget_low_s8(s)), hi = vmovl_high_s8(s);
  set_scales(lo, hi, k);
  k.d = half_to_float(b->d);
  set_mins(vshlq_n_s16(lo, 5), vshlq_n_s16(hi, 5), k.d, k);
}

// kPaired: vectors 2j and 2j + 1 share scale sc[2j] and have levels < 32 (Q4_K, Q5_K).
template <int T, void (*Unpack)(const uint8_t*, KRegs&), bool kPaired>
inline void k_row(const uint8_t* w, size_t block_bytes, const uint8_t* X, size_t ldx, float* y, size_t ldy, int n) {
  const int nb = n / 256;
  const uint8_t* x[T];
  float32x4_t acc[T];
  for (int t = 0; t < T; t++) x[t] = X + size_t(t) * ldx, acc[t] = vdupq_n_f32(0.0f);
  for (int i = 0; i < nb; i++) {
    const uint8_t* blk = w + size_t(i) * block_bytes;
    __builtin_prefetch(blk + 1024);
    __builtin_prefetch(blk + 1024 + 64);
    __builtin_prefetch(blk + 1024 + 128);
    KRegs k;
    Unpack(blk, k);
    int32x4_t isum[T];
    for (int t = 0; t < T; t++) isum[t] = vdupq_n_s32(0);
    if constexpr (kPaired) {
      for (int c = 0; c < 16; c += 2)
        for (int t = 0; t < T; t++) {
          const int8_t* q = reinterpret_cast<const int8_t*>(x[t]) + 16 * c;
          isum[t] = scaled_dot32(isum[t], k.u[c], vld1q_s8(q), k.u[c + 1], vld1q_s8(q + 16), k.sc[c]);
        }
    } else {
      for (int c = 0; c < 16; c++)
        for (int t = 0; t < T; t++)
          isum[t] = scaled_dot16(isum[t], k.u[c], vld1q_s8(reinterpret_cast<const int8_t*>(x[t]) + 16 * c), k.sc[c]);
    }
    for (int t = 0; t < T; t++) {
      const ActQ8K a{x[t]};
      acc[t] = vfmaq_n_f32(acc[t], vcvtq_f32_s32(isum[t]), k.d * a.d());
      for (int m = 0; m < 4; m++) acc[t] = vfmsq_f32(acc[t], k.mins[m], vld1q_f32(a.bsums() + 4 * m));
      x[t] += kActQ8KBytes;
    }
  }
  for (int t = 0; t < T; t++) y[size_t(t) * ldy] = vaddvq_f32(acc[t]);
}

template <int T, void (*Unpack)(const uint8_t*, KRegs&), bool kPaired>
inline void k_rows(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int n,
                   size_t block_bytes) {
  for (int r = 0; r < nr; r++) k_row<T, Unpack, kPaired>(W + size_t(r) * ldw, block_bytes, X, ldx, Y + r, ldy, n);
}

template <void (*Unpack)(const uint8_t*, KRegs&), size_t kBlockBytes, bool kPaired = false>
void gemm_k(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int nt, int n) {
  int t = 0;
  for (; t + 4 <= nt; t += 4) k_rows<4, Unpack, kPaired>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n, kBlockBytes);
  if (nt - t >= 2) k_rows<2, Unpack, kPaired>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n, kBlockBytes), t += 2;
  if (nt - t >= 1) k_rows<1, Unpack, kPaired>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n, kBlockBytes);
}

// ---------------------------------------------------------------- 32-element blocks

// Signed levels of elements 0..15 (v0) and 16..31 (v1); d, and the minimum m for Q4_1/Q5_1.
struct LRegs {
  int8x16_t v0, v1;
  float d, m;
};

// 0x10 in byte j of the result when bit j of the 16-bit value is set.
inline uint8x16_t fifth_bits(uint32_t bits16) {
  const uint8x16_t spread = vcombine_u8(vdup_n_u8(uint8_t(bits16)), vdup_n_u8(uint8_t(bits16 >> 8)));
  const uint8x16_t bit = vreinterpretq_u8_u64(vdupq_n_u64(0x8040201008040201ull));
  return vandq_u8(vtstq_u8(spread, bit), vdupq_n_u8(0x10));
}

inline void set_levels(const uint8_t* qs, const uint8_t* qh, int offset, LRegs& l) {
  const uint8x16_t q = vld1q_u8(qs);
  uint8x16_t lo = vandq_u8(q, vdupq_n_u8(0xF)), hi = vshrq_n_u8(q, 4);
  if (qh) {
    uint32_t bits;
    std::memcpy(&bits, qh, 4);
    lo = vorrq_u8(lo, fifth_bits(bits & 0xFFFF));
    hi = vorrq_u8(hi, fifth_bits(bits >> 16));
  }
  l.v0 = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(int8_t(offset)));
  l.v1 = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(int8_t(offset)));
}

inline void unpack_q4_0(const uint8_t* w, int i, LRegs& l) {
  const auto& b = reinterpret_cast<const BlockQ4_0*>(w)[i];
  set_levels(b.qs, nullptr, 8, l);
  l.d = half_to_float(load_u16(&b.d));
}
inline void unpack_q4_1(const uint8_t* w, int i, LRegs& l) {
  const auto& b = reinterpret_cast<const BlockQ4_1*>(w)[i];
  set_levels(b.qs, nullptr, 0, l);
  l.d = half_to_float(load_u16(&b.d));
  l.m = half_to_float(load_u16(&b.m));
}
inline void unpack_q5_0(const uint8_t* w, int i, LRegs& l) {
  const auto& b = reinterpret_cast<const BlockQ5_0*>(w)[i];
  set_levels(b.qs, b.qh, 16, l);
  l.d = half_to_float(load_u16(&b.d));
}
inline void unpack_q5_1(const uint8_t* w, int i, LRegs& l) {
  const auto& b = reinterpret_cast<const BlockQ5_1*>(w)[i];
  set_levels(b.qs, b.qh, 0, l);
  l.d = half_to_float(load_u16(&b.d));
  l.m = half_to_float(load_u16(&b.m));
}
inline void unpack_q8_0(const uint8_t* w, int i, LRegs& l) {
  const auto& b = reinterpret_cast<const BlockQ8_0*>(w)[i];
  l.v0 = vld1q_s8(b.qs);
  l.v1 = vld1q_s8(b.qs + 16);
  l.d = half_to_float(load_u16(&b.d));
}

// kMin: Q4_1/Q5_1 minimums; kSmall: levels within -31..31 (all but Q8_0, whose -128..127 levels
// take one int16 lane per product pair).
template <int T, void (*Unpack)(const uint8_t*, int, LRegs&), bool kMin, bool kSmall, size_t kBlockBytes>
inline void legacy_row(const uint8_t* w, const uint8_t* X, size_t ldx, float* y, size_t ldy, int n) {
  const int nb = n / 32;
  const uint8_t* x[T];
  float32x4_t acc[T];
  for (int t = 0; t < T; t++) x[t] = X + size_t(t) * ldx, acc[t] = vdupq_n_f32(0.0f);
  const uint8x16_t flip = vdupq_n_u8(0x80);
  for (int i = 0; i < nb; i++) {
    __builtin_prefetch(w + i * kBlockBytes + 1024);
    LRegs l;
    Unpack(w, i, l);
    const int half = i % 2;
    for (int t = 0; t < T; t++) {
      const ActPair a{x[t]};
      const int8x16_t x0 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(a.xu(half)), flip));
      const int8x16_t x1 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(a.xu(half) + 16), flip));
      int32x4_t dot;
      if constexpr (kSmall) dot = dot32_small(vdupq_n_s32(0), l.v0, x0, l.v1, x1);
      else dot = dot16(dot16(vdupq_n_s32(0), l.v0, x0), l.v1, x1);
      acc[t] = vfmaq_n_f32(acc[t], vcvtq_f32_s32(dot), l.d * a.d(half)[0]);
      // a.s holds s / 8 in each lane: 4 lanes times 2 m give m * s.
      if constexpr (kMin) acc[t] = vfmaq_n_f32(acc[t], vld1q_f32(a.s(half)), 2.0f * l.m);
      if (half) x[t] += kActPairBytes;
    }
  }
  for (int t = 0; t < T; t++) y[size_t(t) * ldy] = vaddvq_f32(acc[t]);
}

template <int T, void (*Unpack)(const uint8_t*, int, LRegs&), bool kMin, bool kSmall, size_t kBlockBytes>
inline void legacy_rows(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int n) {
  for (int r = 0; r < nr; r++) legacy_row<T, Unpack, kMin, kSmall, kBlockBytes>(W + size_t(r) * ldw, X, ldx, Y + r, ldy, n);
}

template <void (*Unpack)(const uint8_t*, int, LRegs&), bool kMin, bool kSmall, size_t kBlockBytes>
void gemm_legacy(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int nt, int n) {
  int t = 0;
  for (; t + 4 <= nt; t += 4)
    legacy_rows<4, Unpack, kMin, kSmall, kBlockBytes>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n);
  if (nt - t >= 2)
    legacy_rows<2, Unpack, kMin, kSmall, kBlockBytes>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n), t += 2;
  if (nt - t >= 1)
    legacy_rows<1, Unpack, kMin, kSmall, kBlockBytes>(W, ldw, X + t * ldx, ldx, Y + t * ldy, ldy, nr, n);
}

// The GEMM entries of a table (the activation quantizers are kquant_neon.cpp's, for both tables).
inline void set_neon_gemms(KernelTable& t) {
  t.gemm_q4_0 = gemm_legacy<unpack_q4_0, false, true, sizeof(BlockQ4_0)>;
  t.gemm_q4_1 = gemm_legacy<unpack_q4_1, true, true, sizeof(BlockQ4_1)>;
  t.gemm_q5_0 = gemm_legacy<unpack_q5_0, false, true, sizeof(BlockQ5_0)>;
  t.gemm_q5_1 = gemm_legacy<unpack_q5_1, true, true, sizeof(BlockQ5_1)>;
  t.gemm_q8_0 = gemm_legacy<unpack_q8_0, false, false, sizeof(BlockQ8_0)>;
  t.gemm_q2_k = gemm_k<unpack_q2_k, sizeof(BlockQ2_K)>;
  t.gemm_q3_k = gemm_k<unpack_q3_k, sizeof(BlockQ3_K)>;
  t.gemm_q4_k = gemm_k<unpack_q4_k, sizeof(BlockQ4_K), true>;
  t.gemm_q5_k = gemm_k<unpack_q5_k, sizeof(BlockQ5_K), true>;
  t.gemm_q6_k = gemm_k<unpack_q6_k, sizeof(BlockQ6_K)>;
}

}  // namespace
}  // namespace ilm::cpu
