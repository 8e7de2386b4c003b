// Writing the KV cache (RoPE, then store or quantize), converting its rows to and from the CPU's
// row format (saving and restoring caches), and filling it with random entries for benchmarks.
// Layout: kernels.h (KVLayer).
#include "cuda/common.cuh"

namespace ilm::cuda {
namespace {

constexpr int kRopeWarps = 8;

__device__ __forceinline__ float warp_min(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The CPU's asymmetric row quantizer (cpu/kv_kernels_generic.cpp, header_and_codes), operation for
// operation: lo/hi of the row, s = (hi - lo) / (levels - 1), inv = 1 / s (0 when s is 0),
// code = clamp(round-half-even((x - lo) * inv), 0, levels - 1). Explicit _rn intrinsics keep the
// compiler from contracting anything, so equal inputs give equal bytes on both backends.
struct RowQuant {
  float scale, lo, inv;
  int top;
  __device__ __forceinline__ int code(float x) const {
    return min(max(__float2int_rn(__fmul_rn(__fsub_rn(x, lo), inv)), 0), top);
  }
};

__device__ __forceinline__ RowQuant row_quant(const float* row, int hd, int levels, int lane) {
  float mn = INFINITY, mx = -INFINITY;
  for (int i = lane; i < hd; i += 32) {
    mn = fminf(mn, row[i]);
    mx = fmaxf(mx, row[i]);
  }
  mn = warp_min(mn);
  mx = warp_max(mx);
  RowQuant q;
  q.scale = __fdiv_rn(__fsub_rn(mx, mn), float(levels - 1));
  q.inv = q.scale > 0.0f ? __fdiv_rn(1.0f, q.scale) : 0.0f;
  q.lo = mn;
  q.top = levels - 1;
  return q;
}

// One warp stores the hd values of `row` (shared memory) into row `slot` of a plane.
template <KVType KT>
__device__ __forceinline__ void store_row(const float* row, int hd, const KVPlane& plane, size_t slot, int lane) {
  if constexpr (KT == KVType::F32) {
    float* dst = reinterpret_cast<float*>(plane.data) + slot * hd;
    for (int i = lane; i < hd; i += 32) dst[i] = row[i];
  } else if constexpr (KT == KVType::F16) {
    __half* dst = reinterpret_cast<__half*>(plane.data) + slot * hd;
    for (int i = lane; i < hd; i += 32) dst[i] = __float2half_rn(row[i]);
  } else if constexpr (KT == KVType::Q8) {
    const RowQuant q = row_quant(row, hd, 256, lane);
    uint8_t* dst = plane.data + slot * hd;
    for (int i = lane; i < hd; i += 32) dst[i] = uint8_t(q.code(row[i]));
    if (lane == 0) {
      plane.sz[2 * slot] = q.scale;
      plane.sz[2 * slot + 1] = q.lo;
    }
  } else {
    const RowQuant q = row_quant(row, hd, 16, lane);
    uint8_t* dst = plane.data + slot * (hd / 2);
    for (int b = lane; b < hd / 2; b += 32) dst[b] = uint8_t(q.code(row[2 * b]) | (q.code(row[2 * b + 1]) << 4));
    if (lane == 0) {
      plane.sz[2 * slot] = q.scale;
      plane.sz[2 * slot + 1] = q.lo;
    }
  }
}

// One block per token, one warp per head row of qkv (Q heads, K heads, V heads). Angles as the CPU
// computes them: pairwise files multiply theta by base^(-2/d) pair after pair (llama.cpp),
// rotate-half checkpoints use pos * inv_freq[i] (Hugging Face); both factors come from the host.
// The rotated row goes through shared memory, so a q4 byte's two values are in one lane's reach.
template <KVType KT>
__global__ void __launch_bounds__(kRopeWarps * 32)
    rope_store_kernel(const float* qkv, const StepParams* params, int n_heads, bool pairwise, float* q_out, KVLayer kv) {
  __shared__ float rows[kRopeWarps][kMaxHeadDim];
  const int t = blockIdx.x, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int hd = kv.head_dim, half = hd / 2, n_kv = kv.n_kv_heads;
  const int q_dim = n_heads * hd;
  const float* row = qkv + size_t(t) * (q_dim + 2 * n_kv * hd);
  const int pos = params->start_pos + t;
  float* buf = rows[warp];
  for (int r = warp; r < n_heads + 2 * n_kv; r += kRopeWarps) {
    const float* src = row + size_t(r) * hd;  // Q heads, K heads, V heads: contiguous
    if (r < n_heads + n_kv) {
      for (int p = lane; p < half; p += 32) {
        float theta;
        if (pairwise) {
          theta = float(pos);
          const float s = params->theta_scale;
          for (int j = 0; j < p; j++) theta *= s;
        } else {
          theta = float(pos) * params->inv_freq[p];
        }
        // In double, then rounded: what glibc's sinf/cosf give (the CPU's std::sin/std::cos),
        // where sincosf may be 2 ulp off. Costs nothing next to the memory traffic.
        double sn_d, cs_d;
        sincos(double(theta), &sn_d, &cs_d);
        const float sn = float(sn_d), cs = float(cs_d);
        const int a = pairwise ? 2 * p : p;
        const int b = pairwise ? 2 * p + 1 : p + half;
        const float x0 = src[a], x1 = src[b];
        // Rounded products, no FMA: what the CPU computes (x86-64: cpu_backend.cpp is built
        // without FMA). nvcc contracted these into fmaf, which moved a quarter of the rotated
        // values by an ulp even where sin/cos agree.
        buf[a] = __fsub_rn(__fmul_rn(x0, cs), __fmul_rn(x1, sn));
        buf[b] = __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, cs));
      }
    } else {
      for (int i = lane; i < hd; i += 32) buf[i] = src[i];
    }
    __syncwarp();
    if (r < n_heads) {
      float* dst = q_out + size_t(t) * q_dim + size_t(r) * hd;
      for (int i = lane; i < hd; i += 32) dst[i] = buf[i];
    } else {
      const bool is_v = r >= n_heads + n_kv;
      const int g = r - n_heads - (is_v ? n_kv : 0);
      store_row<KT>(buf, hd, is_v ? kv.v : kv.k, size_t(g) * kv.capacity + pos, lane);
    }
    __syncwarp();  // the next row overwrites buf
  }
}

// Word w of the position-major rows <-> its place in the head-major plane. A CPU row is
// [scale f32][zero f32][codes] for q8/q4 and the plain values otherwise; all are whole words.
__global__ void kv_rows_kernel(KVPlane plane, int capacity, int n_kv, int code_bytes, int header_words, int row_words,
                               int from, int n, uint32_t* rows, bool to_plane) {
  const size_t total = size_t(n) * n_kv * row_words;
  for (size_t w = blockIdx.x * size_t(blockDim.x) + threadIdx.x; w < total; w += size_t(gridDim.x) * blockDim.x) {
    const size_t ri = w / row_words;
    const int wi = int(w % row_words);
    const int p = from + int(ri / n_kv), g = int(ri % n_kv);
    const size_t slot = size_t(g) * capacity + p;
    uint32_t* mine = wi < header_words
                         ? reinterpret_cast<uint32_t*>(plane.sz) + slot * 2 + wi
                         : reinterpret_cast<uint32_t*>(plane.data + slot * code_bytes) + (wi - header_words);
    if (to_plane)
      *mine = rows[w];
    else
      rows[w] = *mine;
  }
}

__device__ __forceinline__ uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  h *= 0x846ca68bu;
  h ^= h >> 16;
  return h;
}

// Uniform in [-1, 1) from a hash.
__device__ __forceinline__ float unit_value(uint32_t h) { return float(int32_t(h >> 8) - (1 << 23)) / float(1 << 23); }

// Positions [0, n) of every head of one plane: random values in [-1, 1) (f32/f16), or random codes
// with scale 2 / (levels - 1) and zero -1 (q8/q4): finite and spread like real keys.
__global__ void kv_fill_kernel(KVPlane plane, KVType type, int capacity, int n_kv, int code_bytes, int n, uint32_t seed) {
  const size_t words_per_head = size_t(n) * code_bytes / 4;
  const size_t total = words_per_head * n_kv;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  for (size_t w = blockIdx.x * size_t(blockDim.x) + threadIdx.x; w < total; w += stride) {
    const size_t g = w / words_per_head, i = w % words_per_head;
    uint32_t* dst = reinterpret_cast<uint32_t*>(plane.data + g * size_t(capacity) * code_bytes) + i;
    const uint32_t h = mix32(uint32_t(w) * 0x9e3779b1u ^ uint32_t(w >> 32) ^ seed);
    if (type == KVType::F32) {
      *dst = __float_as_uint(unit_value(h));
    } else if (type == KVType::F16) {
      const __half2 v = __floats2half2_rn(unit_value(h), unit_value(mix32(h ^ 0x5bd1e995u)));
      *dst = *reinterpret_cast<const uint32_t*>(&v);
    } else {
      *dst = h;
    }
  }
  if (type != KVType::Q8 && type != KVType::Q4) return;
  const float scale = 2.0f / float(type == KVType::Q8 ? 255 : 15);
  for (size_t r = blockIdx.x * size_t(blockDim.x) + threadIdx.x; r < size_t(n) * n_kv; r += stride) {
    const size_t slot = (r / n) * size_t(capacity) + r % n;
    plane.sz[2 * slot] = scale;
    plane.sz[2 * slot + 1] = -1.0f;
  }
}

int grid_for(size_t n, int threads) {
  const size_t blocks = (n + threads - 1) / threads;
  return int(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

void check_layer(const KVLayer& kv) {
  if (kv.head_dim <= 0 || kv.head_dim > kMaxHeadDim || kv.head_dim % 16 != 0)
    throw Error("KV cache: head dimension " + std::to_string(kv.head_dim) + " is not supported");
}

}  // namespace

void rope_store(const float* qkv, const StepParams* params, int nt, int n_heads, bool pairwise, float* q_out,
                const KVLayer& kv, cudaStream_t stream) {
  check_layer(kv);
  const dim3 grid(nt), block(kRopeWarps * 32);
  switch (kv.type) {
    case KVType::F32: rope_store_kernel<KVType::F32><<<grid, block, 0, stream>>>(qkv, params, n_heads, pairwise, q_out, kv); break;
    case KVType::F16: rope_store_kernel<KVType::F16><<<grid, block, 0, stream>>>(qkv, params, n_heads, pairwise, q_out, kv); break;
    case KVType::Q8: rope_store_kernel<KVType::Q8><<<grid, block, 0, stream>>>(qkv, params, n_heads, pairwise, q_out, kv); break;
    case KVType::Q4: rope_store_kernel<KVType::Q4><<<grid, block, 0, stream>>>(qkv, params, n_heads, pairwise, q_out, kv); break;
  }
  check_kernel("rope_store");
}

namespace {
void kv_rows(const KVLayer& kv, bool value, int from, int n, uint32_t* rows, bool to_plane, cudaStream_t stream) {
  check_layer(kv);
  if (n <= 0) return;
  if (from < 0 || from + n > kv.capacity) throw Error("KV cache rows out of range");
  const bool quant = kv_quantized(kv.type);
  const int row_words = int(kv_row_bytes(kv.type, kv.head_dim) / 4);
  const int code_bytes = int(kv_code_bytes(kv.type, kv.head_dim));
  const size_t total = size_t(n) * kv.n_kv_heads * row_words;
  kv_rows_kernel<<<grid_for(total, 256), 256, 0, stream>>>(value ? kv.v : kv.k, kv.capacity, kv.n_kv_heads, code_bytes,
                                                           quant ? 2 : 0, row_words, from, n, rows, to_plane);
  check_kernel(to_plane ? "kv_unpack_rows" : "kv_pack_rows");
}
}  // namespace

void kv_pack_rows(const KVLayer& kv, bool value, int from, int n, uint8_t* rows, cudaStream_t stream) {
  kv_rows(kv, value, from, n, reinterpret_cast<uint32_t*>(rows), false, stream);
}

void kv_unpack_rows(const KVLayer& kv, bool value, int from, int n, const uint8_t* rows, cudaStream_t stream) {
  kv_rows(kv, value, from, n, reinterpret_cast<uint32_t*>(const_cast<uint8_t*>(rows)), true, stream);
}

void kv_fill_random(const KVLayer& kv, int n, uint32_t seed, cudaStream_t stream) {
  check_layer(kv);
  if (n <= 0) return;
  if (n > kv.capacity) throw Error("kv_fill_random: more positions than the cache holds");
  const int code_bytes = int(kv_code_bytes(kv.type, kv.head_dim));
  const size_t words = size_t(n) * code_bytes / 4 * kv.n_kv_heads;
  for (int plane = 0; plane < 2; plane++) {
    kv_fill_kernel<<<grid_for(words, 256), 256, 0, stream>>>(plane ? kv.v : kv.k, kv.type, kv.capacity, kv.n_kv_heads,
                                                             code_bytes, n, seed * 2654435761u + uint32_t(plane));
    check_kernel("kv_fill_random");
  }
}

}  // namespace ilm::cuda
