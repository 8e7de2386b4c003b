#pragma once
// Every quantized weight block in one of two canonical integer forms, so that one dot-product
// engine per form serves all types (the SIMD files unpack into registers with the same meaning):
//
//  LegacyBlock (32 weights):  w_j = d * v_j + m     v_j signed levels (q - offset, or q for Q4_1/Q5_1)
//  KBlock (256 weights):      w_e = d * sc[e/16] * u_e - dmin * mn[e/16]     u_e unsigned levels
//
// Against activations x = dx * q (ActFormat Q8_0 / Q8_K) the dot products become integer sums:
//  legacy:  d * dx * sum v q  +  m * s          (s = dx * sum q, as llama.cpp's Q8_1 stores it)
//  K:       d * dx * sum_j sc_j sum_(e in j) u_e q_e  -  dmin * dx * sum_j mn_j bsum_j
#include <cstdint>

#include "model/tensor.h"

namespace ilm::cpu {

struct LegacyBlock {
  int8_t v[32];
  float d;
  float m;  // Q4_1/Q5_1 minimum, else 0
};

struct KBlock {
  uint8_t u[256];
  int16_t sc[16];
  int16_t mn[16];
  float d, dmin;
};

// Block i of a row of the given type (scalar reference unpacking).
void unpack_legacy(DType type, const uint8_t* row, int i, LegacyBlock& out);
void unpack_k(DType type, const uint8_t* row, int i, KBlock& out);

}  // namespace ilm::cpu
