// Causal GQA attention over the fp16 KV cache.
//
// attention_flash (prefill): one block = 64 query rows of one KV head, where the rows are
// (position, query head) pairs of that head's GQA group, so each K/V tile is read once for the
// whole group. S = Q K^T and O += P V run on tensor cores (mma.sync m16n8k16, f32 accumulators)
// with an online softmax in base 2; K/V tiles of 64 keys are double-buffered with cp.async.
//
// attention_split (decode, flash-decoding): the keys of each query row are cut into `splits`
// ranges processed by separate blocks (enough blocks to fill the GPU at batch 1); each block
// keeps a running max / sum / weighted V per group of lanes, merges them in shared memory, and a
// second kernel merges the splits. Key ranges come from the device-side start position, so a
// captured decode graph stays valid at every position.
#include <cfloat>

#include "cuda/common.cuh"

namespace ilm::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

// ---------------------------------------------------------------- flash (tensor cores)

constexpr int kFlashThreads = 128;  // 4 warps x 16 rows
constexpr int kFlashRows = 64;
constexpr int kTileKeys = 64;

template <int HD>
constexpr int flash_smem_bytes() {
  return 2 /*K,V*/ * 2 /*stages*/ * kTileKeys * (HD + 8) * 2;
}

template <int HD>
__global__ void __launch_bounds__(kFlashThreads)
    flash_kernel(const float* q, const __half* kc, const __half* vc, const StepParams* params, AttentionShape sh,
                 float* out) {
  constexpr int P = HD + 8;  // padded row (halves): 16-byte skew per row keeps ldmatrix conflict-free
  constexpr int KS = HD / 16;
  extern __shared__ __align__(128) uint8_t smem[];
  __half* ks = reinterpret_cast<__half*>(smem);
  __half* vs = ks + 2 * kTileKeys * P;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = blockIdx.y;
  const int G = sh.n_heads / sh.n_kv_heads;
  const int total_rows = sh.nt * G;
  const int row_base = blockIdx.x * kFlashRows;
  const int start = params->start_pos;
  const int kv_dim = sh.n_kv_heads * HD;

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

  auto load_tile = [&](int j, int buf) {
    constexpr int chunks_per_key = HD / 8;
    for (int c = tid; c < kTileKeys * chunks_per_key; c += kFlashThreads) {
      const int key = c / chunks_per_key, d8 = (c % chunks_per_key) * 8;
      const int kpos = j * kTileKeys + key;
      const bool ok = kpos < kv_len;
      const size_t off = size_t(ok ? kpos : 0) * kv_dim + size_t(g) * HD + d8;
      const int dst = (buf * kTileKeys + key) * P + d8;
      cp_async16(smem_u32(ks + dst), kc + off, ok ? 16 : 0);  // zero-filled past the end: 0 * garbage could be NaN
      cp_async16(smem_u32(vs + dst), vc + off, ok ? 16 : 0);
    }
  };

  float o[HD / 8][4] = {};
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.0f, l_hi = 0.0f;
  load_tile(0, 0);
  cp_async_commit();
  for (int j = 0; j < n_tiles; j++) {
    if (j + 1 < n_tiles) load_tile(j + 1, (j + 1) & 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const __half* kt = ks + (j & 1) * kTileKeys * P;
    const __half* vt = vs + (j & 1) * kTileKeys * P;

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
    __syncthreads();  // the next iteration's prefetch overwrites this stage
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

template <int HD>
void launch_flash(const float* q, const uint16_t* k, const uint16_t* v, const StepParams* params,
                  const AttentionShape& sh, float* out, cudaStream_t stream) {
  constexpr int smem = flash_smem_bytes<HD>();
  // Per device, so set at every (prefill-only) launch; it costs about a microsecond.
  if (cudaFuncSetAttribute(flash_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) != cudaSuccess) {
    cudaGetLastError();
    throw Error("attention: the GPU cannot give " + std::to_string(smem) + " bytes of shared memory to a block");
  }
  const int G = sh.n_heads / sh.n_kv_heads;
  const dim3 grid(ceil_div(sh.nt * G, kFlashRows), sh.n_kv_heads);
  flash_kernel<HD><<<grid, kFlashThreads, smem, stream>>>(q, reinterpret_cast<const __half*>(k),
                                                          reinterpret_cast<const __half*>(v), params, sh, out);
  check_kernel("attention_flash");
}

// ---------------------------------------------------------------- split-K (decode)

constexpr int kSplitWarps = 4;
constexpr int kSplitUnroll = 4;

// HD / 8 lanes share one key (16 bytes of K and of V each); MG >= the GQA group size.
template <int HD, int MG>
__global__ void __launch_bounds__(kSplitWarps * 32)
    split_kernel(const float* q, const __half* kc, const __half* vc, const StepParams* params, AttentionShape sh,
                 int splits, float* partial, float* out) {
  constexpr int L = HD / 8;
  constexpr int KW = 32 / L;                 // keys per warp per step
  constexpr int NP = kSplitWarps * KW;       // lane groups per block
  constexpr int STEP = NP;                   // keys per block per step
  __shared__ float sm_m[NP][MG], sm_l[NP][MG];
  __shared__ float sm_o[NP][MG][HD];

  const int g = blockIdx.x, split = blockIdx.y, t = blockIdx.z;
  const int G = sh.n_heads / sh.n_kv_heads;
  const int n_keys = params->start_pos + t + 1;
  const int per = ceil_div(n_keys, splits);
  const int k_begin = split * per, k_end = min(n_keys, k_begin + per);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int group = warp * KW + lane / L;  // this lane's key slot in a step
  const int d0 = (lane % L) * 8;
  const int kv_dim = sh.n_kv_heads * HD;

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

  for (int k0 = k_begin; k0 < k_end; k0 += STEP * kSplitUnroll) {
    uint4 kr[kSplitUnroll], vr[kSplitUnroll];
#pragma unroll
    for (int u = 0; u < kSplitUnroll; u++) {
      const int key = min(k0 + u * STEP + group, k_end - 1);
      const size_t off = size_t(key) * kv_dim + size_t(g) * HD + d0;
      kr[u] = *reinterpret_cast<const uint4*>(kc + off);
      vr[u] = *reinterpret_cast<const uint4*>(vc + off);
    }
#pragma unroll
    for (int u = 0; u < kSplitUnroll; u++) {
      const bool valid = k0 + u * STEP + group < k_end;
      float kf[8], vf[8];
      Weights8<WType::F16>::unpack(reinterpret_cast<const uint4(&)[1]>(kr[u]), kf);
      Weights8<WType::F16>::unpack(reinterpret_cast<const uint4(&)[1]>(vr[u]), vf);
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
}

// Merges the splits of one (token, head) row: one thread per dimension.
__global__ void merge_kernel(const float* partial, int splits, int hd, float* out) {
  const size_t row = blockIdx.x;
  const float* p = partial + row * splits * (hd + 2);
  float mx = -INFINITY;
  for (int s = 0; s < splits; s++) mx = fmaxf(mx, p[s * (hd + 2) + hd]);
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0.0f, sum = 0.0f;
    for (int s = 0; s < splits; s++) {
      const float* ps = p + s * (hd + 2);
      const float w = exp2f(ps[hd] - mx);  // an empty split has max -inf and weight 0
      acc += w * ps[d];
      sum += w * ps[hd + 1];
    }
    out[row * hd + d] = acc / sum;
  }
}

template <int HD, int MG>
void launch_split_mg(const float* q, const __half* k, const __half* v, const StepParams* params,
                     const AttentionShape& sh, int splits, float* partial, float* out, cudaStream_t stream) {
  const dim3 grid(sh.n_kv_heads, splits, sh.nt);
  split_kernel<HD, MG><<<grid, kSplitWarps * 32, 0, stream>>>(q, k, v, params, sh, splits, partial, out);
}

template <int HD>
void launch_split(const float* q, const __half* k, const __half* v, const StepParams* params,
                  const AttentionShape& sh, int splits, float* partial, float* out, cudaStream_t stream) {
  const int G = sh.n_heads / sh.n_kv_heads;
  if (G <= 1)
    launch_split_mg<HD, 1>(q, k, v, params, sh, splits, partial, out, stream);
  else if (G <= 2)
    launch_split_mg<HD, 2>(q, k, v, params, sh, splits, partial, out, stream);
  else if (G <= 4)
    launch_split_mg<HD, 4>(q, k, v, params, sh, splits, partial, out, stream);
  else
    launch_split_mg<HD, 8>(q, k, v, params, sh, splits, partial, out, stream);
}

}  // namespace

bool flash_supported(int head_dim) {
  return head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128;
}

void attention_flash(const float* q, const uint16_t* k_cache, const uint16_t* v_cache, const StepParams* params,
                     const AttentionShape& shape, float* out, cudaStream_t stream) {
  switch (shape.head_dim) {
    case 16: return launch_flash<16>(q, k_cache, v_cache, params, shape, out, stream);
    case 32: return launch_flash<32>(q, k_cache, v_cache, params, shape, out, stream);
    case 64: return launch_flash<64>(q, k_cache, v_cache, params, shape, out, stream);
    case 128: return launch_flash<128>(q, k_cache, v_cache, params, shape, out, stream);
    default: throw Error("attention_flash: head dimension " + std::to_string(shape.head_dim) + " is not supported");
  }
}

void attention_split(const float* q, const uint16_t* k_cache, const uint16_t* v_cache, const StepParams* params,
                     const AttentionShape& shape, int splits, float* partial, float* out, cudaStream_t stream) {
  if (shape.n_heads / shape.n_kv_heads > kMaxGqaGroup)
    throw Error("attention: more than " + std::to_string(kMaxGqaGroup) + " query heads per KV head is not supported");
  const __half* k = reinterpret_cast<const __half*>(k_cache);
  const __half* v = reinterpret_cast<const __half*>(v_cache);
  switch (shape.head_dim) {
    case 16: launch_split<16>(q, k, v, params, shape, splits, partial, out, stream); break;
    case 32: launch_split<32>(q, k, v, params, shape, splits, partial, out, stream); break;
    case 64: launch_split<64>(q, k, v, params, shape, splits, partial, out, stream); break;
    case 128: launch_split<128>(q, k, v, params, shape, splits, partial, out, stream); break;
    case 256: launch_split<256>(q, k, v, params, shape, splits, partial, out, stream); break;
    default: throw Error("attention: head dimension " + std::to_string(shape.head_dim) + " is not supported");
  }
  check_kernel("attention_split");
  if (splits > 1) {
    merge_kernel<<<shape.nt * shape.n_heads, shape.head_dim < 128 ? shape.head_dim : 128, 0, stream>>>(
        partial, splits, shape.head_dim, out);
    check_kernel("attention_merge");
  }
}

}  // namespace ilm::cuda
