// Prefill GEMMs on tensor cores with mma.sync: Y[t][r] = X[t] . W[r] for a chunk of tokens.
// A 128x128 output tile per block of 8 warps (each 64 tokens x 32 rows), K in steps of 32 values
// (f16) or 64 bytes (int8), two shared-memory stages fed through registers: the next tile's
// global loads are in flight while the current one is multiplied, and weights are converted to
// fp16 (BF16, F32) between the load and the shared-memory store, so no converted copy exists.
// Shared rows are padded to 80 bytes, which makes every ldmatrix conflict-free.
#include "cuda/common.cuh"

namespace ilm::cuda {
namespace {

constexpr int BM = 128;  // tokens per tile
constexpr int BN = 128;  // weight rows per tile
constexpr int kThreads = 256;
constexpr int kRowBytes = 64;             // K bytes per stage: 32 halves or 64 int8
constexpr int kPitch = kRowBytes + 16;    // padded shared row

enum Mode { kStore = 0, kAdd = 1 };

// Which 16-byte chunk of a 128-row x 64-byte stage thread `tid` moves in its step j (of 2).
__device__ __forceinline__ void chunk_of(int tid, int j, int& row, int& byte) {
  const int i = tid + j * kThreads;
  row = i >> 2;
  byte = (i & 3) * 16;
}

// Raw weight bytes for 8 values, loaded now and converted to fp16 after the math of the stage.
template <WType T>
struct WChunk {
  static constexpr int kLoads = T == WType::F32 ? 2 : 1;
  uint4 raw[kLoads];
  __device__ __forceinline__ void load(const DevMatrix& w, int r, int k, bool ok) {
    const size_t elem = size_t(r) * w.cols + k;
    if constexpr (T == WType::F32) {
      const float* p = static_cast<const float*>(w.data) + elem;
      raw[0] = ok ? load_stream(p) : make_uint4(0, 0, 0, 0);
      raw[1] = ok ? load_stream(p + 4) : make_uint4(0, 0, 0, 0);
    } else {
      raw[0] = ok ? load_stream(static_cast<const uint16_t*>(w.data) + elem) : make_uint4(0, 0, 0, 0);
    }
  }
  __device__ __forceinline__ uint4 as_half8() const {
    if constexpr (T == WType::F16) {
      return raw[0];
    } else {
      float f[8];
      Weights8<T>::unpack(raw, f);
      return make_uint4(pack_half2(f[0], f[1]), pack_half2(f[2], f[3]), pack_half2(f[4], f[5]), pack_half2(f[6], f[7]));
    }
  }
};

// A fragments (16 tokens x 16 halves / 32 bytes) and B fragments (2 x 8 rows) of one k step.
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const uint8_t* tile, int row0, int byte0, int lane) {
  ldmatrix_x4(a, smem_u32(tile + (row0 + (lane & 15)) * kPitch + byte0 + (lane >> 4) * 16));
}
// Fills b[nt] and b[nt + 1] (rows row0..row0+15).
__device__ __forceinline__ void load_b2(uint32_t (&b)[4][2], int nt, const uint8_t* tile, int row0, int byte0, int lane) {
  uint32_t r[4];
  ldmatrix_x4(r, smem_u32(tile + (row0 + (lane >> 4) * 8 + (lane & 7)) * kPitch + byte0 + ((lane >> 3) & 1) * 16));
  b[nt][0] = r[0];
  b[nt][1] = r[1];
  b[nt + 1][0] = r[2];
  b[nt + 1][1] = r[3];
}

template <int MODE>
__device__ __forceinline__ void store_tile(const float (&acc)[4][4][4], int m0, int n0, int M, int N, float* y, int ldy) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int mt = 0; mt < 4; mt++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int t = m0 + mt * 16 + (lane >> 2) + h * 8;
      if (t >= M) continue;
      float* yr = y + size_t(t) * ldy;
#pragma unroll
      for (int nt = 0; nt < 4; nt++) {
        const int r = n0 + nt * 8 + (lane & 3) * 2;
#pragma unroll
        for (int e = 0; e < 2; e++) {
          if (r + e >= N) continue;
          const float v = acc[mt][nt][h * 2 + e];
          if (MODE == kAdd)
            yr[r + e] += v;
          else
            yr[r + e] = v;
        }
      }
    }
}

// ---------------------------------------------------------------- fp16 x (F16 | BF16 | F32)

template <WType T, int MODE>
__global__ void __launch_bounds__(kThreads) gemm_f16_kernel(DevMatrix w, const __half* x, int M, float* y, int ldy) {
  __shared__ __align__(128) uint8_t xs[2][BM * kPitch];
  __shared__ __align__(128) uint8_t ws[2][BN * kPitch];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;  // token tiles first: see launch()
  const int N = w.rows, K = w.cols;
  const int wm = (warp & 1) * 64, wn = (warp >> 1) * 32;

  uint4 xr[2];
  WChunk<T> wr[2];
  auto load_global = [&](int kt) {
#pragma unroll
    for (int j = 0; j < 2; j++) {
      int row, byte;
      chunk_of(tid, j, row, byte);
      const int k = kt * 32 + byte / 2;
      const bool kin = k < K;
      xr[j] = (kin && m0 + row < M) ? *reinterpret_cast<const uint4*>(x + size_t(m0 + row) * K + k) : make_uint4(0, 0, 0, 0);
      wr[j].load(w, n0 + row, k, kin && n0 + row < N);
    }
  };
  auto store_shared = [&](int buf) {
#pragma unroll
    for (int j = 0; j < 2; j++) {
      int row, byte;
      chunk_of(tid, j, row, byte);
      *reinterpret_cast<uint4*>(&xs[buf][row * kPitch + byte]) = xr[j];
      *reinterpret_cast<uint4*>(&ws[buf][row * kPitch + byte]) = wr[j].as_half8();
    }
  };

  float acc[4][4][4] = {};
  const int kt_count = ceil_div(K, 32);
  load_global(0);
  store_shared(0);
  __syncthreads();
  for (int kt = 0; kt < kt_count; kt++) {
    const int cur = kt & 1;
    if (kt + 1 < kt_count) load_global(kt + 1);
#pragma unroll
    for (int ks = 0; ks < 2; ks++) {
      uint32_t a[4][4], b[4][2];
#pragma unroll
      for (int mt = 0; mt < 4; mt++) load_a(a[mt], xs[cur], wm + mt * 16, ks * 32, lane);
#pragma unroll
      for (int np = 0; np < 2; np++) load_b2(b, 2 * np, ws[cur], wn + np * 16, ks * 32, lane);
#pragma unroll
      for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++) mma_f16(acc[mt][nt], a[mt], b[nt][0], b[nt][1]);
    }
    if (kt + 1 < kt_count) store_shared(cur ^ 1);
    __syncthreads();
  }
  store_tile<MODE>(acc, m0 + wm, n0 + wn, M, N, y, ldy);
}

// ---------------------------------------------------------------- int8 x Q8

template <int MODE>
__global__ void __launch_bounds__(kThreads) gemm_q8_kernel(DevMatrix w, Q8Act xq, int M, float* y, int ldy) {
  __shared__ __align__(128) uint8_t xs[2][BM * kPitch];
  __shared__ __align__(128) uint8_t ws[2][BN * kPitch];
  __shared__ float xd[2][BM][2];
  __shared__ float wd[2][BN][2];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;  // token tiles first: see launch()
  const int N = w.rows, K = w.cols, nb = K / 32;
  const int wm = (warp & 1) * 64, wn = (warp >> 1) * 32;
  const int8_t* wq = static_cast<const int8_t*>(w.data);

  uint4 xr[2], wr[2];
  float xs_scale, ws_scale;
  auto load_global = [&](int kt) {
#pragma unroll
    for (int j = 0; j < 2; j++) {
      int row, byte;
      chunk_of(tid, j, row, byte);
      const int k = kt * 64 + byte;
      const bool kin = k < K;
      xr[j] = (kin && m0 + row < M) ? *reinterpret_cast<const uint4*>(xq.q + size_t(m0 + row) * K + k) : make_uint4(0, 0, 0, 0);
      wr[j] = (kin && n0 + row < N) ? load_stream(wq + size_t(n0 + row) * K + k) : make_uint4(0, 0, 0, 0);
    }
    // One scale of X and one of W per thread: row tid / 2, block tid % 2 of the stage.
    const int row = tid >> 1, blk = kt * 2 + (tid & 1);
    xs_scale = (blk < nb && m0 + row < M) ? xq.d[size_t(m0 + row) * nb + blk] : 0.0f;
    ws_scale = (blk < nb && n0 + row < N) ? half_bits_to_float(w.scales[size_t(n0 + row) * nb + blk]) : 0.0f;
  };
  auto store_shared = [&](int buf) {
#pragma unroll
    for (int j = 0; j < 2; j++) {
      int row, byte;
      chunk_of(tid, j, row, byte);
      *reinterpret_cast<uint4*>(&xs[buf][row * kPitch + byte]) = xr[j];
      *reinterpret_cast<uint4*>(&ws[buf][row * kPitch + byte]) = wr[j];
    }
    xd[buf][tid >> 1][tid & 1] = xs_scale;
    wd[buf][tid >> 1][tid & 1] = ws_scale;
  };

  float acc[4][4][4] = {};
  const int kt_count = ceil_div(K, 64);
  load_global(0);
  store_shared(0);
  __syncthreads();
  for (int kt = 0; kt < kt_count; kt++) {
    const int cur = kt & 1;
    if (kt + 1 < kt_count) load_global(kt + 1);
#pragma unroll
    for (int kb = 0; kb < 2; kb++) {
      uint32_t a[4][4], b[4][2];
#pragma unroll
      for (int mt = 0; mt < 4; mt++) load_a(a[mt], xs[cur], wm + mt * 16, kb * 32, lane);
#pragma unroll
      for (int np = 0; np < 2; np++) load_b2(b, 2 * np, ws[cur], wn + np * 16, kb * 32, lane);
      float dx[4][2], dw[4][2];
#pragma unroll
      for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) dx[mt][h] = xd[cur][wm + mt * 16 + (lane >> 2) + h * 8][kb];
#pragma unroll
      for (int nt = 0; nt < 4; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) dw[nt][e] = wd[cur][wn + nt * 8 + (lane & 3) * 2 + e][kb];
#pragma unroll
      for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
          int s[4];
          mma_s8(s, a[mt], b[nt][0], b[nt][1]);
          // (dw * dx) * sum per 32-block, the CPU's order of operations.
          acc[mt][nt][0] += (dw[nt][0] * dx[mt][0]) * float(s[0]);
          acc[mt][nt][1] += (dw[nt][1] * dx[mt][0]) * float(s[1]);
          acc[mt][nt][2] += (dw[nt][0] * dx[mt][1]) * float(s[2]);
          acc[mt][nt][3] += (dw[nt][1] * dx[mt][1]) * float(s[3]);
        }
    }
    if (kt + 1 < kt_count) store_shared(cur ^ 1);
    __syncthreads();
  }
  store_tile<MODE>(acc, m0 + wm, n0 + wn, M, N, y, ldy);
}

template <int MODE>
void launch(const DevMatrix& w, const uint16_t* x16, const Q8Act& xq, int nt, float* y, int ldy, cudaStream_t s) {
  // blockIdx.x walks the token tiles of one weight tile, so the (up to kMaxBatch / BM = 8) blocks
  // that read a weight tile run together and share it through L2: the weights come from memory
  // once per call, not once per token tile (a 7B's F16 layer is ~0.44 GB; the activations, 8 MB
  // at 1024 tokens, are what L2 keeps instead). rows / BN <= 65535 (grid.y): 8M rows.
  const dim3 grid(ceil_div(nt, BM), ceil_div(w.rows, BN));
  const __half* x = reinterpret_cast<const __half*>(x16);
  switch (w.type) {
    case WType::F32: gemm_f16_kernel<WType::F32, MODE><<<grid, kThreads, 0, s>>>(w, x, nt, y, ldy); break;
    case WType::F16: gemm_f16_kernel<WType::F16, MODE><<<grid, kThreads, 0, s>>>(w, x, nt, y, ldy); break;
    case WType::BF16: gemm_f16_kernel<WType::BF16, MODE><<<grid, kThreads, 0, s>>>(w, x, nt, y, ldy); break;
    case WType::Q8: gemm_q8_kernel<MODE><<<grid, kThreads, 0, s>>>(w, xq, nt, y, ldy); break;
    case WType::Blocks: throw Error("gemm: Blocks matrices are multiplied as dequantize_f16 slices");
  }
  check_kernel("gemm");
}

}  // namespace

void gemm(const DevMatrix& w, const uint16_t* x16, const Q8Act& xq, int nt, float* y, int ldy, Epilogue epilogue,
          cudaStream_t stream) {
  if (epilogue == Epilogue::Add)
    launch<kAdd>(w, x16, xq, nt, y, ldy, stream);
  else
    launch<kStore>(w, x16, xq, nt, y, ldy, stream);
}

}  // namespace ilm::cuda
