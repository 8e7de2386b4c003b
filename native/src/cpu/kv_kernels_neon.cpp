// NEON KV-row kernels: 8 values dequantized per step into two registers (fp16 through FCVTL, q8/q4
// codes widened to f32 and scaled), then used by up to 8 query heads before the next load; scalar
// tails. Stores use the portable quantizer (once per token and row).
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "cpu/kv_kernels.h"
#include "util/half.h"

namespace ilm::cpu {
namespace {

// A row's values from i on: vec(i, v) gives 8 of them (i a multiple of 8), at(i) one.
struct F16Row {
  const uint8_t* p;
  explicit F16Row(const uint8_t* row) : p(row) {}
  void vec(int i, float32x4_t v[2]) const {
    const float16x8_t h = vreinterpretq_f16_u8(vld1q_u8(p + 2 * i));
    v[0] = vcvt_f32_f16(vget_low_f16(h));
    v[1] = vcvt_high_f32_f16(h);
  }
  float at(int i) const {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    return fp16_to_f32(h);
  }
};

inline void scale_codes(uint8x8_t codes, float32x4_t s, float32x4_t z, float32x4_t v[2]) {
  const uint16x8_t c16 = vmovl_u8(codes);
  v[0] = vfmaq_f32(z, vcvtq_f32_u32(vmovl_u16(vget_low_u16(c16))), s);
  v[1] = vfmaq_f32(z, vcvtq_f32_u32(vmovl_high_u16(c16)), s);
}

struct Q8Row {
  float s, z;
  const uint8_t* c;
  float32x4_t vs, vz;
  explicit Q8Row(const uint8_t* row) : c(row + 8) {
    std::memcpy(&s, row, 4), std::memcpy(&z, row + 4, 4);
    vs = vdupq_n_f32(s), vz = vdupq_n_f32(z);
  }
  void vec(int i, float32x4_t v[2]) const { scale_codes(vld1_u8(c + i), vs, vz, v); }
  float at(int i) const { return s * float(c[i]) + z; }
};

// q4: value 2i in the low nibble of byte i/2, value 2i+1 in the high nibble.
struct Q4Row {
  float s, z;
  const uint8_t* c;
  float32x4_t vs, vz;
  explicit Q4Row(const uint8_t* row) : c(row + 8) {
    std::memcpy(&s, row, 4), std::memcpy(&z, row + 4, 4);
    vs = vdupq_n_f32(s), vz = vdupq_n_f32(z);
  }
  void vec(int i, float32x4_t v[2]) const {
    uint32_t b;
    std::memcpy(&b, c + i / 2, 4);
    const uint8x8_t bytes = vcreate_u8(b);
    // Low nibbles to even lanes, high nibbles to odd ones.
    const uint8x8_t codes = vzip1_u8(vand_u8(bytes, vdup_n_u8(15)), vshr_n_u8(bytes, 4));
    scale_codes(codes, vs, vz, v);
  }
  float at(int i) const { return s * float((c[i >> 1] >> ((i & 1) * 4)) & 15) + z; }
};

constexpr int kHeads = 8;  // query heads per pass: two accumulator registers each

template <class Row>
void dot(const float* q, size_t q_stride, int nq, const uint8_t* row, int n, float* out, size_t out_stride) {
  const Row x(row);
  for (int h0 = 0; h0 < nq; h0 += kHeads) {
    const int hn = std::min(kHeads, nq - h0);
    const float* qh = q + h0 * q_stride;
    float32x4_t acc[kHeads][2];
    for (int h = 0; h < hn; h++) acc[h][0] = acc[h][1] = vdupq_n_f32(0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
      float32x4_t v[2];
      x.vec(i, v);
      for (int h = 0; h < hn; h++) {
        acc[h][0] = vfmaq_f32(acc[h][0], vld1q_f32(qh + h * q_stride + i), v[0]);
        acc[h][1] = vfmaq_f32(acc[h][1], vld1q_f32(qh + h * q_stride + i + 4), v[1]);
      }
    }
    for (int h = 0; h < hn; h++) {
      float r = vaddvq_f32(vaddq_f32(acc[h][0], acc[h][1]));
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
    float ah[kHeads];
    for (int h = 0; h < hn; h++) ah[h] = a[(h0 + h) * a_stride];
    float* oh = out + h0 * out_stride;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
      float32x4_t v[2];
      x.vec(i, v);
      for (int h = 0; h < hn; h++) {
        float* o = oh + h * out_stride + i;
        vst1q_f32(o, vfmaq_n_f32(vld1q_f32(o), v[0], ah[h]));
        vst1q_f32(o + 4, vfmaq_n_f32(vld1q_f32(o + 4), v[1], ah[h]));
      }
    }
    for (; i < n; i++) {
      const float xi = x.at(i);
      for (int h = 0; h < hn; h++) oh[h * out_stride + i] += ah[h] * xi;
    }
  }
}

template <class Row>
KVKernels table(KVType type) {
  return {kv_kernels_generic(type)->store, dot<Row>, axpy<Row>};
}

}  // namespace

const KVKernels* kv_kernels_neon(KVType type) {
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
