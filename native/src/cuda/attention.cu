// Causal GQA attention over the KV cache in any of its types (f32, f16, q8, q4; layout in
// kernels.h: head-major, q8/q4 with a (scale, zero) pair per row).
//
// attention_flash (prefill): one block = 64 query rows of one KV head, where the rows are
// (position, query head) pairs of that head's GQA group, so each K/V tile is read once for the
// whole group. S = Q K^T and O += P V run on tensor cores (mma.sync m16n8k16, f32 accumulators)
// with an online softmax in base 2. f16 tiles of 64 keys are double-buffered with cp.async straight
// into the padded tiles ldmatrix reads; q8/q4 tiles are double-buffered raw (codes and pairs, a
// contiguous span per head) and dequantized into one fp16 tile per tile step.
//
// attention_split (decode, flash-decoding): the keys of each query row are cut into `splits`
// ranges processed by separate blocks (enough blocks to fill the GPU at batch 1); each block
// keeps a running max / sum / weighted V per group of lanes (8 values of a key per lane,
// dequantized in registers), merges them in shared memory, and the last block of a (token, KV
// head) to finish merges the splits (no second kernel). Key ranges come from the device-side start
// position, so a captured decode graph stays valid at every position.
#include <cfloat>

#include "cuda/common.cuh"
#include "cuda/cuda_util.h"

namespace ilm::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

// ---------------------------------------------------------------- one lane's 8 values of a key row

// A code c in the low bits of 0x4b000000 | c is the float 2^23 + c: minus 2^23 gives float(c)
// exactly, without the integer-to-float conversion (a quarter-rate instruction that would bound
// decode attention over a q8/q4 cache below memory bandwidth).
__device__ __forceinline__ float code_float(uint32_t biased) { return __uint_as_float(biased) - 8388608.0f; }

// load(): the raw bytes of values [d0, d0 + 8) of row `slot` (= head * capacity + position);
// unpack(): those values as floats, dequantized exactly as the CPU does (scale * code + zero).
template <KVType KT>
struct KVRow;

template <>
struct KVRow<KVType::F16> {
  struct Raw {
    uint4 v;
  };
  template <int HD>
  __device__ __forceinline__ static Raw load(const KVPlane& p, size_t slot, int d0) {
    return {*reinterpret_cast<const uint4*>(p.data + (slot * HD + d0) * 2)};
  }
  __device__ __forceinline__ static void unpack(const Raw& r, float (&f)[8]) {
    Weights8<WType::F16>::unpack(reinterpret_cast<const uint4(&)[1]>(r.v), f);
  }
};

template <>
struct KVRow<KVType::F32> {
  struct Raw {
    uint4 a, b;
  };
  template <int HD>
  __device__ __forceinline__ static Raw load(const KVPlane& p, size_t slot, int d0) {
    const uint4* src = reinterpret_cast<const uint4*>(p.data + (slot * HD + d0) * 4);
    return {src[0], src[1]};
  }
  __device__ __forceinline__ static void unpack(const Raw& r, float (&f)[8]) {
    f[0] = __uint_as_float(r.a.x), f[1] = __uint_as_float(r.a.y), f[2] = __uint_as_float(r.a.z), f[3] = __uint_as_float(r.a.w);
    f[4] = __uint_as_float(r.b.x), f[5] = __uint_as_float(r.b.y), f[6] = __uint_as_float(r.b.z), f[7] = __uint_as_float(r.b.w);
  }
};

template <>
struct KVRow<KVType::Q8> {
  struct Raw {
    uint2 c;
    float2 sz;
  };
  template <int HD>
  __device__ __forceinline__ static Raw load(const KVPlane& p, size_t slot, int d0) {
    return {*reinterpret_cast<const uint2*>(p.data + slot * HD + d0), *reinterpret_cast<const float2*>(p.sz + 2 * slot)};
  }
  __device__ __forceinline__ static void unpack(const Raw& r, float (&f)[8]) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      f[i] = fmaf(r.sz.x, code_float(__byte_perm(r.c.x, 0x4b000000u, 0x7540u + i)), r.sz.y);
      f[4 + i] = fmaf(r.sz.x, code_float(__byte_perm(r.c.y, 0x4b000000u, 0x7540u + i)), r.sz.y);
    }
  }
};

template <>
struct KVRow<KVType::Q4> {
  struct Raw {
    uint32_t c;
    float2 sz;
  };
  template <int HD>
  __device__ __forceinline__ static Raw load(const KVPlane& p, size_t slot, int d0) {
    return {*reinterpret_cast<const uint32_t*>(p.data + slot * (HD / 2) + d0 / 2),
            *reinterpret_cast<const float2*>(p.sz + 2 * slot)};
  }
  // Byte j holds values 2j (low nibble) and 2j + 1, so value i sits at bits 4i..4i+3.
  __device__ __forceinline__ static void unpack(const Raw& r, float (&f)[8]) {
#pragma unroll
    for (int i = 0; i < 8; i++) f[i] = fmaf(r.sz.x, code_float(((r.c >> (4 * i)) & 0xfu) | 0x4b000000u), r.sz.y);
  }
};

// ---------------------------------------------------------------- flash (tensor cores)

// Prefill tiles dequantized straight to fp16 in half2 arithmetic: a code c put in the mantissa of
// 1024.0 (0x6400) is the half 1024 + c, minus 1024 gives c exactly, then one fused multiply-add
// with the row's scale and zero rounded to fp16. Error against rounding the f32 dequantization:
// a few fp16 ulps of the row's range (the tile is fp16 for the tensor cores either way), in about
// a third of the instructions of the f32 route (the prefill's tile conversion costs mma time).
__device__ __forceinline__ uint32_t h2_fma(uint32_t c2, __half2 scale, __half2 zero) {
  const __half2 codes = __hsub2(*reinterpret_cast<const __half2*>(&c2), __float2half2_rn(1024.0f));
  const __half2 x = __hfma2(scale, codes, zero);
  return *reinterpret_cast<const uint32_t*>(&x);
}

// Eight q8 codes (bytes of c, value 0 lowest) -> eight fp16 values.
__device__ __forceinline__ uint4 dequant8_q8(uint2 c, float2 sz) {
  const __half2 scale = __float2half2_rn(sz.x), zero = __float2half2_rn(sz.y);
  return make_uint4(h2_fma(__byte_perm(c.x, 0x64646464u, 0x5140u), scale, zero),
                    h2_fma(__byte_perm(c.x, 0x64646464u, 0x5342u), scale, zero),
                    h2_fma(__byte_perm(c.y, 0x64646464u, 0x5140u), scale, zero),
                    h2_fma(__byte_perm(c.y, 0x64646464u, 0x5342u), scale, zero));
}

// Eight q4 codes (nibble i of c is value i) -> eight fp16 values. The masks take nibbles i and
// i + 4 into the two halves; a byte permute puts neighbours together again.
__device__ __forceinline__ uint4 dequant8_q4(uint32_t c, float2 sz) {
  const __half2 scale = __float2half2_rn(sz.x), zero = __float2half2_rn(sz.y);
  const uint32_t a0 = (c & 0x000f000fu) | 0x64006400u;          // values 0, 4
  const uint32_t a1 = ((c >> 4) & 0x000f000fu) | 0x64006400u;   // 1, 5
  const uint32_t a2 = ((c >> 8) & 0x000f000fu) | 0x64006400u;   // 2, 6
  const uint32_t a3 = ((c >> 12) & 0x000f000fu) | 0x64006400u;  // 3, 7
  return make_uint4(h2_fma(__byte_perm(a0, a1, 0x5410u), scale, zero), h2_fma(__byte_perm(a2, a3, 0x5410u), scale, zero),
                    h2_fma(__byte_perm(a0, a1, 0x7632u), scale, zero), h2_fma(__byte_perm(a2, a3, 0x7632u), scale, zero));
}

constexpr int kFlashThreads = 128;  // 4 warps x 16 rows
constexpr int kFlashRows = 64;
constexpr int kTileKeys = 64;

template <KVType KT, int HD>
struct FlashLayout {
  static constexpr int P = HD + 8;  // padded row (halves): 16-byte skew per row keeps ldmatrix conflict-free
  static constexpr bool kRaw = KT != KVType::F16;
  static constexpr int CB = KT == KVType::Q8 ? HD : HD / 2;  // code bytes of one key row (q8 / q4)
  static constexpr int kHalfStages = kRaw ? 1 : 2;
  static constexpr int kHalfBytes = 2 /*K,V*/ * kHalfStages * kTileKeys * P * 2;
  static constexpr int kCodeBytes = kRaw ? 2 /*stages*/ * 2 /*K,V*/ * kTileKeys * CB : 0;
  static constexpr int kPairBytes = kRaw ? 2 * 2 * kTileKeys * 8 : 0;
  static constexpr int kBytes = kHalfBytes + kCodeBytes + kPairBytes;
  static_assert(kHalfBytes % 16 == 0 && kCodeBytes % 16 == 0, "16-byte aligned regions");
};

template <KVType KT, int HD>
__global__ void __launch_bounds__(kFlashThreads)
    flash_kernel(const float* q, KVLayer kv, const StepParams* params, AttentionShape sh, float* out) {
  using Lay = FlashLayout<KT, HD>;
  constexpr int P = Lay::P;
  constexpr int KS = HD / 16;
  extern __shared__ __align__(128) uint8_t smem[];
  __half* ks = reinterpret_cast<__half*>(smem);
  __half* vs = ks + Lay::kHalfStages * kTileKeys * P;
  uint8_t* raw_codes = smem + Lay::kHalfBytes;                                       // [stage][K,V][keys * CB]
  float* raw_pairs = reinterpret_cast<float*>(smem + Lay::kHalfBytes + Lay::kCodeBytes);  // [stage][K,V][keys][2]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = blockIdx.y;
  const int G = sh.n_heads / sh.n_kv_heads;
  const int total_rows = sh.nt * G;
  const int row_base = blockIdx.x * kFlashRows;
  const int start = params->start_pos;
  const size_t head_slot = size_t(g) * kv.capacity;  // row index of this head's position 0

  // This thread's two rows (fragment rows lane/4 and lane/4 + 8 of its warp). Rows past the end
  // are computed on a valid position and never stored.
  const int r_lo = row_base + warp * 16 + (lane >> 2), r_hi = r_lo + 8;
  const int c_lo = min(r_lo, total_rows - 1), c_hi = min(r_hi, total_rows - 1);
  const int pos_lo = start + c_lo / G, pos_hi = start + c_hi / G;
  const int t_first = row_base / G, t_last = min(row_base + kFlashRows - 1, total_rows - 1) / G;
  const int kv_len = start + t_last + 1;
  const int n_tiles = ceil_div(kv_len, kTileKeys);
  const int unmasked_below = start + t_first;  // keys <= this are visible to every row of the block

  auto q_row = [&](int r) { return q + (size_t(r / G) * sh.n_heads + size_t(g) * G + r % G) * HD; };
  const float qscale = kLog2e / sqrtf(float(HD));
  uint32_t qf[KS][4];
  {
    const float* qlo = q_row(c_lo);
    const float* qhi = q_row(c_hi);
#pragma unroll
    for (int kk = 0; kk < KS; kk++)
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const float* src = ((i & 1) ? qhi : qlo) + kk * 16 + (lane & 3) * 2 + (i >> 1) * 8;
        qf[kk][i] = pack_half2(src[0] * qscale, src[1] * qscale);
      }
  }

  // f16: a tile's rows go straight into the padded fp16 tile of its stage.
  auto load_tile_f16 = [&](int j, int buf) {
    constexpr int chunks_per_key = HD / 8;
    for (int c = tid; c < kTileKeys * chunks_per_key; c += kFlashThreads) {
      const int key = c / chunks_per_key, d8 = (c % chunks_per_key) * 8;
      const int kpos = j * kTileKeys + key;
      const bool ok = kpos < kv_len;
      const size_t off = ((head_slot + (ok ? kpos : 0)) * HD + d8) * 2;
      const int dst = (buf * kTileKeys + key) * P + d8;
      cp_async16(smem_u32(ks + dst), kv.k.data + off, ok ? 16 : 0);  // zero-filled past the end: 0 * garbage could be NaN
      cp_async16(smem_u32(vs + dst), kv.v.data + off, ok ? 16 : 0);
    }
  };
  // q8/q4: the tile's codes and pairs are one contiguous span per plane (head-major rows; the
  // capacity is a multiple of the tile, so the span is inside the allocation even past kv_len).
  auto load_tile_raw = [&](int j, int stage) {
    constexpr int CB = Lay::CB;
    const size_t slot0 = head_slot + size_t(j) * kTileKeys;
    constexpr int code_chunks = kTileKeys * CB / 16;
    for (int c = tid; c < 2 * code_chunks; c += kFlashThreads) {
      const int plane = c / code_chunks, cc = c % code_chunks;
      const uint8_t* src = (plane ? kv.v.data : kv.k.data) + slot0 * CB + size_t(cc) * 16;
      cp_async16(smem_u32(raw_codes + (stage * 2 + plane) * kTileKeys * CB + cc * 16), src, 16);
    }
    constexpr int pair_chunks = kTileKeys * 8 / 16;
    for (int c = tid; c < 2 * pair_chunks; c += kFlashThreads) {
      const int plane = c / pair_chunks, cc = c % pair_chunks;
      const float* src = (plane ? kv.v.sz : kv.k.sz) + slot0 * 2 + size_t(cc) * 4;
      cp_async16(smem_u32(raw_pairs + (stage * 2 + plane) * kTileKeys * 2 + cc * 4), src, 16);
    }
  };
  // Dequantizes raw stage `stage` (tile j) into the fp16 tiles; keys at or past kv_len become 0.
  auto convert_raw = [&](int j, int stage) {
    constexpr int CB = Lay::CB;
    constexpr int chunks = kTileKeys * (HD / 8);
    for (int c = tid; c < 2 * chunks; c += kFlashThreads) {
      const int plane = c / chunks, cc = c % chunks;
      const int key = cc / (HD / 8), d8 = (cc % (HD / 8)) * 8;
      uint4 h = make_uint4(0, 0, 0, 0);
      if (j * kTileKeys + key < kv_len) {
        const float2 sz = *reinterpret_cast<const float2*>(raw_pairs + ((stage * 2 + plane) * kTileKeys + key) * 2);
        const uint8_t* codes = raw_codes + (stage * 2 + plane) * kTileKeys * CB + key * CB;
        if constexpr (KT == KVType::Q8)
          h = dequant8_q8(*reinterpret_cast<const uint2*>(codes + d8), sz);
        else
          h = dequant8_q4(*reinterpret_cast<const uint32_t*>(codes + d8 / 2), sz);
      }
      *reinterpret_cast<uint4*>((plane ? vs : ks) + key * P + d8) = h;
    }
  };

  float o[HD / 8][4] = {};
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.0f, l_hi = 0.0f;
  if constexpr (Lay::kRaw)
    load_tile_raw(0, 0);
  else
    load_tile_f16(0, 0);
  cp_async_commit();
  for (int j = 0; j < n_tiles; j++) {
    if (j + 1 < n_tiles) {
      if constexpr (Lay::kRaw)
        load_tile_raw(j + 1, (j + 1) & 1);
      else
        load_tile_f16(j + 1, (j + 1) & 1);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const __half* kt;
    const __half* vt;
    if constexpr (Lay::kRaw) {
      convert_raw(j, j & 1);
      __syncthreads();
      kt = ks;
      vt = vs;
    } else {
      kt = ks + (j & 1) * kTileKeys * P;
      vt = vs + (j & 1) * kTileKeys * P;
    }

    float s[8][4] = {};
#pragma unroll
    for (int kk = 0; kk < KS; kk++)
#pragma unroll
      for (int np = 0; np < 4; np++) {
        uint32_t r[4];
        ldmatrix_x4(r, smem_u32(kt + (np * 16 + (lane >> 4) * 8 + (lane & 7)) * P + kk * 16 + ((lane >> 3) & 1) * 8));
        mma_f16(s[2 * np], qf[kk], r[0], r[1]);
        mma_f16(s[2 * np + 1], qf[kk], r[2], r[3]);
      }

    if (j * kTileKeys + kTileKeys - 1 > unmasked_below) {
#pragma unroll
      for (int nt = 0; nt < 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int key = j * kTileKeys + nt * 8 + (lane & 3) * 2 + (e & 1);
          if (key > (e < 2 ? pos_lo : pos_hi)) s[nt][e] = -INFINITY;
        }
    }

    float mx_lo = m_lo, mx_hi = m_hi;
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
      mx_lo = fmaxf(mx_lo, fmaxf(s[nt][0], s[nt][1]));
      mx_hi = fmaxf(mx_hi, fmaxf(s[nt][2], s[nt][3]));
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, off));
      mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, off));
    }
    // Key 0 is visible to every row, so after the first tile both maxima are finite.
    const float a_lo = exp2f(m_lo - mx_lo), a_hi = exp2f(m_hi - mx_hi);
    m_lo = mx_lo;
    m_hi = mx_hi;
    float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
      s[nt][0] = exp2f(s[nt][0] - m_lo);
      s[nt][1] = exp2f(s[nt][1] - m_lo);
      s[nt][2] = exp2f(s[nt][2] - m_hi);
      s[nt][3] = exp2f(s[nt][3] - m_hi);
      sum_lo += s[nt][0] + s[nt][1];
      sum_hi += s[nt][2] + s[nt][3];
    }
    l_lo = l_lo * a_lo + sum_lo;
    l_hi = l_hi * a_hi + sum_hi;
#pragma unroll
    for (int dt = 0; dt < HD / 8; dt++) {
      o[dt][0] *= a_lo;
      o[dt][1] *= a_lo;
      o[dt][2] *= a_hi;
      o[dt][3] *= a_hi;
    }

#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
      // The accumulator layout of two key tiles is the A-fragment layout of one 16-key step.
      const uint32_t pa[4] = {pack_half2(s[2 * kk][0], s[2 * kk][1]), pack_half2(s[2 * kk][2], s[2 * kk][3]),
                              pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < HD / 16; dp++) {
        uint32_t r[4];
        ldmatrix_x4_trans(r, smem_u32(vt + (kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * P + dp * 16 + (lane >> 4) * 8));
        mma_f16(o[2 * dp], pa, r[0], r[1]);
        mma_f16(o[2 * dp + 1], pa, r[2], r[3]);
      }
    }
    // The next iteration's prefetch overwrites this stage (and, for raw tiles, the next
    // conversion overwrites the fp16 tile).
    __syncthreads();
  }

#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    l_lo += __shfl_xor_sync(0xffffffffu, l_lo, off);
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, off);
  }
  const float inv_lo = 1.0f / l_lo, inv_hi = 1.0f / l_hi;
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const int r = h ? r_hi : r_lo;
    if (r >= total_rows) continue;
    float* dst = out + (size_t(r / G) * sh.n_heads + size_t(g) * G + r % G) * HD + (lane & 3) * 2;
    const float inv = h ? inv_hi : inv_lo;
#pragma unroll
    for (int dt = 0; dt < HD / 8; dt++) {
      dst[dt * 8] = o[dt][2 * h] * inv;
      dst[dt * 8 + 1] = o[dt][2 * h + 1] * inv;
    }
  }
}

template <KVType KT, int HD>
void launch_flash(const float* q, const KVLayer& kv, const StepParams* params, const AttentionShape& sh, float* out,
                  cudaStream_t stream) {
  constexpr int smem = FlashLayout<KT, HD>::kBytes;
  // Per device, so set at every (prefill-only) launch; it costs about a microsecond.
  if (cudaFuncSetAttribute(flash_kernel<KT, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) != cudaSuccess) {
    cudaGetLastError();
    throw Error("attention: the GPU cannot give " + std::to_string(smem) + " bytes of shared memory to a block");
  }
  const int G = sh.n_heads / sh.n_kv_heads;
  const dim3 grid(ceil_div(sh.nt * G, kFlashRows), sh.n_kv_heads);
  flash_kernel<KT, HD><<<grid, kFlashThreads, smem, stream>>>(q, kv, params, sh, out);
  check_kernel("attention_flash");
}

template <KVType KT>
void flash_for_type(const float* q, const KVLayer& kv, const StepParams* params, const AttentionShape& sh, float* out,
                    cudaStream_t stream) {
  switch (sh.head_dim) {
    case 16: return launch_flash<KT, 16>(q, kv, params, sh, out, stream);
    case 32: return launch_flash<KT, 32>(q, kv, params, sh, out, stream);
    case 64: return launch_flash<KT, 64>(q, kv, params, sh, out, stream);
    case 128: return launch_flash<KT, 128>(q, kv, params, sh, out, stream);
    default: throw Error("attention_flash: head dimension " + std::to_string(sh.head_dim) + " is not supported");
  }
}

// ---------------------------------------------------------------- split-K (decode)

constexpr int kSplitWarps = 4;

// Keys in flight per lane group and plane: more for the small quantized rows, fewer for f32.
template <KVType KT, int MG>
__host__ __device__ constexpr int split_unroll() {
  return KT == KVType::F32 ? 2 : (KT == KVType::F16 || MG > 4) ? 4 : 8;
}

// HD / 8 lanes share one key (8 values each of K and of V); MG >= the GQA group size.
template <KVType KT, int HD, int MG>
__global__ void __launch_bounds__(kSplitWarps * 32)
    split_kernel(const float* q, KVLayer kv, const StepParams* params, AttentionShape sh, int splits, float* partial,
                 int* counters, float* out) {
  using R = KVRow<KT>;
  constexpr int U = split_unroll<KT, MG>();
  constexpr int L = HD / 8;
  constexpr int KW = 32 / L;                 // keys per warp per step
  constexpr int NP = kSplitWarps * KW;       // lane groups per block
  constexpr int STEP = NP;                   // keys per block per step
  __shared__ float sm_m[NP][MG], sm_l[NP][MG];
  __shared__ float sm_o[NP][MG][HD];
  __shared__ float sm_w[MG][kMaxSplits];
  __shared__ float sm_sum[MG];
  __shared__ int sm_last;

  const int g = blockIdx.x, split = blockIdx.y, t = blockIdx.z;
  const int G = sh.n_heads / sh.n_kv_heads;
  const int n_keys = params->start_pos + t + 1;
  const int per = ceil_div(n_keys, splits);
  const int k_begin = split * per, k_end = min(n_keys, k_begin + per);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int group = warp * KW + lane / L;  // this lane's key slot in a step
  const int d0 = (lane % L) * 8;
  const size_t head_slot = size_t(g) * kv.capacity;

  const float qscale = kLog2e / sqrtf(float(HD));
  float qv[MG][8];
#pragma unroll
  for (int s = 0; s < MG; s++) {
    const int h = g * G + min(s, G - 1);
    const float* src = q + (size_t(t) * sh.n_heads + h) * HD + d0;
#pragma unroll
    for (int i = 0; i < 8; i++) qv[s][i] = src[i] * qscale;
  }
  float m[MG], l[MG], o[MG][8];
#pragma unroll
  for (int s = 0; s < MG; s++) {
    m[s] = -INFINITY;
    l[s] = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; i++) o[s][i] = 0.0f;
  }

  for (int k0 = k_begin; k0 < k_end; k0 += STEP * U) {
    typename R::Raw kr[U], vr[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int key = min(k0 + u * STEP + group, k_end - 1);
      kr[u] = R::template load<HD>(kv.k, head_slot + key, d0);
      vr[u] = R::template load<HD>(kv.v, head_slot + key, d0);
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      const bool valid = k0 + u * STEP + group < k_end;
      float kf[8], vf[8];
      R::unpack(kr[u], kf);
      R::unpack(vr[u], vf);
#pragma unroll
      for (int s = 0; s < MG; s++) {
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; i++) dot += qv[s][i] * kf[i];
#pragma unroll
        for (int off = L / 2; off >= 1; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        if (!valid || s >= G) continue;
        if (dot > m[s]) {
          const float a = exp2f(m[s] - dot);
          l[s] *= a;
#pragma unroll
          for (int i = 0; i < 8; i++) o[s][i] *= a;
          m[s] = dot;
        }
        const float p = exp2f(dot - m[s]);
        l[s] += p;
#pragma unroll
        for (int i = 0; i < 8; i++) o[s][i] += p * vf[i];
      }
    }
  }

#pragma unroll
  for (int s = 0; s < MG; s++) {
    if (lane % L == 0) {
      sm_m[group][s] = m[s];
      sm_l[group][s] = l[s];
    }
#pragma unroll
    for (int i = 0; i < 8; i++) sm_o[group][s][d0 + i] = o[s][i];
  }
  __syncthreads();

  for (int idx = threadIdx.x; idx < G * HD; idx += blockDim.x) {
    const int s = idx / HD, d = idx % HD;
    float mx = -INFINITY;
    for (int p = 0; p < NP; p++) mx = fmaxf(mx, sm_m[p][s]);
    float acc = 0.0f, sum = 0.0f;
    if (mx != -INFINITY) {
      for (int p = 0; p < NP; p++) {
        const float w = exp2f(sm_m[p][s] - mx);
        acc += w * sm_o[p][s][d];
        sum += w * sm_l[p][s];
      }
    }
    const size_t row = size_t(t) * sh.n_heads + size_t(g) * G + s;
    if (splits == 1) {
      out[row * HD + d] = acc / sum;
    } else {
      float* dst = partial + (row * splits + split) * (HD + 2);
      dst[d] = acc;
      if (d == 0) {
        dst[HD] = mx;
        dst[HD + 1] = sum;
      }
    }
  }
  if (splits == 1) return;

  // The last of this (token, KV head)'s blocks merges the splits (the threadFenceReduction
  // pattern: every block's partial is visible device-wide before it counts itself done).
  __threadfence();
  __syncthreads();
  int* counter = counters + size_t(t) * sh.n_kv_heads + g;
  if (threadIdx.x == 0) sm_last = atomicAdd(counter, 1) == splits - 1;
  __syncthreads();
  if (!sm_last) return;
  __threadfence();
  // Per row: the splits' weights exp2(m - max) and the total, one warp per row.
  for (int s = warp; s < G; s += kSplitWarps) {
    const float* pr = partial + (size_t(t) * sh.n_heads + size_t(g) * G + s) * splits * (HD + 2);
    float mx = -INFINITY;
    for (int sp = lane; sp < splits; sp += 32) mx = fmaxf(mx, __ldcg(pr + sp * (HD + 2) + HD));
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int sp = lane; sp < splits; sp += 32) {
      const float w = exp2f(__ldcg(pr + sp * (HD + 2) + HD) - mx);  // an empty split has max -inf: weight 0
      sm_w[s][sp] = w;
      sum += w * __ldcg(pr + sp * (HD + 2) + HD + 1);
    }
    sum = warp_sum(sum);
    if (lane == 0) sm_sum[s] = sum;
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * HD; idx += blockDim.x) {
    const int s = idx / HD, d = idx % HD;
    const size_t row = size_t(t) * sh.n_heads + size_t(g) * G + s;
    const float* pr = partial + row * splits * (HD + 2) + d;
    float acc = 0.0f;
#pragma unroll 8
    for (int sp = 0; sp < splits; sp++) acc += sm_w[s][sp] * __ldcg(pr + sp * (HD + 2));
    out[row * HD + d] = acc / sm_sum[s];
  }
  if (threadIdx.x == 0) *counter = 0;  // ready for the next launch (the next layer, the next step)
}

template <KVType KT, int HD, int MG>
void launch_split_mg(const float* q, const KVLayer& kv, const StepParams* params, const AttentionShape& sh,
                     int splits, float* partial, int* counters, float* out, cudaStream_t stream) {
  const dim3 grid(sh.n_kv_heads, splits, sh.nt);
  split_kernel<KT, HD, MG><<<grid, kSplitWarps * 32, 0, stream>>>(q, kv, params, sh, splits, partial, counters, out);
}

template <KVType KT, int HD>
void launch_split(const float* q, const KVLayer& kv, const StepParams* params, const AttentionShape& sh, int splits,
                  float* partial, int* counters, float* out, cudaStream_t stream) {
  const int G = sh.n_heads / sh.n_kv_heads;
  if (G <= 1)
    launch_split_mg<KT, HD, 1>(q, kv, params, sh, splits, partial, counters, out, stream);
  else if (G <= 2)
    launch_split_mg<KT, HD, 2>(q, kv, params, sh, splits, partial, counters, out, stream);
  else if (G <= 4)
    launch_split_mg<KT, HD, 4>(q, kv, params, sh, splits, partial, counters, out, stream);
  else
    launch_split_mg<KT, HD, 8>(q, kv, params, sh, splits, partial, counters, out, stream);
}

template <KVType KT, int HD, int MG>
int occupancy_mg() {
  int blocks = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, split_kernel<KT, HD, MG>, kSplitWarps * 32, 0),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  return blocks;
}

template <KVType KT, int HD>
int occupancy_hd(int G) {
  return G <= 1 ? occupancy_mg<KT, HD, 1>() : G <= 2 ? occupancy_mg<KT, HD, 2>() : G <= 4 ? occupancy_mg<KT, HD, 4>()
                                                                                        : occupancy_mg<KT, HD, 8>();
}

template <KVType KT>
int occupancy_type(int head_dim, int G) {
  switch (head_dim) {
    case 16: return occupancy_hd<KT, 16>(G);
    case 32: return occupancy_hd<KT, 32>(G);
    case 64: return occupancy_hd<KT, 64>(G);
    case 128: return occupancy_hd<KT, 128>(G);
    case 256: return occupancy_hd<KT, 256>(G);
    default: throw Error("attention: head dimension " + std::to_string(head_dim) + " is not supported");
  }
}

template <KVType KT>
void split_for_type(const float* q, const KVLayer& kv, const StepParams* params, const AttentionShape& sh, int splits,
                    float* partial, int* counters, float* out, cudaStream_t stream) {
  switch (sh.head_dim) {
    case 16: return launch_split<KT, 16>(q, kv, params, sh, splits, partial, counters, out, stream);
    case 32: return launch_split<KT, 32>(q, kv, params, sh, splits, partial, counters, out, stream);
    case 64: return launch_split<KT, 64>(q, kv, params, sh, splits, partial, counters, out, stream);
    case 128: return launch_split<KT, 128>(q, kv, params, sh, splits, partial, counters, out, stream);
    case 256: return launch_split<KT, 256>(q, kv, params, sh, splits, partial, counters, out, stream);
    default: throw Error("attention: head dimension " + std::to_string(sh.head_dim) + " is not supported");
  }
}

}  // namespace

bool flash_supported(int head_dim, KVType type) {
  return (head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128) && type != KVType::F32;
}

void attention_flash(const float* q, const KVLayer& kv, const StepParams* params, const AttentionShape& shape,
                     float* out, cudaStream_t stream) {
  switch (kv.type) {
    case KVType::F16: return flash_for_type<KVType::F16>(q, kv, params, shape, out, stream);
    case KVType::Q8: return flash_for_type<KVType::Q8>(q, kv, params, shape, out, stream);
    case KVType::Q4: return flash_for_type<KVType::Q4>(q, kv, params, shape, out, stream);
    default: throw Error(std::string("attention_flash: no kernel for a ") + kv_type_name(kv.type) + " cache");
  }
}

int attention_split_blocks_per_sm(const AttentionShape& shape, KVType type) {
  const int G = shape.n_heads / shape.n_kv_heads;
  switch (type) {
    case KVType::F32: return occupancy_type<KVType::F32>(shape.head_dim, G);
    case KVType::F16: return occupancy_type<KVType::F16>(shape.head_dim, G);
    case KVType::Q8: return occupancy_type<KVType::Q8>(shape.head_dim, G);
    case KVType::Q4: return occupancy_type<KVType::Q4>(shape.head_dim, G);
  }
  return 1;
}

void attention_split(const float* q, const KVLayer& kv, const StepParams* params, const AttentionShape& shape,
                     int splits, float* partial, int* counters, float* out, cudaStream_t stream) {
  if (shape.n_heads / shape.n_kv_heads > kMaxGqaGroup)
    throw Error("attention: more than " + std::to_string(kMaxGqaGroup) + " query heads per KV head is not supported");
  if (splits < 1 || splits > kMaxSplits)
    throw Error("attention: " + std::to_string(splits) + " splits (1.." + std::to_string(kMaxSplits) + ")");
  if (splits > 1 && !counters) throw Error("attention: split decode needs its counters");
  switch (kv.type) {
    case KVType::F32: split_for_type<KVType::F32>(q, kv, params, shape, splits, partial, counters, out, stream); break;
    case KVType::F16: split_for_type<KVType::F16>(q, kv, params, shape, splits, partial, counters, out, stream); break;
    case KVType::Q8: split_for_type<KVType::Q8>(q, kv, params, shape, splits, partial, counters, out, stream); break;
    case KVType::Q4: split_for_type<KVType::Q4>(q, kv, params, shape, splits, partial, counters, out, stream); break;
  }
  check_kernel("attention_split");
}

}  // namespace ilm::cuda
