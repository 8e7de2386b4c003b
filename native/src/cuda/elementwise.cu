// Small per-token kernels: embedding lookup, RMSNorm (also fused with the Q8 quantization),
// activation conversion/quantization, SwiGLU, and the one-time Q8_0 repack (RoPE + KV-cache store
// is in kv_cache.cu). Arithmetic follows the CPU backend
// (cpu_backend.cpp) operation for operation where rounding could differ.
#include "cuda/common.cuh"

namespace ilm::cuda {
namespace {

__global__ void embed_kernel(DevMatrix table, const int32_t* tokens, float* x) {
  const int t = blockIdx.x;
  const int dim = table.cols;
  const size_t row = size_t(tokens[t]);
  float* out = x + size_t(t) * dim;
  for (int k = threadIdx.x; k < dim; k += blockDim.x) {
    float v;
    switch (table.type) {
      case WType::F32: v = static_cast<const float*>(table.data)[row * dim + k]; break;
      case WType::F16: v = half_bits_to_float(static_cast<const uint16_t*>(table.data)[row * dim + k]); break;
      case WType::BF16: v = bf16_bits_to_float(static_cast<const uint16_t*>(table.data)[row * dim + k]); break;
      default:
        v = half_bits_to_float(table.scales[row * (dim / 32) + k / 32]) *
            float(static_cast<const int8_t*>(table.data)[row * dim + k]);
        break;
    }
    out[k] = v;
  }
}

// Blocks tables (one segment): a thread per 32 weights of the token's row, decoded as the CPU
// dequantizes them (group_weight: the same float).
template <BlockType T>
__global__ void embed_blocks_kernel(BlockSegment seg, int dim, const int32_t* tokens, float* x) {
  const int t = blockIdx.x;
  const uint8_t* row = seg.data + size_t(tokens[t]) * seg.row_bytes;
  float* out = x + size_t(t) * dim;
  for (int g = threadIdx.x; g < dim / 32; g += blockDim.x) {
    Group32 w;
    unpack_group<T>(row, g, w);
#pragma unroll
    for (int i = 0; i < 32; i++) out[32 * g + i] = group_weight(w, i);
  }
}

// Rows of a Blocks segment to fp16 for the prefill GEMM: a thread per 32 weights, four 16-byte
// stores (cols is a multiple of 32, so every group's output is 16-byte aligned).
template <BlockType T>
__global__ void dequantize_f16_kernel(BlockSegment seg, int cols, int first, int rows, uint16_t* out) {
  const int groups = cols / 32;
  const size_t index = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= size_t(rows) * groups) return;
  const int r = int(index / groups), g = int(index % groups);
  Group32 w;
  unpack_group<T>(seg.data + size_t(first + r) * seg.row_bytes, g, w);
  uint4* dst = reinterpret_cast<uint4*>(out + size_t(r) * cols + size_t(g) * 32);
#pragma unroll
  for (int v = 0; v < 4; v++) {
    uint32_t h[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
      const __half lo = __float2half_rn(group_weight(w, 8 * v + 2 * k));
      const __half hi = __float2half_rn(group_weight(w, 8 * v + 2 * k + 1));
      h[k] = uint32_t(__half_as_ushort(lo)) | uint32_t(__half_as_ushort(hi)) << 16;
    }
    dst[v] = make_uint4(h[0], h[1], h[2], h[3]);
  }
}

// 1 / sqrt(mean(x²) + eps) of one row, reduced over the whole block (every thread gets it).
static __device__ __forceinline__ float rms_scale(const float* xr, int dim, float eps) {
  float sum = 0.0f;
  for (int k = threadIdx.x; k < dim; k += blockDim.x) sum += xr[k] * xr[k];
  __shared__ float partial[32];
  sum = warp_sum(sum);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = sum;
  __syncthreads();
  if (threadIdx.x < 32) {
    float s = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.0f;
    s = warp_sum(s);
    if (threadIdx.x == 0) partial[0] = s;
  }
  __syncthreads();
  return 1.0f / sqrtf(partial[0] / float(dim) + eps);
}

// One block per row. Sum of squares in f32 (the CPU sums in double; the difference is ~1e-7).
__global__ void rmsnorm_kernel(const float* x, const float* w, float* out, int dim, float eps) {
  const float* xr = x + size_t(blockIdx.x) * dim;
  float* o = out + size_t(blockIdx.x) * dim;
  const float scale = rms_scale(xr, dim, eps);
  for (int k = threadIdx.x; k < dim; k += blockDim.x) o[k] = xr[k] * scale * w[k];
}

// rmsnorm_kernel and quantize_q8_kernel in one launch (decode: one block per token): the same
// sum of squares and scale, the same normalized values, then one warp per 32-value block.
__global__ void rmsnorm_q8_kernel(const float* x, const float* w, float* out, int8_t* q, float* d, int dim, float eps) {
  const float* xr = x + size_t(blockIdx.x) * dim;
  const float scale = rms_scale(xr, dim, eps);
  const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  const int nb = dim / 32;
  for (int b = threadIdx.x >> 5; b < nb; b += warps) {
    const size_t k = size_t(b) * 32 + lane;
    const float v = xr[k] * scale * w[k];
    if (out) out[size_t(blockIdx.x) * dim + k] = v;
    const float amax = warp_max(fabsf(v));
    const float inv = amax != 0.0f ? 127.0f / amax : 0.0f;
    q[size_t(blockIdx.x) * dim + k] = int8_t(__float2int_rn(v * inv));
    if (lane == 0) d[size_t(blockIdx.x) * nb + b] = __half2float(__float2half_rn(amax / 127.0f));
  }
}

__global__ void to_f16_kernel(const float* x, __half* out, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    out[i] = __float2half_rn(x[i]);
}

// One warp per 32-value block, rounding as the CPU's quantize_q8_0 (llama.cpp's): d = amax / 127
// stored as fp16, q = round-half-even(x * (127 / amax)).
__global__ void quantize_q8_kernel(const float* x, int8_t* q, float* d, size_t n_blocks) {
  const size_t b = (blockIdx.x * size_t(blockDim.x) + threadIdx.x) >> 5;
  if (b >= n_blocks) return;
  const int lane = threadIdx.x & 31;
  const float v = x[b * 32 + lane];
  const float amax = warp_max(fabsf(v));
  const float inv = amax != 0.0f ? 127.0f / amax : 0.0f;
  q[b * 32 + lane] = int8_t(__float2int_rn(v * inv));
  if (lane == 0) d[b] = __half2float(__float2half_rn(amax / 127.0f));
}

__global__ void swiglu_kernel(const float* gu, int ffn, float* out, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const size_t t = i / ffn, j = i % ffn;
    const float g = gu[t * 2 * ffn + j], u = gu[t * 2 * ffn + ffn + j];
    out[i] = g / (1.0f + expf(-g)) * u;
  }
}

__global__ void repack_q8_0_kernel(const uint8_t* raw, size_t n_blocks, int8_t* q, uint16_t* scales) {
  const size_t b = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (b >= n_blocks) return;
  const uint8_t* src = raw + b * 34;
  scales[b] = uint16_t(src[0] | (src[1] << 8));
  int8_t* dst = q + b * 32;
#pragma unroll
  for (int i = 0; i < 32; i++) dst[i] = int8_t(src[2 + i]);
}

int grid_for(size_t n, int threads) {
  const size_t blocks = (n + threads - 1) / threads;
  return int(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

}  // namespace

void embed(const DevMatrix& table, const int32_t* tokens, int nt, float* x, cudaStream_t stream) {
  if (table.type == WType::Blocks) {
    if (table.n_segments != 1) throw Error("embed: a Blocks table must be one segment");
    const BlockSegment seg = table.segments[0];
    check_segment(seg);
    with_block_type(seg.type, [&](auto type) { embed_blocks_kernel<decltype(type)::value><<<nt, 128, 0, stream>>>(seg, table.cols, tokens, x); });
  } else {
    embed_kernel<<<nt, 256, 0, stream>>>(table, tokens, x);
  }
  check_kernel("embed");
}

void dequantize_f16(const DevMatrix& w, int segment, int first, int rows, uint16_t* out, cudaStream_t stream) {
  if (w.type != WType::Blocks || segment < 0 || segment >= w.n_segments) throw Error("dequantize_f16: not a Blocks segment");
  const BlockSegment seg = w.segments[segment];
  check_segment(seg);
  if (first < 0 || rows <= 0 || first + rows > seg.rows) throw Error("dequantize_f16: rows out of range");
  const size_t threads = size_t(rows) * (w.cols / 32);
  const unsigned grid = unsigned((threads + 255) / 256);
  with_block_type(seg.type, [&](auto type) {
    dequantize_f16_kernel<decltype(type)::value><<<grid, 256, 0, stream>>>(seg, w.cols, first, rows, out);
  });
  check_kernel("dequantize_f16");
}

void rmsnorm(const float* x, const float* weight, float* out, int rows, int dim, float eps, cudaStream_t stream) {
  if (rows <= 0) return;
  rmsnorm_kernel<<<rows, 512, 0, stream>>>(x, weight, out, dim, eps);
  check_kernel("rmsnorm");
}

void rmsnorm_q8(const float* x, const float* weight, float* out, Q8Act xq, int rows, int dim, float eps,
                cudaStream_t stream) {
  if (rows <= 0) return;
  rmsnorm_q8_kernel<<<rows, 512, 0, stream>>>(x, weight, out, xq.q, xq.d, dim, eps);
  check_kernel("rmsnorm_q8");
}

void to_f16(const float* x, uint16_t* out, size_t n, cudaStream_t stream) {
  to_f16_kernel<<<grid_for(n, 256), 256, 0, stream>>>(x, reinterpret_cast<__half*>(out), n);
  check_kernel("to_f16");
}

void quantize_q8(const float* x, Q8Act out, int rows, int cols, cudaStream_t stream) {
  const size_t n_blocks = size_t(rows) * (cols / 32);
  quantize_q8_kernel<<<int((n_blocks * 32 + 255) / 256), 256, 0, stream>>>(x, out.q, out.d, n_blocks);
  check_kernel("quantize_q8");
}

void swiglu(const float* gate_up, int nt, int ffn, float* out, cudaStream_t stream) {
  const size_t n = size_t(nt) * ffn;
  swiglu_kernel<<<grid_for(n, 256), 256, 0, stream>>>(gate_up, ffn, out, n);
  check_kernel("swiglu");
}

void repack_q8_0(const uint8_t* raw, int rows, int cols, int8_t* q, uint16_t* scales, cudaStream_t stream) {
  const size_t n_blocks = size_t(rows) * (cols / 32);
  repack_q8_0_kernel<<<int((n_blocks + 255) / 256), 256, 0, stream>>>(raw, n_blocks, q, scales);
  check_kernel("repack_q8_0");
}

}  // namespace ilm::cuda
