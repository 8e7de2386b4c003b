// ggml's dequantization and reference quantizers, written from the format definitions. The scale
// searches (make_qx/q3/qkx2 below) follow ggml's algorithms step by step, so files we quantize
// have the quality of llama.cpp's; bit equality with it is not a goal.
#include "quant/reference.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "util/error.h"
#include "util/half.h"

namespace ilm::quant {
namespace {

// Round half to even for |f| < 2^22, as ggml's nearest_int: adding 1.5 * 2^23 leaves the rounded
// integer in the low mantissa bits (branch-free, so the scale searches vectorize).
inline int nearest_int(float f) {
  const float v = f + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

inline float half(uint16_t h) { return fp16_to_f32(h); }

// Splits 32 values q (5 bits) into nibbles qs and fifth bits qh, ggml's legacy order.
void pack_legacy(const uint8_t* q, uint8_t* qs, uint8_t* qh) {
  uint32_t high = 0;
  for (int j = 0; j < kQK / 2; j++) {
    qs[j] = uint8_t((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
    high |= uint32_t((q[j] >> 4) & 1) << j;
    high |= uint32_t((q[j + 16] >> 4) & 1) << (j + 16);
  }
  if (qh) std::memcpy(qh, &high, 4);
}

// ---------------------------------------------------------------- legacy types

// Symmetric 4/5-bit: the value of largest magnitude maps to -2^(bits-1).
template <typename Block, int kLevels>
void quantize_symmetric(const float* x, Block* y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += kQK) {
    float amax = 0, max = 0;
    for (int j = 0; j < kQK; j++)
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
    const float d = max / -float(kLevels / 2);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    uint8_t q[kQK];
    for (int j = 0; j < kQK; j++) q[j] = uint8_t(std::min(kLevels - 1, int(x[j] * id + float(kLevels / 2) + 0.5f)));
    if constexpr (kLevels == 16) pack_legacy(q, y[i].qs, nullptr);
    else pack_legacy(q, y[i].qs, y[i].qh);
  }
}

// Affine 4/5-bit: min..max maps onto 0..levels-1.
template <typename Block, int kLevels>
void quantize_affine(const float* x, Block* y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += kQK) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < kQK; j++) min = std::min(min, x[j]), max = std::max(max, x[j]);
    const float d = (max - min) / float(kLevels - 1);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    y[i].m = f32_to_fp16(min);
    uint8_t q[kQK];
    for (int j = 0; j < kQK; j++) q[j] = uint8_t(std::min(kLevels - 1, int((x[j] - min) * id + 0.5f)));
    if constexpr (kLevels == 16) pack_legacy(q, y[i].qs, nullptr);
    else pack_legacy(q, y[i].qs, y[i].qh);
  }
}

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; j++) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    for (int j = 0; j < kQK; j++) y[i].qs[j] = int8_t(std::round(x[j] * id));
  }
}

// Element j of a legacy block as its unsigned level (nibble plus optional fifth bit).
inline int legacy_level(const uint8_t* qs, const uint8_t* qh, int j) {
  const int nib = j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
  if (!qh) return nib;
  uint32_t high;
  std::memcpy(&high, qh, 4);
  return nib | int((high >> j) & 1) << 4;
}

// ---------------------------------------------------------------- K-quant scale searches

// Symmetric levels -nmax..nmax-1 for n values; returns the scale. rmse_type 1 weighs by x^2 and
// tries 18 nearby inverse scales, keeping the least weighted squared error (ggml's make_qx_quants).
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  if (amax < 1e-15f) {
    std::fill(L, L + n, 0);
    return 0.0f;
  }
  float iscale = -nmax / max;
  auto level = [&](float is, int i) { return std::max(-nmax, std::min(nmax - 1, nearest_int(is * x[i]))); };
  if (rmse_type == 0) {
    for (int i = 0; i < n; i++) L[i] = int8_t(nmax + level(iscale, i));
    return 1 / iscale;
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    const int l = level(iscale, i);
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; i++) {
      const int l = level(iscale, i);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; i++) L[i] = int8_t(nmax + level(iscale, i));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's sub-block search: start from the max-magnitude scale, then move single levels while the
// x^2-weighted fit improves (ggml's make_q3_quants with do_rmse). L gets levels + nmax.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  if (amax < 1e-15f) {
    std::fill(L, L + n, 0);
    return 0.0f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i])));
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; itry++) {
    int changed = 0;
    for (int i = 0; i < n; i++) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        int new_l = std::max(-nmax, std::min(nmax - 1, nearest_int(x[i] * sl2 / slx)));
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = int8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; i++) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0 ? sumlx / suml2 : 0.0f;
}

// Affine levels 0..nmax with a non-positive offset: x ~ scale * L - the_min. Tries nstep + 1
// inverse scales around nmax / (max - min), each followed by a weighted least-squares fit of
// scale and min, keeping the least weighted error (ggml's make_qkx2_quants).
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; i++) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, 0);
    *the_min = -min;
    return 0.0f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  auto err = [&](float diff) { return use_mad ? std::fabs(diff) : diff * diff; };
  float best_error = 0;
  for (int i = 0; i < n; i++) {
    L[i] = uint8_t(std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - min)))));
    best_error += weights[i] * err(scale * L[i] + min - x[i]);
  }
  uint8_t Laux[32];
  for (int is = 0; is <= nstep; is++) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; i++) {
      const int l = std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - min))));
      Laux[i] = uint8_t(l);
      sum_l += weights[i] * l;
      sum_l2 += weights[i] * l * l;
      sum_xl += weights[i] * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; i++) cur_error += weights[i] * err(this_scale * Laux[i] + this_min - x[i]);
      if (cur_error < best_error) {
        std::copy(Laux, Laux + n, L);
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// ---------------------------------------------------------------- K-quants

void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128)
    for (int l = 0; l < 32; l++)
      qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

void quantize_q2_k(const float* x, BlockQ2_K* y, int64_t nb) {
  uint8_t L[kQK_K];
  float weights[16], mins[16], scales[16];
  for (int64_t i = 0; i < nb; i++, x += kQK_K) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; j++) {
      for (int l = 0; l < 16; l++) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    if (max_scale > 0) {
      const float iscale = 15.0f / max_scale;
      for (int j = 0; j < 16; j++) y[i].scales[j] = uint8_t(nearest_int(iscale * scales[j]));
      y[i].d = f32_to_fp16(max_scale / 15.0f);
    } else {
      std::fill(y[i].scales, y[i].scales + 16, 0);
      y[i].d = f32_to_fp16(0.0f);
    }
    if (max_min > 0) {
      const float iscale = 15.0f / max_min;
      for (int j = 0; j < 16; j++) y[i].scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
      y[i].dmin = f32_to_fp16(max_min / 15.0f);
    } else {
      y[i].dmin = f32_to_fp16(0.0f);
    }
    // Re-fit the levels to the rounded scales.
    for (int j = 0; j < 16; j++) {
      const float d = half(y[i].d) * (y[i].scales[j] & 0xF);
      if (d == 0) continue;
      const float dm = half(y[i].dmin) * (y[i].scales[j] >> 4);
      for (int l = 0; l < 16; l++)
        L[16 * j + l] = uint8_t(std::max(0, std::min(3, nearest_int((x[16 * j + l] + dm) / d))));
    }
    pack_2bit(L, y[i].qs);
  }
}

void quantize_q3_k(const float* x, BlockQ3_K* y, int64_t nb) {
  int8_t L[kQK_K];
  float scales[16];
  for (int64_t i = 0; i < nb; i++, x += kQK_K) {
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; j++) {
      scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > amax) amax = std::fabs(scales[j]), max_scale = scales[j];
    }
    std::memset(y[i].scales, 0, 12);
    if (max_scale != 0) {
      const float iscale = -32.0f / max_scale;
      for (int j = 0; j < 16; j++) {
        const int l = std::max(-32, std::min(31, nearest_int(iscale * scales[j]))) + 32;
        if (j < 8) y[i].scales[j] = uint8_t(l & 0xF);
        else y[i].scales[j - 8] |= uint8_t((l & 0xF) << 4);
        y[i].scales[j % 4 + 8] |= uint8_t((l >> 4) << (2 * (j / 4)));
      }
      y[i].d = f32_to_fp16(1 / iscale);
    } else {
      y[i].d = f32_to_fp16(0.0f);
    }
    int8_t sc[16];
    q3_k_scales(y[i].scales, sc);
    for (int j = 0; j < 16; j++) {
      const float d = half(y[i].d) * sc[j];
      if (d == 0) continue;
      for (int l = 0; l < 16; l++)
        L[16 * j + l] = int8_t(std::max(-4, std::min(3, nearest_int(x[16 * j + l] / d))) + 4);
    }
    std::memset(y[i].hmask, 0, sizeof(y[i].hmask));
    uint8_t low[kQK_K];
    for (int j = 0; j < kQK_K; j++) {
      if (L[j] > 3) y[i].hmask[j % 32] |= uint8_t(1 << (j / 32));
      low[j] = uint8_t(L[j] & 3);
    }
    pack_2bit(low, y[i].qs);
  }
}

// Packs 6-bit scales and mins of 8 sub-blocks the Q4_K/Q5_K way.
void pack_scales_k4(const uint8_t* ls, const uint8_t* lm, uint8_t* out) {
  for (int j = 0; j < 8; j++) {
    if (j < 4) {
      out[j] = ls[j];
      out[j + 4] = lm[j];
    } else {
      out[j + 4] = uint8_t((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      out[j - 4] |= uint8_t((ls[j] >> 4) << 6);
      out[j] |= uint8_t((lm[j] >> 4) << 6);
    }
  }
}

// The common part of Q4_K and Q5_K: sub-block searches, scale packing and final levels (0..nmax).
template <typename Block>
void quantize_k4(const float* x, Block& y, uint8_t* L, int nmax, float rmin, int nstep) {
  float mins[8], scales[8], weights[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; j++) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; l++) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], rmin, 0.1f, nstep, false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; j++) {
    ls[j] = uint8_t(std::min(63, nearest_int(inv_scale * scales[j])));
    lm[j] = uint8_t(std::min(63, nearest_int(inv_min * mins[j])));
  }
  pack_scales_k4(ls, lm, y.scales);
  y.d = f32_to_fp16(max_scale / 63.0f);
  y.dmin = f32_to_fp16(max_min / 63.0f);
  for (int j = 0; j < 8; j++) {
    uint8_t sc, m;
    scale_min_k4(j, y.scales, &sc, &m);
    const float d = half(y.d) * sc;
    if (d == 0) continue;
    const float dm = half(y.dmin) * m;
    for (int l = 0; l < 32; l++)
      L[32 * j + l] = uint8_t(std::max(0, std::min(nmax, nearest_int((x[32 * j + l] + dm) / d))));
  }
}

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; i++, x += kQK_K) {
    quantize_k4(x, y[i], L, 15, -1.0f, 20);
    for (int k = 0; k < 4; k++)
      for (int l = 0; l < 32; l++) y[i].qs[32 * k + l] = uint8_t(L[64 * k + l] | (L[64 * k + 32 + l] << 4));
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; i++, x += kQK_K) {
    quantize_k4(x, y[i], L, 31, -0.5f, 15);
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int k = 0; k < 4; k++) {
      for (int l = 0; l < 32; l++) {
        const int a = L[64 * k + l], b = L[64 * k + 32 + l];
        y[i].qs[32 * k + l] = uint8_t((a & 0xF) | ((b & 0xF) << 4));
        y[i].qh[l] |= uint8_t(((a >> 4) << (2 * k)) | ((b >> 4) << (2 * k + 1)));
      }
    }
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
  int8_t L[kQK_K];
  float scales[16];
  for (int64_t i = 0; i < nb; i++, x += kQK_K) {
    float max_scale = 0, max_abs = 0;
    for (int j = 0; j < 16; j++) {
      scales[j] = make_qx_quants(16, 32, x + 16 * j, L + 16 * j, 1);
      if (std::fabs(scales[j]) > max_abs) max_abs = std::fabs(scales[j]), max_scale = scales[j];
    }
    if (max_abs < 1e-15f) {
      std::memset(&y[i], 0, sizeof(y[i]));
      continue;
    }
    const float iscale = -128.0f / max_scale;
    y[i].d = f32_to_fp16(1 / iscale);
    for (int j = 0; j < 16; j++) y[i].scales[j] = int8_t(std::min(127, nearest_int(iscale * scales[j])));
    for (int j = 0; j < 16; j++) {
      const float d = half(y[i].d) * y[i].scales[j];
      if (d == 0) continue;
      for (int l = 0; l < 16; l++)
        L[16 * j + l] = int8_t(std::max(-32, std::min(31, nearest_int(x[16 * j + l] / d))) + 32);
    }
    for (int h = 0; h < 2; h++) {
      const int8_t* e = L + 128 * h;
      uint8_t* ql = y[i].ql + 64 * h;
      uint8_t* qh = y[i].qh + 32 * h;
      for (int l = 0; l < 32; l++) {
        ql[l] = uint8_t((e[l] & 0xF) | ((e[l + 64] & 0xF) << 4));
        ql[l + 32] = uint8_t((e[l + 32] & 0xF) | ((e[l + 96] & 0xF) << 4));
        qh[l] = uint8_t((e[l] >> 4) | ((e[l + 32] >> 4) << 2) | ((e[l + 64] >> 4) << 4) | ((e[l + 96] >> 4) << 6));
      }
    }
  }
}

// ---------------------------------------------------------------- dequantization

// Element e (0..255) of a 2-bit packed super-block half layout (Q2_K, Q3_K low bits).
inline int level_2bit(const uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3; }

void dequantize_k(DType type, const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += kQK_K) {
    switch (type) {
      case DType::Q2_K: {
        const auto& b = reinterpret_cast<const BlockQ2_K*>(src)[i];
        const float d = half(b.d), dmin = half(b.dmin);
        for (int e = 0; e < kQK_K; e++) {
          const uint8_t sc = b.scales[e / 16];
          y[e] = d * (sc & 0xF) * level_2bit(b.qs, e) - dmin * (sc >> 4);
        }
        break;
      }
      case DType::Q3_K: {
        const auto& b = reinterpret_cast<const BlockQ3_K*>(src)[i];
        int8_t sc[16];
        q3_k_scales(b.scales, sc);
        const float d = half(b.d);
        for (int e = 0; e < kQK_K; e++) {
          const int high = (b.hmask[e % 32] >> (e / 32)) & 1;
          y[e] = d * sc[e / 16] * (level_2bit(b.qs, e) - (high ? 0 : 4));
        }
        break;
      }
      case DType::Q4_K:
      case DType::Q5_K: {
        const bool five = type == DType::Q5_K;
        const auto* b4 = reinterpret_cast<const BlockQ4_K*>(src) + i;
        const auto* b5 = reinterpret_cast<const BlockQ5_K*>(src) + i;
        const uint16_t dh = five ? b5->d : b4->d, mh = five ? b5->dmin : b4->dmin;
        const uint8_t* scales = five ? b5->scales : b4->scales;
        const uint8_t* qs = five ? b5->qs : b4->qs;
        for (int e = 0; e < kQK_K; e++) {
          const int k = e / 64, l = e % 32, hi = (e % 64) / 32;
          int q = (qs[32 * k + l] >> (4 * hi)) & 0xF;
          if (five) q |= ((b5->qh[l] >> (2 * k + hi)) & 1) << 4;
          uint8_t sc, m;
          scale_min_k4(e / 32, scales, &sc, &m);
          y[e] = half(dh) * sc * q - half(mh) * m;
        }
        break;
      }
      case DType::Q6_K: {
        const auto& b = reinterpret_cast<const BlockQ6_K*>(src)[i];
        const float d = half(b.d);
        for (int e = 0; e < kQK_K; e++) {
          const int h = e / 128, r = e % 128, l = r % 32, quarter = r / 32;
          const uint8_t low = b.ql[64 * h + l + 32 * (quarter & 1)] >> (4 * (quarter >> 1));
          const int q = (low & 0xF) | (((b.qh[32 * h + l] >> (2 * quarter)) & 3) << 4);
          y[e] = d * b.scales[e / 16] * (q - 32);
        }
        break;
      }
      default: throw Error(std::string("no K-quant dequantization for ") + dtype_name(type));
    }
  }
}

}  // namespace

void dequantize_row(DType type, const void* src_v, float* y, int64_t n) {
  const auto* src = static_cast<const uint8_t*>(src_v);
  const int64_t nb = n / std::max(1, dtype_block_size(type));
  switch (type) {
    case DType::F32: std::memcpy(y, src, size_t(n) * 4); return;
    case DType::F16:
    case DType::BF16:
      for (int64_t k = 0; k < n; k++) {
        uint16_t h;
        std::memcpy(&h, src + 2 * k, 2);
        y[k] = type == DType::F16 ? fp16_to_f32(h) : bf16_to_f32(h);
      }
      return;
    case DType::Q4_0:
      for (int64_t i = 0; i < nb; i++) {
        const auto& b = reinterpret_cast<const BlockQ4_0*>(src)[i];
        for (int j = 0; j < kQK; j++) y[kQK * i + j] = half(b.d) * float(legacy_level(b.qs, nullptr, j) - 8);
      }
      return;
    case DType::Q4_1:
      for (int64_t i = 0; i < nb; i++) {
        const auto& b = reinterpret_cast<const BlockQ4_1*>(src)[i];
        for (int j = 0; j < kQK; j++) y[kQK * i + j] = half(b.d) * float(legacy_level(b.qs, nullptr, j)) + half(b.m);
      }
      return;
    case DType::Q5_0:
      for (int64_t i = 0; i < nb; i++) {
        const auto& b = reinterpret_cast<const BlockQ5_0*>(src)[i];
        for (int j = 0; j < kQK; j++) y[kQK * i + j] = half(b.d) * float(legacy_level(b.qs, b.qh, j) - 16);
      }
      return;
    case DType::Q5_1:
      for (int64_t i = 0; i < nb; i++) {
        const auto& b = reinterpret_cast<const BlockQ5_1*>(src)[i];
        for (int j = 0; j < kQK; j++) y[kQK * i + j] = half(b.d) * float(legacy_level(b.qs, b.qh, j)) + half(b.m);
      }
      return;
    case DType::Q8_0:
      for (int64_t i = 0; i < nb; i++) {
        const auto& b = reinterpret_cast<const BlockQ8_0*>(src)[i];
        for (int j = 0; j < kQK; j++) y[kQK * i + j] = half(b.d) * float(b.qs[j]);
      }
      return;
    case DType::Q8_K:
      for (int64_t i = 0; i < nb; i++) {
        const auto& b = reinterpret_cast<const BlockQ8_K*>(src)[i];
        for (int j = 0; j < kQK_K; j++) y[kQK_K * i + j] = b.d * float(b.qs[j]);
      }
      return;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: dequantize_k(type, src, y, nb); return;
  }
  throw Error(std::string("cannot dequantize tensor type ") + dtype_name(type));
}

void quantize_row(DType type, const float* x, void* dst, int64_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  dtype_row_bytes(type, n);  // throws when n is not a whole number of blocks
  const int64_t nb = n / dtype_block_size(type);
  switch (type) {
    case DType::F32: std::memcpy(out, x, size_t(n) * 4); return;
    case DType::F16:
    case DType::BF16:
      for (int64_t k = 0; k < n; k++) {
        const uint16_t h = type == DType::F16 ? f32_to_fp16(x[k]) : f32_to_bf16(x[k]);
        std::memcpy(out + 2 * k, &h, 2);
      }
      return;
    case DType::Q4_0: quantize_symmetric<BlockQ4_0, 16>(x, reinterpret_cast<BlockQ4_0*>(out), nb); return;
    case DType::Q5_0: quantize_symmetric<BlockQ5_0, 32>(x, reinterpret_cast<BlockQ5_0*>(out), nb); return;
    case DType::Q4_1: quantize_affine<BlockQ4_1, 16>(x, reinterpret_cast<BlockQ4_1*>(out), nb); return;
    case DType::Q5_1: quantize_affine<BlockQ5_1, 32>(x, reinterpret_cast<BlockQ5_1*>(out), nb); return;
    case DType::Q8_0: quantize_q8_0(x, reinterpret_cast<BlockQ8_0*>(out), nb); return;
    case DType::Q2_K: quantize_q2_k(x, reinterpret_cast<BlockQ2_K*>(out), nb); return;
    case DType::Q3_K: quantize_q3_k(x, reinterpret_cast<BlockQ3_K*>(out), nb); return;
    case DType::Q4_K: quantize_q4_k(x, reinterpret_cast<BlockQ4_K*>(out), nb); return;
    case DType::Q5_K: quantize_q5_k(x, reinterpret_cast<BlockQ5_K*>(out), nb); return;
    case DType::Q6_K: quantize_q6_k(x, reinterpret_cast<BlockQ6_K*>(out), nb); return;
    case DType::Q8_K: quantize_row_q8_k(x, reinterpret_cast<BlockQ8_K*>(out), n); return;
  }
  throw Error(std::string("cannot quantize to tensor type ") + dtype_name(type));
}

void quantize_row_q8_k(const float* x, BlockQ8_K* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; i++, x += kQK_K) {
    float max = 0, amax = 0;
    for (int j = 0; j < kQK_K; j++)
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(y[i]));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQK_K; j++) y[i].qs[j] = int8_t(std::min(127, nearest_int(iscale * x[j])));
    for (int j = 0; j < 16; j++) {
      int sum = 0;
      for (int l = 0; l < 16; l++) sum += y[i].qs[16 * j + l];
      y[i].bsums[j] = int16_t(sum);
    }
    y[i].d = 1 / iscale;
  }
}

}  // namespace ilm::quant
