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

void store_f16(const float* x, uint8_t* row, int n) {
  auto* h = reinterpret_cast<uint16_t*>(row);
  for (int i = 0; i < n; i++) h[i] = f32_to_fp16(x[i]);
}
float dot_f16(const float* q, const uint8_t* row, int n) {
  const auto* h = reinterpret_cast<const uint16_t*>(row);
  float s = 0;
  for (int i = 0; i < n; i++) s += q[i] * fp16_to_f32(h[i]);
  return s;
}
void axpy_f16(float a, const uint8_t* row, float* out, int n) {
  const auto* h = reinterpret_cast<const uint16_t*>(row);
  for (int i = 0; i < n; i++) out[i] += a * fp16_to_f32(h[i]);
}

void header(const uint8_t* row, float* scale, float* zero) {
  std::memcpy(scale, row, 4);
  std::memcpy(zero, row + 4, 4);
}

void store_q8(const float* x, uint8_t* row, int n) {
  float s, z;
  header_and_codes(x, n, 256, &s, &z, row + 8);
  std::memcpy(row, &s, 4);
  std::memcpy(row + 4, &z, 4);
}
// q · (s c + z) = s (q · c) + z Σq
float dot_q8(const float* q, const uint8_t* row, int n) {
  float s, z;
  header(row, &s, &z);
  const uint8_t* c = row + 8;
  float qc = 0, qs = 0;
  for (int i = 0; i < n; i++) qc += q[i] * float(c[i]), qs += q[i];
  return s * qc + z * qs;
}
void axpy_q8(float a, const uint8_t* row, float* out, int n) {
  float s, z;
  header(row, &s, &z);
  const uint8_t* c = row + 8;
  const float as = a * s, az = a * z;
  for (int i = 0; i < n; i++) out[i] += as * float(c[i]) + az;
}

// q4: value 2i in the low nibble of byte i/2, value 2i+1 in the high nibble.
void store_q4(const float* x, uint8_t* row, int n) {
  uint8_t codes[kMaxKVHeadDim];
  float s, z;
  header_and_codes(x, n, 16, &s, &z, codes);
  std::memcpy(row, &s, 4);
  std::memcpy(row + 4, &z, 4);
  for (int i = 0; i < n; i += 2) row[8 + i / 2] = uint8_t(codes[i] | ((i + 1 < n ? codes[i + 1] : 0) << 4));
}
inline int nibble(const uint8_t* c, int i) { return (c[i >> 1] >> ((i & 1) * 4)) & 15; }
float dot_q4(const float* q, const uint8_t* row, int n) {
  float s, z;
  header(row, &s, &z);
  float qc = 0, qs = 0;
  for (int i = 0; i < n; i++) qc += q[i] * float(nibble(row + 8, i)), qs += q[i];
  return s * qc + z * qs;
}
void axpy_q4(float a, const uint8_t* row, float* out, int n) {
  float s, z;
  header(row, &s, &z);
  const float as = a * s, az = a * z;
  for (int i = 0; i < n; i++) out[i] += as * float(nibble(row + 8, i)) + az;
}

const KVKernels kF16{store_f16, dot_f16, axpy_f16};
const KVKernels kQ8{store_q8, dot_q8, axpy_q8};
const KVKernels kQ4{store_q4, dot_q4, axpy_q4};

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
