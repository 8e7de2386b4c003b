#pragma once
// ggml's quantized block layouts, byte for byte (ggml-common.h defines them; these are our own
// declarations of the same bytes). Scales are fp16 bit patterns (util/half.h converts them).
//
// 32-element blocks ("legacy" types):  w = d * q (Q8_0), d * (q - 8) (Q4_0), d * (q - 16) (Q5_0),
//   d * q + m (Q4_1, Q5_1); byte j of qs holds element j in its low nibble and j + 16 in its high one.
// 256-element super-blocks (K-quants): sub-blocks of 16 or 32 with quantized scales (and mins),
//   themselves scaled by the fp16 d (and dmin) of the super-block.
#include <cstdint>

namespace ilm::quant {

constexpr int kQK = 32;    // elements per legacy block
constexpr int kQK_K = 256; // elements per K-quant super-block

struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // bit j: the fifth bit of element j
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};

// w = d * (scales[j] & 15) * q - dmin * (scales[j] >> 4), 16 sub-blocks of 16, q in 0..3.
// qs[32 * h + l] holds elements 128 h + l (bits 0-1), + 32 (bits 2-3), + 64, + 96.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d, dmin;
};
// w = d * (s_j - 32) * (q - (high bit ? 0 : 4)), 16 sub-blocks of 16 with 6-bit s_j packed in
// scales[12]; low 2 bits as in Q2_K, hmask[l] bit k is the high bit of element 32 k + l.
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
// w = d * sc_j * q - dmin * m_j, 8 sub-blocks of 32 with 6-bit sc_j, m_j packed in scales[12];
// qs[32 * k + l] holds element 64 k + l (low nibble) and 64 k + 32 + l (high nibble).
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
// As Q4_K plus a fifth bit: qh[l] bit 2k is element 64 k + l's, bit 2k + 1 element 64 k + 32 + l's.
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
// w = d * scales[j] * (q - 32), 16 sub-blocks of 16, q in 0..63 from 4 low bits (ql) and
// 2 high bits (qh); per 128 elements: ql[l] = e[l] | e[l+64] << 4, ql[l+32] = e[l+32] | e[l+96] << 4,
// qh[l] = e[l] | e[l+32] << 2 | e[l+64] << 4 | e[l+96] << 6 (high bits).
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
// Activations for K-quant dot products: x = d * q, bsums[j] = sum of q over elements 16 j..16 j+15.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20, "legacy 4-bit block size");
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24, "legacy 5-bit block size");
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block size");
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110, "Q2_K/Q3_K block size");
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176, "Q4_K/Q5_K block size");
static_assert(sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292, "Q6_K/Q8_K block size");

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block.
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// The signed scales s_j - 32 (j = 0..15) of a Q3_K super-block.
inline void q3_k_scales(const uint8_t* packed, int8_t* out) {
  for (int j = 0; j < 16; j++) {
    const int low = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
    const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = int8_t((low | (high << 4)) - 32);
  }
}

}  // namespace ilm::quant
