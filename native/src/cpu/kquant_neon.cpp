// Baseline NEON (ARMv8.0 ASIMD) kernels for quantized weights: the GEMMs of kquant_neon_impl.h on
// widening multiplies, and the activation quantizers, which both aarch64 tables use and which
// reproduce the portable ones bit for bit (kernel_check compares them).
#include <arm_neon.h>

#include <cmath>

#define ILM_NEON_DOTPROD 0
#include "cpu/kquant_neon_impl.h"

namespace ilm::cpu {
namespace {

// f rounded to fp16 (nearest even, as f32_to_fp16) and back.
inline float round_fp16(float f) { return vgetq_lane_f32(vcvt_f32_f16(vcvt_f16_f32(vdupq_n_f32(f))), 0); }

// 16 int32 lanes (4 vectors, all within -128..127) to 16 int8 in order.
inline int8x16_t narrow_i8(const int32x4_t* q) {
  const int16x8_t lo = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
  const int16x8_t hi = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
  return vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi));
}

// As the portable quantize_q8_0: d = fp16(amax / 127), q = round-half-even(x * 127 / amax),
// s = fp16(amax / 127 * sum(q)) (stored as s / 8 in 8 lanes).
void quantize_q8_0(const float* x, uint8_t* row, int n) {
  const int nb = n / 32;
  const uint8x16_t flip = vdupq_n_u8(0x80);
  for (int i = 0; i < nb; i++) {
    const ActPair a = act_pair(row, i);
    float32x4_t v[8];
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int j = 0; j < 8; j++) {
      v[j] = vld1q_f32(x + 32 * i + 4 * j);
      m = vmaxq_f32(m, vabsq_f32(v[j]));
    }
    const float amax = vmaxvq_f32(m);
    const float d = round_fp16(amax / 127.0f);
    const float id = amax != 0 ? 127.0f / amax : 0.0f;
    int32x4_t qi[8];
    int32x4_t sum = vdupq_n_s32(0);
    for (int j = 0; j < 8; j++) {
      qi[j] = vcvtnq_s32_f32(vmulq_n_f32(v[j], id));
      sum = vaddq_s32(sum, qi[j]);
    }
    auto* xu = const_cast<uint8_t*>(a.xu(i % 2));
    vst1q_u8(xu, veorq_u8(vreinterpretq_u8_s8(narrow_i8(qi)), flip));
    vst1q_u8(xu + 16, veorq_u8(vreinterpretq_u8_s8(narrow_i8(qi + 4)), flip));
    const float s = round_fp16(amax / 127.0f * float(vaddvq_s32(sum))) * 0.125f;
    float* d8 = const_cast<float*>(a.d(i % 2));
    float* s8 = const_cast<float*>(a.s(i % 2));
    vst1q_f32(d8, vdupq_n_f32(d)), vst1q_f32(d8 + 4, vdupq_n_f32(d));
    vst1q_f32(s8, vdupq_n_f32(s)), vst1q_f32(s8 + 4, vdupq_n_f32(s));
  }
  if (nb % 2) {  // the zero block pairing an odd last one
    const ActPair a = act_pair(row, nb);
    auto* xu = const_cast<uint8_t*>(a.xu(1));
    vst1q_u8(xu, flip), vst1q_u8(xu + 16, flip);
    float* d8 = const_cast<float*>(a.d(1));
    float* s8 = const_cast<float*>(a.s(1));
    for (int j = 0; j < 8; j += 4) vst1q_f32(d8 + j, vdupq_n_f32(0.0f)), vst1q_f32(s8 + j, vdupq_n_f32(0.0f));
  }
}

// As the portable quantize_q8_k (ggml's quantize_row_q8_K_ref): the first value of largest
// magnitude maps to -127.
void quantize_q8_k(const float* x, uint8_t* row, int n) {
  for (int i = 0; i < n / 256; i++) {
    const ActQ8K a = act_q8_k(row, i);
    auto* out = reinterpret_cast<int8_t*>(const_cast<uint8_t*>(a.p));
    const float* v = x + 256 * i;
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int j = 0; j < 256; j += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(v + j)));
    const float amax = vmaxvq_f32(m);
    float max = 0;
    for (int j = 0; j < 256; j++)
      if (std::fabs(v[j]) == amax) {
        max = v[j];
        break;
      }
    const float iscale = amax != 0 ? -127.0f / max : 0.0f;
    const float d = amax != 0 ? 1 / iscale : 0.0f;
    auto* d16 = const_cast<float*>(a.d16());
    auto* bsums = const_cast<float*>(a.bsums());
    for (int j = 0; j < 256; j += 16) {
      int32x4_t qi[4];
      for (int k = 0; k < 4; k++)
        qi[k] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(v + j + 4 * k), iscale)), vdupq_n_s32(127));
      vst1q_s8(out + j, narrow_i8(qi));
      bsums[j / 16] = d * float(vaddvq_s32(vaddq_s32(vaddq_s32(qi[0], qi[1]), vaddq_s32(qi[2], qi[3]))));
    }
    for (int j = 0; j < 16; j += 4) vst1q_f32(d16 + j, vdupq_n_f32(d));
  }
}

}  // namespace

void add_quant_kernels_neon(KernelTable& t) {
  set_neon_gemms(t);
  t.quantize_q8_0 = quantize_q8_0;
  t.quantize_q8_k = quantize_q8_k;
}

}  // namespace ilm::cpu
