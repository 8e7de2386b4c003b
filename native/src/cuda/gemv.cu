// Matrix-vector kernels for decode (1..8 tokens): each warp streams two weight rows with 16-byte
// loads, several in flight per lane, and dots them with every token's activations (which stay
// in L1). The weights dominate the bytes moved, so these run at memory bandwidth when the grid
// fills the GPU (rows / 16 blocks of 256 threads).
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

template <int NT, int MODE>
__device__ __forceinline__ void finish(float (&acc)[2][NT], const RowPair& p, int nt, float* y, int ldy) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int r = 0; r < 2; r++)
#pragma unroll
    for (int t = 0; t < NT; t++) acc[r][t] = warp_sum(acc[r][t]);
  if (lane != 0) return;
#pragma unroll
  for (int t = 0; t < NT; t++) {
    if (t >= nt) break;
    float* out = y + size_t(t) * ldy + p.out;
    if (MODE == kSwiglu) {
      const float g = acc[0][t];
      out[0] = g / (1.0f + expf(-g)) * acc[1][t];
    } else if (MODE == kAdd) {
      out[0] += acc[0][t];
      if (p.has_r1) out[1] += acc[1][t];
    } else {
      out[0] = acc[0][t];
      if (p.has_r1) out[1] = acc[1][t];
    }
  }
}

__device__ __forceinline__ void dot8(float& acc, const float (&w)[8], const float* xt) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(xt));
  const float4 b = __ldg(reinterpret_cast<const float4*>(xt + 4));
  acc += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y + w[6] * b.z + w[7] * b.w;
}

// F32 / F16 / BF16 weights, f32 activations.
template <WType T, int NT, int MODE>
__global__ void __launch_bounds__(kThreads) gemv_float_kernel(DevMatrix w, const float* x, int nt, float* y, int ldy) {
  using L = Weights8<T>;
  const RowPair p = row_pair<MODE>(w.rows);
  if (!p.valid) return;
  const int K = w.cols, lane = threadIdx.x & 31;
  const size_t elem = T == WType::F32 ? 4 : 2;
  const char* rows[2] = {static_cast<const char*>(w.data) + size_t(p.r0) * K * elem,
                         static_cast<const char*>(w.data) + size_t(p.r1) * K * elem};
  float acc[2][NT] = {};
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
        const float* xt = x + size_t(t) * K + (c + 32 * u) * 8;
        dot8(acc[0][t], wv[0], xt);
        dot8(acc[1][t], wv[1], xt);
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
      dot8(acc[0][t], wv[0], x + size_t(t) * K + c * 8);
      dot8(acc[1][t], wv[1], x + size_t(t) * K + c * 8);
    }
  }
  finish<NT, MODE>(acc, p, nt, y, ldy);
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
__global__ void __launch_bounds__(kThreads) gemv_q8_kernel(DevMatrix w, Q8Act xq, int nt, float* y, int ldy) {
  constexpr int U = 2;
  const RowPair p = row_pair<MODE>(w.rows);
  if (!p.valid) return;
  const int K = w.cols, nb = K / 32, lane = threadIdx.x & 31;
  const int8_t* q = static_cast<const int8_t*>(w.data);
  const int rr[2] = {p.r0, p.r1};
  float acc[2][NT] = {};
  int b = lane;
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
  finish<NT, MODE>(acc, p, nt, y, ldy);
}

template <int NT, int MODE>
void launch(const DevMatrix& w, const float* x, const Q8Act& xq, int nt, float* y, int ldy, cudaStream_t s) {
  const int warps_needed = MODE == kSwiglu ? w.rows / 2 : ceil_div(w.rows, 2);
  const int grid = ceil_div(warps_needed, kWarps);
  switch (w.type) {
    case WType::F32: gemv_float_kernel<WType::F32, NT, MODE><<<grid, kThreads, 0, s>>>(w, x, nt, y, ldy); break;
    case WType::F16: gemv_float_kernel<WType::F16, NT, MODE><<<grid, kThreads, 0, s>>>(w, x, nt, y, ldy); break;
    case WType::BF16: gemv_float_kernel<WType::BF16, NT, MODE><<<grid, kThreads, 0, s>>>(w, x, nt, y, ldy); break;
    case WType::Q8: gemv_q8_kernel<NT, MODE><<<grid, kThreads, 0, s>>>(w, xq, nt, y, ldy); break;
  }
  check_kernel("gemv");
}

template <int MODE>
void dispatch(const DevMatrix& w, const float* x, const Q8Act& xq, int nt, float* y, int ldy, cudaStream_t s) {
  // Decode is one token; 2..8 (short appends) share one guarded variant to keep builds small.
  if (nt == 1)
    launch<1, MODE>(w, x, xq, nt, y, ldy, s);
  else
    launch<kGemvMaxTokens, MODE>(w, x, xq, nt, y, ldy, s);
}

}  // namespace

void gemv(const DevMatrix& w, const float* x, const Q8Act& xq, int nt, float* y, int ldy, Epilogue epilogue,
          cudaStream_t stream) {
  if (epilogue == Epilogue::Add)
    dispatch<kAdd>(w, x, xq, nt, y, ldy, stream);
  else
    dispatch<kStore>(w, x, xq, nt, y, ldy, stream);
}

void gemv_swiglu(const DevMatrix& w13, const float* x, const Q8Act& xq, int nt, float* out, cudaStream_t stream) {
  dispatch<kSwiglu>(w13, x, xq, nt, out, w13.rows / 2, stream);
}

}  // namespace ilm::cuda
