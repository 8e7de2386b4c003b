#pragma once
// Host-callable launchers of the CUDA kernels. Plain C++ types only, so the backend (.cpp) and
// the tools can call them; each launcher checks its launch and throws ilm::Error on failure.
//
// Shapes: activations are row-major [tokens][features]; a weight matrix has `rows` output rows
// of `cols` inputs each (rows contiguous), so y[t][r] = dot(W[r], x[t]).
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/quant_blocks.h"
#include "engine/kv_type.h"
#include "util/error.h"

namespace ilm::cuda {

// Device layouts of weights. F32/F16/BF16 are the file's rows as they are. Q8 is Q8_0 repacked
// at upload so that every access is 16-byte aligned: int8 quants [rows][cols] plus fp16 scales
// [rows][cols / 32] (same bytes as the file's 34-byte blocks, just split). Blocks: the low-bit
// GGUF types (quant_blocks.h) as the file has them, in up to kMaxSegments row ranges of their own
// type (a Q4_K_M file stacks Q4_K query/key rows on Q6_K value rows).
enum class WType { F32, F16, BF16, Q8, Blocks };

struct BlockSegment {
  BlockType type = BlockType::Q4_K;
  int first_row = 0;  // of the matrix
  int rows = 0;
  const uint8_t* data = nullptr;  // rows * row_bytes, the file's blocks
  size_t row_bytes = 0;
};
constexpr int kMaxSegments = 3;

struct DevMatrix {
  WType type = WType::F16;
  int rows = 0;
  int cols = 0;
  const void* data = nullptr;        // rows * cols elements (int8 for Q8); Blocks: see segments
  const uint16_t* scales = nullptr;  // Q8 only: fp16 bits, rows * cols / 32
  int n_segments = 0;                // Blocks only
  BlockSegment segments[kMaxSegments];
};

// Throws unless the segment's rows can be read as its kernels read them (block_rows_aligned).
inline void check_segment(const BlockSegment& seg) {
  if (!block_rows_aligned(seg.type, seg.data, seg.row_bytes))
    throw Error("internal: a low-bit weight segment is not aligned for its decoder");
}

// An F32/F16/BF16/Q8 matrix (no segments).
inline DevMatrix dense_matrix(WType type, int rows, int cols, const void* data, const uint16_t* scales = nullptr) {
  DevMatrix m;
  m.type = type;
  m.rows = rows;
  m.cols = cols;
  m.data = data;
  m.scales = scales;
  return m;
}

// Whether a decode GEMV of this matrix reads Q8-quantized activations (quantize_q8 / rmsnorm_q8)
// rather than f32 ones.
inline bool reads_q8_activations(WType type) { return type == WType::Q8 || type == WType::Blocks; }

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
  int top_k;                         // candidates top_k() keeps (1..kMaxTopK)
  float inv_freq[kMaxHeadDim / 2];   // 1 / base^(2i/d): rotate-half RoPE's frequencies
};

// ---- the KV cache of one layer on the device (cuda_backend.cpp owns it)
//
// Head-major, so that every KV head's keys are one contiguous stream for attention:
//   data: [n_kv_heads][capacity][kv_code_bytes(type, head_dim)]  f32 / f16 values, or q8 codes /
//         q4 nibble pairs (value 2i in the low nibble of byte i, as the CPU stores them)
//   sz:   [n_kv_heads][capacity] (scale, zero) f32 pairs, q8/q4 only; x = scale * code + zero.
// capacity is a multiple of kKVPositionAlign, so every head's rows start 16-byte aligned and a
// 64-key tile never runs past the allocation. The bytes of one (position, head) row are the CPU's
// (engine/kv_type.h) once the pair is put in front of the codes: kv_pack_rows / kv_unpack_rows
// convert to and from that position-major row format for saving and restoring caches.
constexpr int kKVPositionAlign = 64;

inline size_t kv_code_bytes(KVType type, int head_dim) {
  switch (type) {
    case KVType::F32: return size_t(head_dim) * 4;
    case KVType::F16: return size_t(head_dim) * 2;
    case KVType::Q8: return size_t(head_dim);
    case KVType::Q4: return size_t(head_dim) / 2;
  }
  return 0;
}
inline bool kv_quantized(KVType type) { return type == KVType::Q8 || type == KVType::Q4; }

struct KVPlane {           // K or V of one layer
  uint8_t* data = nullptr;
  float* sz = nullptr;     // q8/q4 only
};

struct KVLayer {
  KVType type = KVType::F16;
  int capacity = 0;        // positions per head (a multiple of kKVPositionAlign)
  int n_kv_heads = 0;
  int head_dim = 0;
  KVPlane k, v;
};

enum class Epilogue { Store, Add };  // y = W x, or y += W x (residual)

// ---- elementwise.cu
void embed(const DevMatrix& table, const int32_t* tokens, int nt, float* x, cudaStream_t stream);
void rmsnorm(const float* x, const float* weight, float* out, int rows, int dim, float eps, cudaStream_t stream);
void to_f16(const float* x, uint16_t* out, size_t n, cudaStream_t stream);
void quantize_q8(const float* x, Q8Act out, int rows, int cols, cudaStream_t stream);
void swiglu(const float* gate_up, int nt, int ffn, float* out, cudaStream_t stream);
// One block per row: out = x * rsqrt(mean(x^2) + eps) * weight, quantized like quantize_q8 into
// xq (the Q8 weights' input) and, when out is not null, also stored as f32.
void rmsnorm_q8(const float* x, const float* weight, float* out, Q8Act xq, int rows, int dim, float eps,
                cudaStream_t stream);
// RoPE on the Q and K heads of qkv rows ([Q | K | V] per token), Q to q_out (f32), K and V into
// the cache at positions start_pos + t in its type: q8/q4 rows are quantized here (after RoPE),
// with the CPU's quantizer (cpu/kv_kernels_generic.cpp), so equal inputs give equal bytes.
// pairwise: (2i, 2i+1) pairs, else (i, i + d/2).
void rope_store(const float* qkv, const StepParams* params, int nt, int n_heads, bool pairwise, float* q_out,
                const KVLayer& kv, cudaStream_t stream);
// Positions [from, from + n) of one plane to / from rows in the CPU's position-major format
// (n * n_kv_heads rows of kv_row_bytes each) in device memory.
void kv_pack_rows(const KVLayer& kv, bool value, int from, int n, uint8_t* rows, cudaStream_t stream);
void kv_unpack_rows(const KVLayer& kv, bool value, int from, int n, const uint8_t* rows, cudaStream_t stream);
// Benchmarks only: fills positions [0, n) of both planes with random valid entries (values in
// [-1, 1)), so that decode can be timed at a long context without prefilling it.
void kv_fill_random(const KVLayer& kv, int n, uint32_t seed, cudaStream_t stream);
// Splits rows of raw Q8_0 blocks (34 bytes per 32 values) into the Q8 layout.
void repack_q8_0(const uint8_t* raw, int rows, int cols, int8_t* q, uint16_t* scales, cudaStream_t stream);
// Rows [first, first + rows) of segment `segment` of a Blocks matrix as fp16 bits, [rows][cols]
// (prefill multiplies them with the F16 GEMM; the weights themselves stay in their type).
void dequantize_f16(const DevMatrix& w, int segment, int first, int rows, uint16_t* out, cudaStream_t stream);

// ---- gemv.cu: few tokens (decode), weights streamed once at memory bandwidth.
constexpr int kGemvMaxTokens = 8;
constexpr int kGemvRowsPerBlock = 16;  // rows one block computes (a residual GEMV's partial sums)

// Decode fusion of RMSNorm into the GEMV that reads its output (F32/F16/BF16 weights): the residual
// GEMV before it leaves per-block sums of squares of the rows it updated (ss_out, [t][n_partials],
// n_partials = ceil(dim / kGemvRowsPerBlock)); the reading GEMV adds them up in a fixed order
// and multiplies x by rsqrt(mean + eps) and the norm weight as it loads it, as rmsnorm() would.
struct NormIn {
  const float* weight = nullptr;    // null: x is used as it is
  const float* partials = nullptr;  // [t][n_partials]
  int n_partials = 0;
  float eps = 0.0f;
};

// x: f32 activations (F32/F16/BF16 weights) or xq (Q8 and Blocks weights). y[t * ldy + r].
// norm: applied to x on the fly (float weights only). ss_out (Epilogue::Add only, may be null):
// per-block sums of squares of the updated y rows, for the next GEMV's NormIn (a Blocks matrix
// must then be one segment). Blocks: per 32 weights, integer dot products of the codes with the
// Q8 activations (and of the activations' sum, for the offsets), scaled per half.
void gemv(const DevMatrix& w, const float* x, const Q8Act& xq, int nt, float* y, int ldy, Epilogue epilogue,
          cudaStream_t stream, const NormIn& norm = {}, float* ss_out = nullptr);
// w13 = [gate rows; up rows] (2 * ffn rows): out[t * ffn + i] = silu(gate_i . x) * (up_i . x).
// Not for Blocks matrices (gemv into [gate; up] rows, then swiglu()).
void gemv_swiglu(const DevMatrix& w13, const float* x, const Q8Act& xq, int nt, float* out, cudaStream_t stream,
                 const NormIn& norm = {});

// ---- gemm.cu: many tokens (prefill), tensor cores (mma.sync), f32 accumulation.
// F32/F16/BF16 weights: x16 holds the activations as fp16; weights are converted to fp16 as
// they are loaded (never stored converted). Q8 weights: int8 x int8 products per 32-block, scaled.
// Not for Blocks matrices (dequantize_f16 a slice of rows, then the F16 GEMM on it).
void gemm(const DevMatrix& w, const uint16_t* x16, const Q8Act& xq, int nt, float* y, int ldy, Epilogue epilogue,
          cudaStream_t stream);

// ---- attention.cu. q: [nt][n_heads][hd] f32 after RoPE; kv: one layer's cache (any KVType),
// already holding positions [0, start_pos + nt). out: [nt][n_heads][hd] f32.
struct AttentionShape {
  int nt;
  int n_heads;
  int n_kv_heads;
  int head_dim;
};
// Whether the tensor-core (flash) kernel handles this head dimension and cache type (f16, q8, q4;
// an f32 cache runs attention_split for prefill too).
bool flash_supported(int head_dim, KVType type);
// Causal attention for a prefill chunk with tensor cores, K/V tiles shared by a GQA group. q8/q4
// tiles are copied raw and dequantized to fp16 in shared memory.
void attention_flash(const float* q, const KVLayer& kv, const StepParams* params, const AttentionShape& shape,
                     float* out, cudaStream_t stream);
// Split-K (flash-decoding) attention: each query row's keys are cut into `splits` ranges that run
// in parallel; the last block of a (token, KV head) to finish merges them (counters: nt *
// n_kv_heads ints, zero before the first call, left zero by every call). partial holds nt *
// n_heads * splits * (head_dim + 2) floats. Quantized rows are dequantized in registers.
void attention_split(const float* q, const KVLayer& kv, const StepParams* params, const AttentionShape& shape,
                     int splits, float* partial, int* counters, float* out, cudaStream_t stream);
constexpr int kMaxGqaGroup = 8;  // query heads per KV head that attention_split supports
constexpr int kMaxSplits = 128;
// Blocks of attention_split's kernel for this shape and type that fit on one multiprocessor
// (registers differ by type): splits = that * multiprocessors / n_kv_heads fills one wave.
int attention_split_blocks_per_sm(const AttentionShape& shape, KVType type);

// ---- sampling.cu: the k best logits of one row without bringing the row back.
constexpr int kMaxTopK = 256;
constexpr int kTopKBlocks = 32;  // first-pass blocks; scratch holds kTopKBlocks * kMaxTopK keys
// The params->top_k largest values of logits[0, n) (ties: lower index first), best first, as
// (value, index) pairs to out_values / out_ids (kMaxTopK entries; those past top_k undefined).
// n >= top_k. Two launches; reads top_k on the device, so a captured graph serves any k.
void top_k(const float* logits, int n, const StepParams* params, unsigned long long* scratch, float* out_values,
           int32_t* out_ids, cudaStream_t stream);

}  // namespace ilm::cuda
