// Matrix-vector kernels for decode (1..8 tokens): each warp streams two weight rows with 16-byte
// loads, several in flight per lane, and dots them with every token's activations (which stay
// in L1). The weights dominate the bytes moved, so these run at memory bandwidth when the grid
// fills the GPU (rows / 16 blocks of 256 threads). Fusions (kernels.h): SwiGLU of a [gate; up]
// matrix, the residual add with per-block sums of squares, and the next RMSNorm applied to x as
// it is loaded, so a decode layer needs no separate norm kernels for float weights.
#include "cuda/common.cuh"

namespace ilm::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kUnroll = 4;  // 16-byte chunks in flight per lane and row

enum Mode { kStore = 0, kAdd = 1, kSwiglu = 2 };

// The two rows a warp computes: consecutive rows, or (gate i, up i) of a [gate; up] matrix.
struct RowPair {
  int r0, r1, out;  // out: output index of r0 (and of the pair in swiglu mode)
  bool valid, has_r1;
};

template <int MODE>
__device__ __forceinline__ RowPair row_pair(int rows) {
  const int w = blockIdx.x * kWarps + (threadIdx.x >> 5);
  RowPair p;
  if (MODE == kSwiglu) {
    const int ffn = rows / 2;
    p.r0 = w;
    p.r1 = w + ffn;
    p.out = w;
    p.valid = w < ffn;
    p.has_r1 = true;
  } else {
    p.r0 = 2 * w;
    p.r1 = min(2 * w + 1, rows - 1);
    p.out = 2 * w;
    p.valid = p.r0 < rows;
    p.has_r1 = 2 * w + 1 < rows;
  }
  return p;
}

// Warp sums, then lane 0 writes the warp's outputs. With ss_out (residual mode), each block also
// leaves the sum of squares of the rows it updated, per token, for the next GEMV's RMSNorm
// (warps added in a fixed order: the same result on every run).
template <int NT, int MODE>
__device__ __forceinline__ void finish(float (&acc)[2][NT], const RowPair& p, int nt, float* y, int ldy, float* ss_out) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int r = 0; r < 2; r++)
#pragma unroll
    for (int t = 0; t < NT; t++) acc[r][t] = warp_sum(acc[r][t]);
  float ss[NT];
#pragma unroll
  for (int t = 0; t < NT; t++) ss[t] = 0.0f;
  if (lane == 0 && p.valid) {
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t >= nt) break;
      float* out = y + size_t(t) * ldy + p.out;
      if (MODE == kSwiglu) {
        const float g = acc[0][t];
        out[0] = g / (1.0f + expf(-g)) * acc[1][t];
      } else if (MODE == kAdd) {
        const float v0 = out[0] + acc[0][t];
        out[0] = v0;
        ss[t] = v0 * v0;
        if (p.has_r1) {
          const float v1 = out[1] + acc[1][t];
          out[1] = v1;
          ss[t] += v1 * v1;
        }
      } else {
        out[0] = acc[0][t];
        if (p.has_r1) out[1] = acc[1][t];
      }
    }
  }
  if (MODE == kAdd && ss_out) {  // the same for the whole block
    __shared__ float s_ss[kWarps][NT];
    if (lane == 0) {
#pragma unroll
      for (int t = 0; t < NT; t++) s_ss[warp][t] = ss[t];
    }
    __syncthreads();
    if (int(threadIdx.x) < nt) {
      float s = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; w++) s += s_ss[w][threadIdx.x];
      ss_out[size_t(threadIdx.x) * gridDim.x + blockIdx.x] = s;
    }
  }
}

// RMSNorm's scale per token from the previous residual GEMV's partial sums (one warp per token,
// fixed order), as rmsnorm() computes it: 1 / sqrt(mean + eps).
template <int NT>
__device__ __forceinline__ void norm_scales(const NormIn& norm, int nt, int dim, float (&s_scale)[NT]) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (warp < nt && warp < NT) {
    const float* part = norm.partials + size_t(warp) * norm.n_partials;
    float s = 0.0f;
    for (int i = lane; i < norm.n_partials; i += 32) s += part[i];
    s = warp_sum(s);
    if (lane == 0) s_scale[warp] = 1.0f / sqrtf(s / float(dim) + norm.eps);
  }
  __syncthreads();
}

// Eight activations of token t from k on; with NORM, as rmsnorm() would have written them:
// x * scale * weight.
template <bool NORM, int NT>
__device__ __forceinline__ void load_x8(const float* x, int K, int t, int k, const NormIn& norm,
                                        const float (&s_scale)[NT], float4& a, float4& b) {
  const float* xt = x + size_t(t) * K + k;
  a = __ldg(reinterpret_cast<const float4*>(xt));
  b = __ldg(reinterpret_cast<const float4*>(xt + 4));
  if constexpr (NORM) {
    const float sc = s_scale[t];
    const float4 na = __ldg(reinterpret_cast<const float4*>(norm.weight + k));
    const float4 nb = __ldg(reinterpret_cast<const float4*>(norm.weight + k + 4));
    a = make_float4(a.x * sc * na.x, a.y * sc * na.y, a.z * sc * na.z, a.w * sc * na.w);
    b = make_float4(b.x * sc * nb.x, b.y * sc * nb.y, b.z * sc * nb.z, b.w * sc * nb.w);
  }
}

__device__ __forceinline__ void dot8(float& acc, const float (&w)[8], const float4& a, const float4& b) {
  acc += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y + w[6] * b.z + w[7] * b.w;
}

// F32 / F16 / BF16 weights, f32 activations (normalized on the fly with NORM).
template <WType T, int NT, int MODE, bool NORM>
__global__ void __launch_bounds__(kThreads)
    gemv_float_kernel(DevMatrix w, const float* x, int nt, float* y, int ldy, NormIn norm, float* ss_out) {
  using L = Weights8<T>;
  __shared__ float s_scale[NT];
  if constexpr (NORM) norm_scales<NT>(norm, nt, w.cols, s_scale);
  const RowPair p = row_pair<MODE>(w.rows);
  const int K = w.cols, lane = threadIdx.x & 31;
  float acc[2][NT] = {};
  if (p.valid) {
    const size_t elem = T == WType::F32 ? 4 : 2;
    const char* rows[2] = {static_cast<const char*>(w.data) + size_t(p.r0) * K * elem,
                           static_cast<const char*>(w.data) + size_t(p.r1) * K * elem};
    const int chunks = K / 8;
    int c = lane;
    for (; c + 32 * (kUnroll - 1) < chunks; c += 32 * kUnroll) {
      uint4 raw[2][kUnroll][L::kLoads];
#pragma unroll
      for (int u = 0; u < kUnroll; u++)
#pragma unroll
        for (int r = 0; r < 2; r++) L::load(rows[r], (c + 32 * u) * 8, raw[r][u]);
#pragma unroll
      for (int u = 0; u < kUnroll; u++) {
        float wv[2][8];
        L::unpack(raw[0][u], wv[0]);
        L::unpack(raw[1][u], wv[1]);
#pragma unroll
        for (int t = 0; t < NT; t++) {
          if (t >= nt) break;
          float4 a, b;
          load_x8<NORM, NT>(x, K, t, (c + 32 * u) * 8, norm, s_scale, a, b);
          dot8(acc[0][t], wv[0], a, b);
          dot8(acc[1][t], wv[1], a, b);
        }
      }
    }
    for (; c < chunks; c += 32) {
      uint4 raw[2][L::kLoads];
      L::load(rows[0], c * 8, raw[0]);
      L::load(rows[1], c * 8, raw[1]);
      float wv[2][8];
      L::unpack(raw[0], wv[0]);
      L::unpack(raw[1], wv[1]);
#pragma unroll
      for (int t = 0; t < NT; t++) {
        if (t >= nt) break;
        float4 a, b;
        load_x8<NORM, NT>(x, K, t, c * 8, norm, s_scale, a, b);
        dot8(acc[0][t], wv[0], a, b);
        dot8(acc[1][t], wv[1], a, b);
      }
    }
  }
  finish<NT, MODE>(acc, p, nt, y, ldy, ss_out);
}

__device__ __forceinline__ int dot32_s8(const uint4 (&w)[2], const uint4 (&a)[2]) {
  int s = 0;
  s = __dp4a(int(w[0].x), int(a[0].x), s);
  s = __dp4a(int(w[0].y), int(a[0].y), s);
  s = __dp4a(int(w[0].z), int(a[0].z), s);
  s = __dp4a(int(w[0].w), int(a[0].w), s);
  s = __dp4a(int(w[1].x), int(a[1].x), s);
  s = __dp4a(int(w[1].y), int(a[1].y), s);
  s = __dp4a(int(w[1].z), int(a[1].z), s);
  s = __dp4a(int(w[1].w), int(a[1].w), s);
  return s;
}

// Q8 weights with Q8 activations: exact integer sums per 32-block, then (dw * dx) * sum, as the
// CPU backend's Q8_0 kernels compute it. One lane per block of 32.
template <int NT, int MODE>
__global__ void __launch_bounds__(kThreads) gemv_q8_kernel(DevMatrix w, Q8Act xq, int nt, float* y, int ldy, float* ss_out) {
  constexpr int U = 2;
  const RowPair p = row_pair<MODE>(w.rows);
  const int K = w.cols, nb = K / 32, lane = threadIdx.x & 31;
  const int8_t* q = static_cast<const int8_t*>(w.data);
  const int rr[2] = {p.r0, p.r1};
  float acc[2][NT] = {};
  int b = p.valid ? lane : nb;  // a warp past the last row only joins finish()'s block sum
  auto step = [&](const uint4 (&wq)[2][2], const float (&wd)[2], int blk) {
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t >= nt) break;
      const uint4* xa = reinterpret_cast<const uint4*>(xq.q + size_t(t) * K + size_t(blk) * 32);
      const uint4 a[2] = {__ldg(xa), __ldg(xa + 1)};
      const float dx = __ldg(xq.d + size_t(t) * nb + blk);
#pragma unroll
      for (int r = 0; r < 2; r++) acc[r][t] += (wd[r] * dx) * float(dot32_s8(wq[r], a));
    }
  };
  for (; b + 32 * (U - 1) < nb; b += 32 * U) {
    uint4 wq[U][2][2];
    float wd[U][2];
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
      for (int r = 0; r < 2; r++) {
        const int8_t* src = q + size_t(rr[r]) * K + size_t(b + 32 * u) * 32;
        wq[u][r][0] = load_stream(src);
        wq[u][r][1] = load_stream(src + 16);
        wd[u][r] = half_bits_to_float(w.scales[size_t(rr[r]) * nb + b + 32 * u]);
      }
#pragma unroll
    for (int u = 0; u < U; u++) step(wq[u], wd[u], b + 32 * u);
  }
  for (; b < nb; b += 32) {
    uint4 wq[2][2];
    float wd[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const int8_t* src = q + size_t(rr[r]) * K + size_t(b) * 32;
      wq[r][0] = load_stream(src);
      wq[r][1] = load_stream(src + 16);
      wd[r] = half_bits_to_float(w.scales[size_t(rr[r]) * nb + b]);
    }
    step(wq, wd, b);
  }
  finish<NT, MODE>(acc, p, nt, y, ldy, ss_out);
}

// One segment of a Blocks matrix (quant_blocks.h) with Q8 activations: per 32 weights, exact
// integer dots of the weights' codes with the activations' codes and of the activations' code sum
// (for the offset of asymmetric types), per half, then scaled: dx * (s0 * dot0 + o0 * sum0 + ...).
// One lane per 32 weights; a warp's lanes read neighbouring blocks, so its loads stay coalesced.
template <BlockType T, int NT, int MODE>
__global__ void __launch_bounds__(kThreads)
    gemv_blocks_kernel(BlockSegment seg, int K, Q8Act xq, int nt, float* y, int ldy, float* ss_out) {
  const RowPair p = row_pair<MODE>(seg.rows);
  const int ng = K / 32, lane = threadIdx.x & 31;
  const uint8_t* rows[2] = {seg.data + size_t(p.r0) * seg.row_bytes, seg.data + size_t(p.r1) * seg.row_bytes};
  float acc[2][NT] = {};
  for (int g = p.valid ? lane : ng; g < ng; g += 32) {  // a warp past the last row only joins finish()
    Group32 w[2];
    unpack_group<T>(rows[0], g, w[0]);
    unpack_group<T>(rows[1], g, w[1]);
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t >= nt) break;
      const uint4* xa = reinterpret_cast<const uint4*>(xq.q + size_t(t) * K + size_t(g) * 32);
      const uint4 a0 = __ldg(xa), a1 = __ldg(xa + 1);
      const float dx = __ldg(xq.d + size_t(t) * ng + g);
      constexpr int kOnes = 0x01010101;
      const int sum0 = __dp4a(kOnes, int(a0.w), __dp4a(kOnes, int(a0.z), __dp4a(kOnes, int(a0.y), __dp4a(kOnes, int(a0.x), 0))));
      const int sum1 = __dp4a(kOnes, int(a1.w), __dp4a(kOnes, int(a1.z), __dp4a(kOnes, int(a1.y), __dp4a(kOnes, int(a1.x), 0))));
#pragma unroll
      for (int r = 0; r < 2; r++) {
        const uint32_t* c = w[r].codes;
        const int dot0 = __dp4a(int(c[3]), int(a0.w), __dp4a(int(c[2]), int(a0.z), __dp4a(int(c[1]), int(a0.y), __dp4a(int(c[0]), int(a0.x), 0))));
        const int dot1 = __dp4a(int(c[7]), int(a1.w), __dp4a(int(c[6]), int(a1.z), __dp4a(int(c[5]), int(a1.y), __dp4a(int(c[4]), int(a1.x), 0))));
        acc[r][t] += dx * (w[r].scale[0] * float(dot0) + w[r].offset[0] * float(sum0) +
                           w[r].scale[1] * float(dot1) + w[r].offset[1] * float(sum1));
      }
    }
  }
  finish<NT, MODE>(acc, p, nt, y, ldy, ss_out);
}

template <BlockType T, int MODE>
void launch_blocks_typed(const BlockSegment& seg, int K, const Q8Act& xq, int nt, float* y, int ldy, cudaStream_t s,
                         float* ss_out) {
  const int grid = ceil_div(ceil_div(seg.rows, 2), kWarps);
  if (nt == 1)
    gemv_blocks_kernel<T, 1, MODE><<<grid, kThreads, 0, s>>>(seg, K, xq, nt, y, ldy, ss_out);
  else
    gemv_blocks_kernel<T, kGemvMaxTokens, MODE><<<grid, kThreads, 0, s>>>(seg, K, xq, nt, y, ldy, ss_out);
  check_kernel("gemv (blocks)");
}

template <int MODE>
void launch_blocks(const DevMatrix& w, const Q8Act& xq, int nt, float* y, int ldy, cudaStream_t s, float* ss_out) {
  if (nt < 1 || nt > kGemvMaxTokens) throw Error("gemv: " + std::to_string(nt) + " tokens (1.." + std::to_string(kGemvMaxTokens) + ")");
  if (ss_out && w.n_segments != 1) throw Error("gemv: sums of squares need a single-segment matrix");
  for (int i = 0; i < w.n_segments; i++) {
    const BlockSegment& seg = w.segments[i];
    check_segment(seg);
    float* ys = y + seg.first_row;
    with_block_type(seg.type, [&](auto type) {
      launch_blocks_typed<decltype(type)::value, MODE>(seg, w.cols, xq, nt, ys, ldy, s, ss_out);
    });
  }
}

template <int NT, int MODE, bool NORM>
void launch(const DevMatrix& w, const float* x, const Q8Act& xq, int nt, float* y, int ldy, cudaStream_t s,
            const NormIn& norm, float* ss_out) {
  const int warps_needed = MODE == kSwiglu ? w.rows / 2 : ceil_div(w.rows, 2);
  const int grid = ceil_div(warps_needed, kWarps);
  switch (w.type) {
    case WType::F32: gemv_float_kernel<WType::F32, NT, MODE, NORM><<<grid, kThreads, 0, s>>>(w, x, nt, y, ldy, norm, ss_out); break;
    case WType::F16: gemv_float_kernel<WType::F16, NT, MODE, NORM><<<grid, kThreads, 0, s>>>(w, x, nt, y, ldy, norm, ss_out); break;
    case WType::BF16: gemv_float_kernel<WType::BF16, NT, MODE, NORM><<<grid, kThreads, 0, s>>>(w, x, nt, y, ldy, norm, ss_out); break;
    case WType::Q8:
      if (NORM) throw Error("gemv: Q8 weights read quantized activations; normalize them with rmsnorm_q8 first");
      gemv_q8_kernel<NT, MODE><<<grid, kThreads, 0, s>>>(w, xq, nt, y, ldy, ss_out);
      break;
    case WType::Blocks: throw Error("gemv: internal: Blocks matrices take launch_blocks");
  }
  check_kernel("gemv");
}

template <int MODE>
void dispatch(const DevMatrix& w, const float* x, const Q8Act& xq, int nt, float* y, int ldy, cudaStream_t s,
              const NormIn& norm, float* ss_out) {
  if (nt < 1 || nt > kGemvMaxTokens) throw Error("gemv: " + std::to_string(nt) + " tokens (1.." + std::to_string(kGemvMaxTokens) + ")");
  // Decode is one token; 2..8 (short appends) share one guarded variant to keep builds small.
  // Residual (Add) GEMVs read attention or FFN outputs, never a norm's.
  if constexpr (MODE != kAdd) {
    if (norm.weight) {
      if (nt == 1)
        launch<1, MODE, true>(w, x, xq, nt, y, ldy, s, norm, ss_out);
      else
        launch<kGemvMaxTokens, MODE, true>(w, x, xq, nt, y, ldy, s, norm, ss_out);
      return;
    }
  } else {
    if (norm.weight) throw Error("gemv: a residual GEMV takes no norm");
  }
  if (nt == 1)
    launch<1, MODE, false>(w, x, xq, nt, y, ldy, s, norm, ss_out);
  else
    launch<kGemvMaxTokens, MODE, false>(w, x, xq, nt, y, ldy, s, norm, ss_out);
}

}  // namespace

void gemv(const DevMatrix& w, const float* x, const Q8Act& xq, int nt, float* y, int ldy, Epilogue epilogue,
          cudaStream_t stream, const NormIn& norm, float* ss_out) {
  static_assert(kWarps * 2 == kGemvRowsPerBlock, "a block computes kGemvRowsPerBlock rows");
  if (w.type == WType::Blocks) {
    if (norm.weight) throw Error("gemv: Blocks weights read quantized activations; normalize them with rmsnorm_q8 first");
    if (epilogue == Epilogue::Add)
      launch_blocks<kAdd>(w, xq, nt, y, ldy, stream, ss_out);
    else
      launch_blocks<kStore>(w, xq, nt, y, ldy, stream, nullptr);
    return;
  }
  if (epilogue == Epilogue::Add)
    dispatch<kAdd>(w, x, xq, nt, y, ldy, stream, norm, ss_out);
  else
    dispatch<kStore>(w, x, xq, nt, y, ldy, stream, norm, nullptr);
}

void gemv_swiglu(const DevMatrix& w13, const float* x, const Q8Act& xq, int nt, float* out, cudaStream_t stream,
                 const NormIn& norm) {
  if (w13.type == WType::Blocks) throw Error("gemv_swiglu: not for Blocks matrices (gemv, then swiglu)");
  dispatch<kSwiglu>(w13, x, xq, nt, out, w13.rows / 2, stream, norm, nullptr);
}

}  // namespace ilm::cuda
