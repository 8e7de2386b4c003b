// Portable kernels for quantized weights: unpack each block into its canonical form (kquant.h),
// then exact integer dot products against quantized activations. Also the reference activation
// quantizers every ISA must reproduce.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/kernels.h"
#include "cpu/kquant.h"
#include "util/half.h"

namespace ilm::cpu {

using namespace quant;

void unpack_legacy(DType type, const uint8_t* row, int i, LegacyBlock& out) {
  // Levels from nibbles and optional fifth bits, minus the type's offset.
  auto levels = [&](const uint8_t* qs, const uint8_t* qh, int offset) {
    uint32_t high = 0;
    if (qh) std::memcpy(&high, qh, 4);
    for (int j = 0; j < 16; j++) {
      out.v[j] = int8_t(((qs[j] & 0xF) | (((high >> j) & 1) << 4)) - offset);
      out.v[j + 16] = int8_t(((qs[j] >> 4) | (((high >> (j + 16)) & 1) << 4)) - offset);
    }
  };
  out.m = 0;
  switch (type) {
    case DType::Q4_0: {
      const auto& b = reinterpret_cast<const BlockQ4_0*>(row)[i];
      levels(b.qs, nullptr, 8);
      out.d = fp16_to_f32(b.d);
      return;
    }
    case DType::Q4_1: {
      const auto& b = reinterpret_cast<const BlockQ4_1*>(row)[i];
      levels(b.qs, nullptr, 0);
      out.d = fp16_to_f32(b.d), out.m = fp16_to_f32(b.m);
      return;
    }
    case DType::Q5_0: {
      const auto& b = reinterpret_cast<const BlockQ5_0*>(row)[i];
      levels(b.qs, b.qh, 16);
      out.d = fp16_to_f32(b.d);
      return;
    }
    case DType::Q5_1: {
      const auto& b = reinterpret_cast<const BlockQ5_1*>(row)[i];
      levels(b.qs, b.qh, 0);
      out.d = fp16_to_f32(b.d), out.m = fp16_to_f32(b.m);
      return;
    }
    case DType::Q8_0: {
      const auto& b = reinterpret_cast<const BlockQ8_0*>(row)[i];
      std::memcpy(out.v, b.qs, 32);
      out.d = fp16_to_f32(b.d);
      return;
    }
    default: break;
  }
}

namespace {

// Level of element e (0..255) in the 2-bit layout of Q2_K/Q3_K.
inline int level_2bit(const uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3; }

}  // namespace

void unpack_k(DType type, const uint8_t* row, int i, KBlock& out) {
  switch (type) {
    case DType::Q2_K: {
      const auto& b = reinterpret_cast<const BlockQ2_K*>(row)[i];
      for (int e = 0; e < 256; e++) out.u[e] = uint8_t(level_2bit(b.qs, e));
      for (int j = 0; j < 16; j++) out.sc[j] = int16_t(b.scales[j] & 0xF), out.mn[j] = int16_t(b.scales[j] >> 4);
      out.d = fp16_to_f32(b.d), out.dmin = fp16_to_f32(b.dmin);
      return;
    }
    case DType::Q3_K: {
      const auto& b = reinterpret_cast<const BlockQ3_K*>(row)[i];
      for (int e = 0; e < 256; e++) out.u[e] = uint8_t(level_2bit(b.qs, e) | (((b.hmask[e % 32] >> (e / 32)) & 1) << 2));
      int8_t s[16];
      q3_k_scales(b.scales, s);
      for (int j = 0; j < 16; j++) out.sc[j] = s[j], out.mn[j] = int16_t(4 * s[j]);
      out.d = out.dmin = fp16_to_f32(b.d);
      return;
    }
    case DType::Q4_K:
    case DType::Q5_K: {
      const bool five = type == DType::Q5_K;
      const auto* b4 = reinterpret_cast<const BlockQ4_K*>(row) + i;
      const auto* b5 = reinterpret_cast<const BlockQ5_K*>(row) + i;
      const uint8_t* qs = five ? b5->qs : b4->qs;
      const uint8_t* scales = five ? b5->scales : b4->scales;
      for (int e = 0; e < 256; e++) {
        const int k = e / 64, hi = (e % 64) / 32, l = e % 32;
        int q = (qs[32 * k + l] >> (4 * hi)) & 0xF;
        if (five) q |= ((b5->qh[l] >> (2 * k + hi)) & 1) << 4;
        out.u[e] = uint8_t(q);
      }
      for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        scale_min_k4(j, scales, &sc, &m);
        out.sc[2 * j] = out.sc[2 * j + 1] = sc;
        out.mn[2 * j] = out.mn[2 * j + 1] = m;
      }
      out.d = fp16_to_f32(five ? b5->d : b4->d);
      out.dmin = fp16_to_f32(five ? b5->dmin : b4->dmin);
      return;
    }
    case DType::Q6_K: {
      const auto& b = reinterpret_cast<const BlockQ6_K*>(row)[i];
      for (int e = 0; e < 256; e++) {
        const int h = e / 128, r = e % 128, l = r % 32, quarter = r / 32;
        const int low = (b.ql[64 * h + l + 32 * (quarter & 1)] >> (4 * (quarter >> 1))) & 0xF;
        out.u[e] = uint8_t(low | (((b.qh[32 * h + l] >> (2 * quarter)) & 3) << 4));
      }
      for (int j = 0; j < 16; j++) out.sc[j] = b.scales[j], out.mn[j] = int16_t(32 * b.scales[j]);
      out.d = out.dmin = fp16_to_f32(b.d);
      return;
    }
    default: break;
  }
}

namespace {

// Each weight block is unpacked once per row and reused for up to kTokens activations.
constexpr int kTokens = 16;

template <DType kType>
void gemm_legacy(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int nt, int n) {
  const int nb = n / 32;
  LegacyBlock blk;
  for (int t0 = 0; t0 < nt; t0 += kTokens) {
    const int tn = std::min(kTokens, nt - t0);
    for (int r = 0; r < nr; r++) {
      float sum[kTokens] = {};
      for (int i = 0; i < nb; i++) {
        unpack_legacy(kType, W + size_t(r) * ldw, i, blk);
        for (int t = 0; t < tn; t++) {
          const ActPair x = act_pair(X + size_t(t0 + t) * ldx, i);
          const uint8_t* xu = x.xu(i % 2);
          int32_t dot = 0;
          for (int j = 0; j < 32; j++) dot += int32_t(blk.v[j]) * (int32_t(xu[j]) - 128);
          sum[t] += blk.d * x.d(i % 2)[0] * float(dot) + blk.m * x.s(i % 2)[0] * 8.0f;
        }
      }
      for (int t = 0; t < tn; t++) Y[size_t(t0 + t) * ldy + r] = sum[t];
    }
  }
}

template <DType kType>
void gemm_k(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y, size_t ldy, int nr, int nt, int n) {
  const int nb = n / 256;
  KBlock blk;
  for (int t0 = 0; t0 < nt; t0 += kTokens) {
    const int tn = std::min(kTokens, nt - t0);
    for (int r = 0; r < nr; r++) {
      float sum[kTokens] = {};
      for (int i = 0; i < nb; i++) {
        unpack_k(kType, W + size_t(r) * ldw, i, blk);
        for (int t = 0; t < tn; t++) {
          const ActQ8K x = act_q8_k(X + size_t(t0 + t) * ldx, i);
          int32_t dot = 0;
          float mins = 0;
          for (int j = 0; j < 16; j++) {
            int32_t part = 0;
            for (int e = 16 * j; e < 16 * j + 16; e++) part += int32_t(blk.u[e]) * x.q()[e];
            dot += blk.sc[j] * part;
            mins += blk.dmin * float(blk.mn[j]) * x.bsums()[j];
          }
          sum[t] += blk.d * x.d() * float(dot) - mins;
        }
      }
      for (int t = 0; t < tn; t++) Y[size_t(t0 + t) * ldy + r] = sum[t];
    }
  }
}

// llama.cpp's activation rounding (its AVX2 quantize_row_q8_0): d = amax / 127 stored as fp16,
// q = round-half-even(x * 127 / amax); s as its Q8_1 (for Q4_1/Q5_1): fp16(amax / 127 * sum(q)).
void quantize_q8_0(const float* x, uint8_t* row, int n) {
  const int nb = n / 32;
  std::memset(row, 0, act_row_bytes(ActFormat::Q8_0, n));
  for (int i = 0; i < nb + nb % 2; i++) {
    const ActPair a = act_pair(row, i);
    auto* xu = const_cast<uint8_t*>(a.xu(i % 2));
    auto* d8 = const_cast<float*>(a.d(i % 2));
    auto* s8 = const_cast<float*>(a.s(i % 2));
    if (i == nb) {  // the zero block pairing an odd last one
      std::memset(xu, 128, 32);
      continue;
    }
    const float* v = x + 32 * i;
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(v[j]));
    const float d = fp16_to_f32(f32_to_fp16(amax / 127.0f));
    const float id = amax != 0 ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < 32; j++) {
      const int q = int(std::nearbyint(v[j] * id));
      xu[j] = uint8_t(q + 128);
      sum += q;
    }
    const float s = fp16_to_f32(f32_to_fp16(amax / 127.0f * float(sum))) * 0.125f;
    for (int l = 0; l < 8; l++) d8[l] = d, s8[l] = s;
  }
}

// ggml's quantize_row_q8_K_ref, which llama.cpp uses on x86: the signed value of largest
// magnitude maps to -127.
void quantize_q8_k(const float* x, uint8_t* row, int n) {
  for (int i = 0; i < n / 256; i++) {
    const ActQ8K a = act_q8_k(row, i);
    auto* q = const_cast<int8_t*>(a.q());
    auto* d16 = const_cast<float*>(a.d16());
    auto* bsums = const_cast<float*>(a.bsums());
    const float* v = x + 256 * i;
    float max = 0, amax = 0;
    for (int j = 0; j < 256; j++)
      if (std::fabs(v[j]) > amax) amax = std::fabs(v[j]), max = v[j];
    const float iscale = amax != 0 ? -127.0f / max : 0.0f;
    const float d = amax != 0 ? 1 / iscale : 0.0f;
    for (int j = 0; j < 256; j++) q[j] = int8_t(std::min(127, int(std::nearbyint(iscale * v[j]))));
    for (int j = 0; j < 16; j++) {
      int sum = 0;
      for (int l = 0; l < 16; l++) sum += q[16 * j + l];
      bsums[j] = d * float(sum);
      d16[j] = d;
    }
  }
}

}  // namespace

void add_quant_kernels_generic(KernelTable& t) {
  t.gemm_q4_0 = gemm_legacy<DType::Q4_0>;
  t.gemm_q4_1 = gemm_legacy<DType::Q4_1>;
  t.gemm_q5_0 = gemm_legacy<DType::Q5_0>;
  t.gemm_q5_1 = gemm_legacy<DType::Q5_1>;
  t.gemm_q8_0 = gemm_legacy<DType::Q8_0>;
  t.gemm_q2_k = gemm_k<DType::Q2_K>;
  t.gemm_q3_k = gemm_k<DType::Q3_K>;
  t.gemm_q4_k = gemm_k<DType::Q4_K>;
  t.gemm_q5_k = gemm_k<DType::Q5_K>;
  t.gemm_q6_k = gemm_k<DType::Q6_K>;
  t.quantize_q8_0 = quantize_q8_0;
  t.quantize_q8_k = quantize_q8_k;
}

}  // namespace ilm::cpu
