#pragma once
// GGUF's low-bit block types (Q4_0, Q4_1, Q5_0, Q5_1, Q2_K .. Q6_K) as the CUDA kernels read
// them: straight from the file's bytes, 32 weights at a time. Plain C++ for the host too, so a
// CPU test (tools/block_check.cpp) holds every decoder to the CPU's dequantize_row bit for bit.
//
// A group of 32 consecutive weights of a row comes out as 32 int8 codes plus a scale and an
// offset per half (16 weights): w = scale * code + offset, exactly the float the CPU's
// dequantization computes ((d * sc) * q - dmin * m and the like, in that order). The byte
// layouts are quant/blocks.h's; the offsets below are into one block.
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "util/half.h"
#ifdef __CUDACC__
#include <cuda_fp16.h>
#endif

#ifdef __CUDACC__
#define ILM_HD __host__ __device__ __forceinline__
#define ILM_UNROLL _Pragma("unroll")
#else
#define ILM_HD inline
#define ILM_UNROLL
#endif

namespace ilm::cuda {

enum class BlockType : uint8_t { Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K };
constexpr int kBlockTypes = 9;

ILM_HD constexpr int block_values(BlockType t) { return int(t) >= int(BlockType::Q2_K) ? 256 : 32; }

ILM_HD constexpr int block_bytes(BlockType t) {
  switch (t) {
    case BlockType::Q4_0: return 18;
    case BlockType::Q4_1: return 20;
    case BlockType::Q5_0: return 22;
    case BlockType::Q5_1: return 24;
    case BlockType::Q2_K: return 84;
    case BlockType::Q3_K: return 110;
    case BlockType::Q4_K: return 144;
    case BlockType::Q5_K: return 176;
    case BlockType::Q6_K: return 210;
  }
  return 0;
}

struct Group32 {
  uint32_t codes[8];  // weight 4j + k is the signed byte k of codes[j]
  float scale[2];     // halves: weights 0..15, 16..31
  float offset[2];
};

// The project's fp16 conversion on the host (util/half.h), the hardware's on the device.
ILM_HD float f16_bits_to_f32(uint16_t h) {
#ifdef __CUDA_ARCH__
  return __half2float(__ushort_as_half(h));
#else
  return fp16_to_f32(h);
#endif
}

namespace blocks {

ILM_HD uint16_t u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
ILM_HD float f16(const uint8_t* p) { return f16_bits_to_f32(u16(p)); }
ILM_HD void same_halves(Group32& g, float scale, float offset) {
  g.scale[0] = g.scale[1] = scale;
  g.offset[0] = g.offset[1] = offset;
}

// Four bytes, little-endian, from a 4-byte (word4) or 2-byte (word2) aligned address on the
// device; any address on the host. Blocks of 20, 24 and 84 bytes keep 4-byte alignment in rows
// of whole blocks, those of 18, 22, 110 and 210 only 2-byte (block_rows_aligned).
ILM_HD uint32_t word4(const uint8_t* p) {
#ifdef __CUDA_ARCH__
  return __ldg(reinterpret_cast<const unsigned int*>(p));
#else
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
#endif
}
ILM_HD uint32_t word2(const uint8_t* p) {
#ifdef __CUDA_ARCH__
  const unsigned short* h = reinterpret_cast<const unsigned short*>(p);
  return uint32_t(__ldg(h)) | uint32_t(__ldg(h + 1)) << 16;
#else
  return word4(p);
#endif
}

// a - b in each byte, wrapping (int8 codes from offset-binary levels: level - bias).
ILM_HD uint32_t sub_bytes(uint32_t a, uint32_t b) {
  return ((a | 0x80808080u) - (b & 0x7F7F7F7Fu)) ^ ((a ^ ~b) & 0x80808080u);
}

// Bits 0..3 of x to bit 4 of bytes 0..3 (the fifth bits of four consecutive weights).
ILM_HD uint32_t fifth_bits(uint32_t x) {
  return ((x & 1u) | ((x & 2u) << 7) | ((x & 4u) << 14) | ((x & 8u) << 21)) << 4;
}

// Q4_0 / Q4_1 / Q5_0 / Q5_1: one block is one group; weight j is the low nibble of qs[j]
// (j < 16) or the high nibble of qs[j - 16], its fifth bit bit j of qh. Four weights per word.
template <BlockType T>
ILM_HD void legacy(const uint8_t* b, Group32& g) {
  constexpr bool has_min = T == BlockType::Q4_1 || T == BlockType::Q5_1;
  constexpr bool five = T == BlockType::Q5_0 || T == BlockType::Q5_1;
  const uint8_t* qh = b + (has_min ? 4 : 2);
  const uint8_t* qs = qh + (five ? 4 : 0);
  uint32_t high = 0;
  if constexpr (five) high = has_min ? word4(qh) : word2(qh);
  constexpr uint32_t bias = has_min ? 0u : five ? 0x10101010u : 0x08080808u;
  ILM_UNROLL
  for (int i = 0; i < 4; i++) {
    const uint32_t w = has_min ? word4(qs + 4 * i) : word2(qs + 4 * i);
    uint32_t lo = w & 0x0F0F0F0Fu, hi = (w >> 4) & 0x0F0F0F0Fu;
    if constexpr (five) {
      lo |= fifth_bits(high >> (4 * i));
      hi |= fifth_bits(high >> (16 + 4 * i));
    }
    g.codes[i] = has_min ? lo : sub_bytes(lo, bias);
    g.codes[4 + i] = has_min ? hi : sub_bytes(hi, bias);
  }
  same_halves(g, f16(b), has_min ? f16(b + 2) : 0.0f);
}

// 16 bytes as four little-endian words: one vector load on the device (p must be 16-byte aligned
// there), a copy on the host.
struct Bytes16 {
  uint32_t w[4];
};
ILM_HD Bytes16 load16(const uint8_t* p) {
#ifdef __CUDA_ARCH__
  const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
  return {{v.x, v.y, v.z, v.w}};
#else
  Bytes16 b;
  std::memcpy(b.w, p, 16);
  return b;
#endif
}

// Sub-block s (32 weights) of a Q4_K or Q5_K super-block. Both block sizes (144, 176 bytes) are
// multiples of 16 and so is every field used here, so whole 16-byte loads read it (rows of whole
// blocks start aligned): the header (d, dmin, 12 bytes of scales), the 32 quant bytes of s, and
// for Q5_K the 32 bytes of fifth bits. qs[32 k + l] holds weight 64 k + l in its low nibble and
// 64 k + 32 + l in its high one, so sub-block s's codes are one nibble of each byte, four at a
// time; bit s of qh[l] is the fifth bit of its weight l.
ILM_HD void k4(const uint8_t* b, bool five, int s, Group32& g) {
  const Bytes16 head = load16(b);
  const uint8_t* qs = b + (five ? 48 : 16) + 32 * (s / 2);
  const Bytes16 q[2] = {load16(qs), load16(qs + 16)};
  const int shift = 4 * (s % 2);
  ILM_UNROLL
  for (int j = 0; j < 8; j++) g.codes[j] = (q[j / 4].w[j % 4] >> shift) & 0x0F0F0F0Fu;
  if (five) {
    const Bytes16 h[2] = {load16(b + 16), load16(b + 32)};
    ILM_UNROLL
    for (int j = 0; j < 8; j++) g.codes[j] |= ((h[j / 4].w[j % 4] >> s) & 0x01010101u) << 4;
  }
  // The 6-bit scale and min of sub-block s from the header's bytes 4..15 (quant/blocks.h's
  // scale_min_k4), kept in registers: no local array.
  auto scale_byte = [&](int i) {  // s varies per thread: selects, not an indexed (local memory) array
    const int k = (4 + i) / 4;
    const uint32_t w = k == 1 ? head.w[1] : k == 2 ? head.w[2] : head.w[3];
    return int((w >> (8 * ((4 + i) % 4))) & 0xFF);
  };
  int sc, m;
  if (s < 4) {
    sc = scale_byte(s) & 63;
    m = scale_byte(s + 4) & 63;
  } else {
    sc = (scale_byte(s + 4) & 0xF) | ((scale_byte(s - 4) >> 6) << 4);
    m = (scale_byte(s + 4) >> 4) | ((scale_byte(s) >> 6) << 4);
  }
  const float d = f16_bits_to_f32(uint16_t(head.w[0])), dmin = f16_bits_to_f32(uint16_t(head.w[0] >> 16));
  same_halves(g, d * float(sc), -(dmin * float(m)));
}

// Q2_K / Q3_K 2-bit levels: qs[32 h + l] holds weights 128 h + l, + 32, + 64, + 96 in bits 0-1,
// 2-3, 4-5, 6-7, so sub-block s (32 weights) is one bit pair of 32 consecutive bytes.
ILM_HD void q2_k(const uint8_t* b, int s, Group32& g) {
  const uint8_t* qs = b + 16 + 32 * (s / 4);
  const int shift = 2 * (s % 4);
  ILM_UNROLL
  for (int j = 0; j < 8; j++) g.codes[j] = (word4(qs + 4 * j) >> shift) & 0x03030303u;
  const float d = f16(b + 80), dmin = f16(b + 82);
  ILM_UNROLL
  for (int h = 0; h < 2; h++) {
    const int sc = b[2 * s + h];  // scales[16]: low nibble scale, high nibble min
    g.scale[h] = d * float(sc & 0xF);
    g.offset[h] = -(dmin * float(sc >> 4));
  }
}

// w = d * (s_j - 32) * (level - (high bit ? 0 : 4)): the code is (level | high << 2) - 4.
ILM_HD void q3_k(const uint8_t* b, int s, Group32& g) {
  const uint8_t* qs = b + 32 + 32 * (s / 4);
  const int shift = 2 * (s % 4);
  ILM_UNROLL
  for (int j = 0; j < 8; j++) {
    const uint32_t level = (word2(qs + 4 * j) >> shift) & 0x03030303u;
    const uint32_t high = (word2(b + 4 * j) >> s) & 0x01010101u;  // hmask[l] bit k: weight 32 k + l
    g.codes[j] = sub_bytes(level | high << 2, 0x04040404u);
  }
  const uint8_t* packed = b + 96;
  const float d = f16(b + 108);
  ILM_UNROLL
  for (int h = 0; h < 2; h++) {
    const int j = 2 * s + h;  // 6-bit scale j, stored as low nibbles then high 2-bit pairs
    const int low = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
    const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    g.scale[h] = d * float((low | (high << 4)) - 32);
    g.offset[h] = 0.0f;
  }
}

// w = d * scale * (q - 32): per 128 weights, ql[l] = q[l] | q[l + 64] << 4, ql[l + 32] = q[l + 32] |
// q[l + 96] << 4, and qh[l] holds the high bit pairs of q[l], q[l + 32], q[l + 64], q[l + 96].
ILM_HD void q6_k(const uint8_t* b, int s, Group32& g) {
  const int h = s / 4, quarter = s % 4;  // 32 weights = one quarter of a 128-weight half
  const uint8_t* ql = b + 64 * h + 32 * (quarter & 1);
  const uint8_t* qh = b + 128 + 32 * h;
  const int low_shift = 4 * (quarter >> 1), high_shift = 2 * quarter;
  ILM_UNROLL
  for (int j = 0; j < 8; j++) {
    const uint32_t low = (word2(ql + 4 * j) >> low_shift) & 0x0F0F0F0Fu;
    const uint32_t high = ((word2(qh + 4 * j) >> high_shift) & 0x03030303u) << 4;
    g.codes[j] = sub_bytes(low | high, 0x20202020u);
  }
  const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16(b + 208);
  ILM_UNROLL
  for (int k = 0; k < 2; k++) {
    g.scale[k] = d * float(scales[2 * s + k]);
    g.offset[k] = 0.0f;
  }
}

}  // namespace blocks

// Group `group` (weights 32 group .. 32 group + 31) of a row whose blocks start at `row`.
template <BlockType T>
ILM_HD void unpack_group(const uint8_t* row, int group, Group32& g) {
  if constexpr (block_values(T) == 32) {
    blocks::legacy<T>(row + size_t(group) * block_bytes(T), g);
  } else {
    const uint8_t* b = row + size_t(group / 8) * block_bytes(T);
    const int s = group % 8;
    if constexpr (T == BlockType::Q2_K) blocks::q2_k(b, s, g);
    if constexpr (T == BlockType::Q3_K) blocks::q3_k(b, s, g);
    if constexpr (T == BlockType::Q4_K) blocks::k4(b, false, s, g);
    if constexpr (T == BlockType::Q5_K) blocks::k4(b, true, s, g);
    if constexpr (T == BlockType::Q6_K) blocks::q6_k(b, s, g);
  }
}


// Calls fn(std::integral_constant<BlockType, t>{}): a kernel template instantiated per type, chosen
// at run time (host code).
template <typename Fn>
void with_block_type(BlockType t, Fn&& fn) {
  using BT = BlockType;
  switch (t) {
    case BT::Q4_0: fn(std::integral_constant<BT, BT::Q4_0>{}); return;
    case BT::Q4_1: fn(std::integral_constant<BT, BT::Q4_1>{}); return;
    case BT::Q5_0: fn(std::integral_constant<BT, BT::Q5_0>{}); return;
    case BT::Q5_1: fn(std::integral_constant<BT, BT::Q5_1>{}); return;
    case BT::Q2_K: fn(std::integral_constant<BT, BT::Q2_K>{}); return;
    case BT::Q3_K: fn(std::integral_constant<BT, BT::Q3_K>{}); return;
    case BT::Q4_K: fn(std::integral_constant<BT, BT::Q4_K>{}); return;
    case BT::Q5_K: fn(std::integral_constant<BT, BT::Q5_K>{}); return;
    case BT::Q6_K: fn(std::integral_constant<BT, BT::Q6_K>{}); return;
  }
}

// The alignment the device decoders read blocks with: 16-byte loads for Q4_K / Q5_K (144, 176
// bytes), 4-byte for Q4_1 / Q5_1 / Q2_K (20, 24, 84), 2-byte for the rest (18, 22, 110, 210).
// Rows of whole blocks in an aligned allocation keep it.
inline size_t block_alignment(BlockType t) {
  switch (t) {
    case BlockType::Q4_K:
    case BlockType::Q5_K: return 16;
    case BlockType::Q4_1:
    case BlockType::Q5_1:
    case BlockType::Q2_K: return 4;
    default: return 2;
  }
}
inline bool block_rows_aligned(BlockType t, const void* data, size_t row_bytes) {
  const size_t a = block_alignment(t);
  return reinterpret_cast<uintptr_t>(data) % a == 0 && row_bytes % a == 0;
}

// The same for a type known only at run time (host tools and tests).
inline void unpack_group(BlockType t, const uint8_t* row, int group, Group32& g) {
  with_block_type(t, [&](auto type) { unpack_group<decltype(type)::value>(row, group, g); });
}

// Weight i (0..31) of an unpacked group, as the CPU's dequantization computes it: no fused
// multiply-add (nvcc would contract scale * code + offset).
ILM_HD int group_code(const Group32& g, int i) { return int(int8_t(g.codes[i / 4] >> (8 * (i % 4)))); }
ILM_HD float group_weight(const Group32& g, int i) {
  const float s = g.scale[i / 16], o = g.offset[i / 16], q = float(group_code(g, i));
#ifdef __CUDA_ARCH__
  return __fadd_rn(__fmul_rn(s, q), o);
#else
  return s * q + o;
#endif
}

}  // namespace ilm::cuda
