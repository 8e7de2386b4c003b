// Portable KV-row kernels; also the quantizer every table shares (stores are not hot).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/kv_kernels.h"
#include "util/half.h"

namespace ilm::cpu {
namespace {

// Asymmetric per-row quantization to codes 0..levels-1.
void header_and_codes(const float* x, int n, int levels, float* scale, float* zero, uint8_t* codes) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; i++) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  const float s = (hi - lo) / float(levels - 1);
  const float inv = s > 0 ? 1.0f / s : 0.0f;
  for (int i = 0; i < n; i++) codes[i] = uint8_t(std::clamp(int(std::lrint((x[i] - lo) * inv)), 0, levels - 1));
  *scale = s;
  *zero = lo;
}

void write_header(uint8_t* row, float s, float z) {
  std::memcpy(row, &s, 4);
  std::memcpy(row + 4, &z, 4);
}

void store_f16(const float* x, uint8_t* row, int n) {
  auto* h = reinterpret_cast<uint16_t*>(row);
  for (int i = 0; i < n; i++) h[i] = f32_to_fp16(x[i]);
}

void store_q8(const float* x, uint8_t* row, int n) {
  float s, z;
  header_and_codes(x, n, 256, &s, &z, row + 8);
  write_header(row, s, z);
}

// q4: value 2i in the low nibble of byte i/2, value 2i+1 in the high nibble.
void store_q4(const float* x, uint8_t* row, int n) {
  uint8_t codes[kMaxKVHeadDim];
  float s, z;
  header_and_codes(x, n, 16, &s, &z, codes);
  write_header(row, s, z);
  for (int i = 0; i < n; i += 2) row[8 + i / 2] = uint8_t(codes[i] | ((i + 1 < n ? codes[i + 1] : 0) << 4));
}

// Element i of a row, dequantized.
struct F16Row {
  const uint16_t* h;
  explicit F16Row(const uint8_t* row) : h(reinterpret_cast<const uint16_t*>(row)) {}
  float operator()(int i) const { return fp16_to_f32(h[i]); }
};
struct Q8Row {
  float s, z;
  const uint8_t* c;
  explicit Q8Row(const uint8_t* row) : c(row + 8) { std::memcpy(&s, row, 4), std::memcpy(&z, row + 4, 4); }
  float operator()(int i) const { return s * float(c[i]) + z; }
};
struct Q4Row {
  float s, z;
  const uint8_t* c;
  explicit Q4Row(const uint8_t* row) : c(row + 8) { std::memcpy(&s, row, 4), std::memcpy(&z, row + 4, 4); }
  float operator()(int i) const { return s * float((c[i >> 1] >> ((i & 1) * 4)) & 15) + z; }
};

template <class Row>
void dot(const float* q, size_t q_stride, int nq, const uint8_t* row, int n, float* out, size_t out_stride) {
  const Row x(row);
  for (int h = 0; h < nq; h++) {
    const float* qh = q + h * q_stride;
    float acc = 0;
    for (int i = 0; i < n; i++) acc += qh[i] * x(i);
    out[h * out_stride] = acc;
  }
}

template <class Row>
void axpy(const float* a, size_t a_stride, int na, const uint8_t* row, float* out, size_t out_stride, int n) {
  const Row x(row);
  for (int h = 0; h < na; h++) {
    const float ah = a[h * a_stride];
    float* oh = out + h * out_stride;
    for (int i = 0; i < n; i++) oh[i] += ah * x(i);
  }
}

const KVKernels kF16{store_f16, dot<F16Row>, axpy<F16Row>};
const KVKernels kQ8{store_q8, dot<Q8Row>, axpy<Q8Row>};
const KVKernels kQ4{store_q4, dot<Q4Row>, axpy<Q4Row>};

}  // namespace

const KVKernels* kv_kernels_generic(KVType type) {
  switch (type) {
    case KVType::F16: return &kF16;
    case KVType::Q8: return &kQ8;
    case KVType::Q4: return &kQ4;
    default: return nullptr;
  }
}

}  // namespace ilm::cpu
