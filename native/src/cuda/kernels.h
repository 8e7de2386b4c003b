#pragma once
// Host-callable launchers of the CUDA kernels. Plain C++ types only, so the backend (.cpp) and
// the tools can call them; each launcher checks its launch and throws ilm::Error on failure.
//
// Shapes: activations are row-major [tokens][features]; a weight matrix has `rows` output rows
// of `cols` inputs each (rows contiguous), so y[t][r] = dot(W[r], x[t]).
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace ilm::cuda {

// Device layouts of weights. F32/F16/BF16 are the file's rows as they are. Q8 is Q8_0 repacked
// at upload so that every access is 16-byte aligned: int8 quants [rows][cols] plus fp16 scales
// [rows][cols / 32] (same bytes as the file's 34-byte blocks, just split).
enum class WType { F32, F16, BF16, Q8 };

struct DevMatrix {
  WType type = WType::F16;
  int rows = 0;
  int cols = 0;
  const void* data = nullptr;        // rows * cols elements (int8 for Q8)
  const uint16_t* scales = nullptr;  // Q8 only: fp16 bits, rows * cols / 32
};

// Activations quantized like the CPU backend does for Q8_0 weights (cpu/kquant_generic.cpp):
// per 32 values d = max|x| / 127 rounded to fp16, q = round-to-nearest-even(x * 127 / max|x|).
struct Q8Act {
  int8_t* q = nullptr;  // [tokens][cols]
  float* d = nullptr;   // [tokens][cols / 32], the fp16-rounded scales as floats
};

constexpr int kMaxHeadDim = 256;

// Per-forward values that change between decode steps. They live in device memory (written by
// one copy before the step), so a captured decode graph can be replayed for any position.
struct StepParams {
  int start_pos;                     // position of token 0 of this batch
  int n_tokens;
  float theta_scale;                 // base^(-2/d): pairwise RoPE's per-pair angle factor
  int pad;
  float inv_freq[kMaxHeadDim / 2];   // 1 / base^(2i/d): rotate-half RoPE's frequencies
};

enum class Epilogue { Store, Add };  // y = W x, or y += W x (residual)

// ---- elementwise.cu
void embed(const DevMatrix& table, const int32_t* tokens, int nt, float* x, cudaStream_t stream);
void rmsnorm(const float* x, const float* weight, float* out, int rows, int dim, float eps, cudaStream_t stream);
void to_f16(const float* x, uint16_t* out, size_t n, cudaStream_t stream);
void quantize_q8(const float* x, Q8Act out, int rows, int cols, cudaStream_t stream);
void swiglu(const float* gate_up, int nt, int ffn, float* out, cudaStream_t stream);
// RoPE on the Q and K heads of qkv rows ([Q | K | V] per token), Q to q_out (f32), K and V to the
// cache rows of positions start_pos + t as fp16. pairwise: (2i, 2i+1) pairs, else (i, i + d/2).
void rope_store(const float* qkv, const StepParams* params, int nt, int n_heads, int n_kv_heads, int head_dim,
                bool pairwise, float* q_out, uint16_t* k_cache, uint16_t* v_cache, cudaStream_t stream);
// Splits rows of raw Q8_0 blocks (34 bytes per 32 values) into the Q8 layout.
void repack_q8_0(const uint8_t* raw, int rows, int cols, int8_t* q, uint16_t* scales, cudaStream_t stream);

// ---- gemv.cu: few tokens (decode), weights streamed once at memory bandwidth.
constexpr int kGemvMaxTokens = 8;
// x: f32 activations (F32/F16/BF16 weights) or xq (Q8 weights). y[t * ldy + r].
void gemv(const DevMatrix& w, const float* x, const Q8Act& xq, int nt, float* y, int ldy, Epilogue epilogue,
          cudaStream_t stream);
// w13 = [gate rows; up rows] (2 * ffn rows): out[t * ffn + i] = silu(gate_i . x) * (up_i . x).
void gemv_swiglu(const DevMatrix& w13, const float* x, const Q8Act& xq, int nt, float* out, cudaStream_t stream);

// ---- gemm.cu: many tokens (prefill), tensor cores (mma.sync), f32 accumulation.
// F32/F16/BF16 weights: x16 holds the activations as fp16; weights are converted to fp16 as
// they are loaded (never stored converted). Q8 weights: int8 x int8 products per 32-block, scaled.
void gemm(const DevMatrix& w, const uint16_t* x16, const Q8Act& xq, int nt, float* y, int ldy, Epilogue epilogue,
          cudaStream_t stream);

// ---- attention.cu. q: [nt][n_heads][hd] f32 after RoPE; caches: [pos][n_kv_heads][hd] fp16 of
// one layer, already holding positions [0, start_pos + nt). out: [nt][n_heads][hd] f32.
struct AttentionShape {
  int nt;
  int n_heads;
  int n_kv_heads;
  int head_dim;
};
// Whether the tensor-core (flash) kernel handles this head dimension.
bool flash_supported(int head_dim);
// Causal attention for a prefill chunk with tensor cores, K/V tiles shared by a GQA group.
void attention_flash(const float* q, const uint16_t* k_cache, const uint16_t* v_cache, const StepParams* params,
                     const AttentionShape& shape, float* out, cudaStream_t stream);
// Split-K (flash-decoding) attention: each query row's keys are cut into `splits` ranges that run
// in parallel, then merged. partial holds nt * n_heads * splits * (head_dim + 2) floats.
void attention_split(const float* q, const uint16_t* k_cache, const uint16_t* v_cache, const StepParams* params,
                     const AttentionShape& shape, int splits, float* partial, float* out, cudaStream_t stream);
constexpr int kMaxGqaGroup = 8;  // query heads per KV head that attention_split supports

}  // namespace ilm::cuda
