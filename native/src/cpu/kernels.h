#pragma once
// CPU compute kernels, one implementation per instruction set, chosen once at run time.
// Weights stay in their file type. Activations are f32 rows for float weights, and are quantized
// to 8 bits per block for quantized weights (as llama.cpp does) so that the dot products run on
// integer units: ActFormat::Q8_0 (32-blocks) for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, ActFormat::Q8_K
// (256-blocks) for the K-quants.
#include <cstddef>
#include <cstdint>

#include "model/tensor.h"
#include "quant/blocks.h"

namespace ilm::cpu {

using BlockQ8_0 = quant::BlockQ8_0;

// Y[t * ldy + r] = dot(row r of W, activation t), for r < nr, t < nt; rows have n elements.
// W points at row 0 with row stride ldw bytes; X at activation 0 with stride ldx bytes.
using GemmTileFn = void (*)(const uint8_t* W, size_t ldw, const uint8_t* X, size_t ldx, float* Y,
                            size_t ldy, int nr, int nt, int n);
// Converts n f32 activations into one row of a quantized activation format.
using QuantizeActFn = void (*)(const float* x, uint8_t* row, int n);

enum class ActFormat { F32, Q8_0, Q8_K };

// Quantized activation rows, laid out so that a kernel reaches everything one block needs from one
// pointer with constant offsets (few registers for several activations at once). Values follow
// llama.cpp's rounding, so both engines see the same activations.
//  Q8_0 (32-blocks), 192 bytes per pair of blocks (an odd last block is paired with zeros):
//    uint8 xu[64]  q + 128 (unsigned, so that signed weights can be the second vpdpbusd operand;
//                  the +128 is removed per weight row: -128 * sum(w));
//    float d[16]   each block's scale (fp16-rounded d = amax / 127), repeated 8x;
//    float s[16]   s / 8 repeated 8x per block, s = fp16(amax / 127 * sum(q)) as llama.cpp's Q8_1
//                  (the minimums of Q4_1/Q5_1 multiply it; 8 lanes sum to s).
//  Q8_K (256-blocks, ggml's quantize_row_q8_K), 384 bytes per block:
//    int8 q[256]; float d[16] (the scale, repeated); float bsums[16] (d * sum of q over each 16
//    elements: the K-quants' minimums multiply them, so that part is one float dot product).
constexpr size_t kActPairBytes = 192;
constexpr size_t kActQ8KBytes = 384;

struct ActPair {
  const uint8_t* p;
  const uint8_t* xu(int half) const { return p + 32 * half; }
  const float* d(int half) const { return reinterpret_cast<const float*>(p + 64) + 8 * half; }
  const float* s(int half) const { return reinterpret_cast<const float*>(p + 128) + 8 * half; }
};
// Block j of a Q8_0 activation row.
inline ActPair act_pair(const uint8_t* row, int j) { return {row + kActPairBytes * size_t(j / 2)}; }

struct ActQ8K {
  const uint8_t* p;
  const int8_t* q() const { return reinterpret_cast<const int8_t*>(p); }
  const float* d16() const { return reinterpret_cast<const float*>(p + 256); }
  const float* bsums() const { return reinterpret_cast<const float*>(p + 320); }
  float d() const { return d16()[0]; }
};
inline ActQ8K act_q8_k(const uint8_t* row, int i) { return {row + kActQ8KBytes * size_t(i)}; }

struct KernelTable {
  const char* isa = nullptr;
  GemmTileFn gemm_f32 = nullptr, gemm_f16 = nullptr, gemm_bf16 = nullptr;
  GemmTileFn gemm_q4_0 = nullptr, gemm_q4_1 = nullptr, gemm_q5_0 = nullptr, gemm_q5_1 = nullptr;
  GemmTileFn gemm_q8_0 = nullptr;
  GemmTileFn gemm_q2_k = nullptr, gemm_q3_k = nullptr, gemm_q4_k = nullptr, gemm_q5_k = nullptr;
  GemmTileFn gemm_q6_k = nullptr;
  QuantizeActFn quantize_q8_0 = nullptr;
  QuantizeActFn quantize_q8_k = nullptr;
  // out[s * ldo + d] += sum_j p[s * ldp + j] * v[j * ldv + d] for s < ns, j < nv, d < n: attention's
  // probabilities times values for the query heads sharing one KV head (each value row read once).
  void (*mix_rows_f32)(const float* p, int ldp, int ns, const float* v, size_t ldv, int nv, float* out, int ldo,
                       int n) = nullptr;
  // p[j] = exp(p[j] - max) for j < n, returning their sum: one block of softmax numerators.
  float (*exp_sum_f32)(float* p, int n, float max) = nullptr;
  // gate[i] = silu(gate[i]) * up[i] for i < n (SwiGLU).
  void (*silu_mul_f32)(float* gate, const float* up, size_t n) = nullptr;
  float (*dot_f32)(const float* a, const float* b, int n) = nullptr;
  void (*axpy_f32)(float a, const float* x, float* y, int n) = nullptr;  // y += a * x
  void (*scale_f32)(float a, float* y, int n) = nullptr;                 // y *= a
};

struct WeightKernel {
  GemmTileFn gemm = nullptr;  // null: the type has no CPU kernel
  ActFormat act = ActFormat::F32;
};

WeightKernel weight_kernel(const KernelTable& table, DType type);

// Bytes of one activation row of n elements in the given format (a multiple of 64, so rows stay
// cache-line aligned in a 64-aligned buffer).
size_t act_row_bytes(ActFormat format, int n);

// Writes activation x (n f32 values) as one row of FORMAT (F32 copies).
void quantize_activation(const KernelTable& table, ActFormat format, const float* x, uint8_t* row, int n);

// The best table this CPU runs; INTERNLM_CPU_ISA=generic|avx2|avx512 (x86) or generic|neon
// (aarch64) picks a lower one (tests, benchmarks).
const KernelTable& kernels();
const KernelTable& generic_kernels();
// Null when not compiled in; call only when cpu_has_avx2() / cpu_has_avx512() says the CPU can.
const KernelTable* avx2_kernels();    // AVX2 + FMA + F16C
const KernelTable* avx512_kernels();  // AVX-512 F/BW/VL/DQ/VNNI
bool cpu_has_avx2();
bool cpu_has_avx512();
// aarch64 (kernels_neon.cpp): baseline ASIMD, and the same with the quantized dot products on
// SDOT (ARMv8.2 dotprod, kquant_neon_dotprod.cpp). Null / false on other architectures.
const KernelTable* neon_kernels();          // "neon"
const KernelTable* neon_dotprod_kernels();  // "neon-dotprod"
bool cpu_has_neon();
bool cpu_has_neon_dotprod();

// Row r of a weight tensor as f32 (embedding lookup).
void dequantize_row(const Tensor& t, int64_t r, float* out);

// Each ISA's quantized-weight kernels fill their entries of a table (kquant_*.cpp).
void add_quant_kernels_generic(KernelTable& table);
void add_quant_kernels_avx2(KernelTable& table);
void add_quant_kernels_avx512(KernelTable& table);
void add_quant_kernels_neon(KernelTable& table);
void add_quant_kernels_neon_dotprod(KernelTable& table);

}  // namespace ilm::cpu
